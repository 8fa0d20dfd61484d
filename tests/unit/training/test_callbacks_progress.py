"""callbacks.progress_log: log lines off a terminal, by time, in training, validation and test; and
the adjustments that keep a short trial run meaningful (EMA start within the run)."""

from __future__ import annotations

import itertools
import logging
import re

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging, ProgressBar
from lightning.pytorch.demos.boring_classes import BoringModel

from lfmri.training.callbacks import ProgressLog, choose_progress, start_averaging_within_run


def run(progress: ProgressLog, caplog, steps: int = 4) -> list[str]:
    trainer = L.Trainer(max_steps=steps, limit_train_batches=steps, limit_val_batches=3, limit_test_batches=3,
                        num_sanity_val_steps=0, callbacks=[progress], logger=False, enable_checkpointing=False,
                        enable_model_summary=False, accelerator="cpu")
    assert trainer.progress_bar_callback is progress  # Lightning's progress-bar slot, not a second bar
    with caplog.at_level(logging.INFO, logger="lfmri.training.callbacks"):
        trainer.fit(BoringModel())
        trainer.test(BoringModel(), verbose=False)
    return [r.getMessage() for r in caplog.records if r.name == "lfmri.training.callbacks"]


def test_a_slow_run_says_where_it_is_in_training_validation_and_test(caplog):
    clock = itertools.count(0.0, 40.0)  # 40 s between any two looks at the clock: every line is due
    lines = run(ProgressLog(every_n_seconds=30, clock=lambda: next(clock)), caplog)
    assert any(line.startswith("epoch 0 step 1/4, loss ") and "steps/s" in line for line in lines), lines
    assert any("validation: 3 batches" in line for line in lines)
    assert any("validation: batch 2/3" in line and "batches/s" in line for line in lines)
    assert any("test: batch 3/3" in line for line in lines) and any("test: done in" in line for line in lines)


def test_training_validation_and_test_lines_say_the_time_left(caplog):
    clock = itertools.count(0.0, 40.0)  # every look at the clock 40 s later than the last
    lines = run(ProgressLog(every_n_seconds=30, clock=lambda: next(clock)), caplog)
    training = [line for line in lines if "steps/s" in line]
    # the run's pace so far (validation included) times the steps left; none once the last step is done
    assert training[0].startswith("epoch 0 step 1/4") and re.search(r", about \d+ (s|min) left$", training[0]), training
    first = training[0]
    seconds = int(re.search(r"about (\d+) (s|min)", first).group(1)) * (60 if " min left" in first else 1)
    assert seconds >= 3 * 40  # 3 steps left, each at least one 40 s look at the clock
    assert training[-1].startswith("epoch 0 step 4/4") and "left" not in training[-1]
    assert any(re.search(r"validation: batch 1/3, .* batches/s, about \d+ (s|min) left", line) for line in lines), lines
    assert any(re.search(r"test: batch 2/3, .* batches/s, about \d+ (s|min) left", line) for line in lines), lines
    assert not any("batch 3/3" in line and "left" in line for line in lines)  # nothing left after the last batch


def test_a_fast_run_is_not_flooded(caplog):
    clock = itertools.count(0.0, 0.001)
    lines = run(ProgressLog(every_n_seconds=30, clock=lambda: next(clock)), caplog, steps=8)
    training = [line for line in lines if "steps/s" in line]
    assert [line.split(",")[0] for line in training] == ["epoch 0 step 8/8"]  # the last step only
    assert not any("batch " in line for line in lines)  # no per-batch lines in a quick validation/test


def test_the_bar_on_a_terminal_and_the_lines_elsewhere():
    progress = ProgressLog()
    assert choose_progress([progress], tty=False, enable_progress_bar=None) == ([progress], True)
    assert choose_progress([progress], tty=True, enable_progress_bar=None) == ([], True)  # Lightning's own bar
    assert choose_progress([progress], tty=False, enable_progress_bar=False) == ([], False)
    assert choose_progress([], tty=False, enable_progress_bar=None) == ([], False)  # no redrawn bar in a file
    always = ProgressLog(only_without_tty=False)
    assert choose_progress([always], tty=True, enable_progress_bar=None) == ([always], True)
    trainer = L.Trainer(callbacks=choose_progress([ProgressLog()], tty=True, enable_progress_bar=None)[0],
                        logger=False, accelerator="cpu")
    bar = trainer.progress_bar_callback  # Lightning's own (tqdm, or rich where installed)
    assert isinstance(bar, ProgressBar) and not isinstance(bar, ProgressLog)


def test_an_ema_that_would_start_after_a_short_run_starts_within_it(caplog):
    ema = EMAWeightAveraging(decay=0.998, update_starting_at_step=200)
    with caplog.at_level(logging.INFO):
        start_averaging_within_run([ema], max_steps=6)
    assert ema.update_starting_at_step == 1 and "EMA start of 200 steps shortened to 1" in caplog.text
    start_averaging_within_run([ema], max_steps=-1)  # epoch-bounded run: left alone
    long = EMAWeightAveraging(update_starting_at_step=200)
    start_averaging_within_run([long], max_steps=6000)
    assert long.update_starting_at_step == 200

