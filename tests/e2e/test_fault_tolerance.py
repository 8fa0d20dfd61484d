"""Runs that survive being killed: exact resume after SIGTERM/SIGKILL."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.run import ROOT, TINY, check, run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e


STEPS_PER_EPOCH = 6  # 24 patches per epoch, batches of 4


SAVE_EVERY = 4       # callbacks.last_checkpoint.every_n_train_steps


KILL_AT = 9          # epoch 1, batch 3 of 6


def run_args(volumes: Path, run_dir: Path) -> list[str]:
    return [
        "train.py", *TINY, f"data.pattern={volumes}/*.nii.gz", "trainer.max_epochs=2", "data.patches_per_epoch=24",
        f"callbacks.last_checkpoint.every_n_train_steps={SAVE_EVERY}", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=1", f"hydra.run.dir={run_dir}",
    ]


def logged_steps(run_dir: Path) -> list[int]:
    with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
        return [int(float(row["step"])) for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Phantom volumes and one uninterrupted run."""
    root = tmp_path_factory.mktemp("resume")
    write_phantom_volumes(root / "volumes")
    check(run_script(*run_args(root / "volumes", root / "reference")))
    return root, json.loads((root / "reference" / "metrics.json").read_text())


END = 2 * STEPS_PER_EPOCH  # the last step: a periodic save (every SAVE_EVERY) and the epoch-end saves


@pytest.mark.parametrize(("sig", "stop"), [(signal.SIGTERM, "mid-epoch"), (signal.SIGKILL, "mid-epoch"), (signal.SIGKILL, "epoch-end"),
                                           (signal.SIGINT, "mid-epoch"), (signal.SIGKILL, "writing")],
                         ids=["sigterm", "sigkill", "sigkill-after-epoch-end-checkpoint", "ctrl-c", "sigkill-while-writing-a-checkpoint"])
def test_killed_run_resumes_to_the_same_steps_and_metrics(reference, sig, stop):
    """``writing``: killed inside the second checkpoint file written at the last step (at the epoch's end,
    after its validation): ``last.ckpt`` is then the periodic one of step 8, written whole before, never
    one written between the last batch and its validation (resumed, that one skipped the validation)."""
    root, expected = reference
    name = f"{sig.name}-{stop}"
    run_dir = root / f"killed-{name}"
    flag = root / f"{name}.paused"
    kill_at = {"mid-epoch": KILL_AT, "epoch-end": STEPS_PER_EPOCH, "writing": END}[stop]
    pause = ["+callbacks.pause._target_=tests.helpers.pause_callback.PauseAtStep", f"+callbacks.pause.step={kill_at}",
             f"+callbacks.pause.flag={flag}", f"+callbacks.pause.epoch_end={stop == 'epoch-end'}",
             f"+callbacks.pause.during_write={2 if stop == 'writing' else 0}"]
    proc = subprocess.Popen([sys.executable, *run_args(root / "volumes", run_dir), *pause], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never reached the pause step"
        time.sleep(0.05)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == (-signal.SIGKILL if sig == signal.SIGKILL else 128 + sig), output[-3000:]
    if sig != signal.SIGKILL:  # SIGTERM and Ctrl-C: a checkpoint at the step, the command that resumes
        assert f"stopped by {sig.name}, checkpoint saved; continue with: lfmri-train " in output, output[-3000:]
        assert f"resume=true hydra.run.dir={run_dir}" in output and "Traceback" not in output, output[-3000:]

    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    if stop == "epoch-end":  # the checkpoint written after the first epoch's validation
        assert last["global_step"] == STEPS_PER_EPOCH
    else:  # SIGTERM, Ctrl-C: written at the step it arrived; SIGKILL: the latest complete periodic save. All mid-epoch.
        step = KILL_AT if sig != signal.SIGKILL else (kill_at - 1) // SAVE_EVERY * SAVE_EVERY
        assert last["global_step"] == step and step % STEPS_PER_EPOCH
        loader_state = last["loops"]["fit_loop"]["state_dict"]["combined_loader"]
        assert loader_state == [{"trained_batches": step % STEPS_PER_EPOCH}]
    assert not (run_dir / "metrics.json").exists()

    stale = run_dir / "checkpoints" / ".last.ckpt.999999999.0123abcd.tmp"  # what a SIGKILL mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    # the killed run's config names the test's pause callback: trusted explicitly, as a user would
    resumed = check(run_script(*run_args(root / "volumes", run_dir), "resume=true", "trust_targets=[tests.helpers.pause_callback]"))
    assert "not resumable" not in resumed.stdout + resumed.stderr
    assert not stale.exists()
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["global_step"] == expected["global_step"] == 2 * STEPS_PER_EPOCH
    assert final["best_score"] == pytest.approx(expected["best_score"], abs=1e-6)
    for name, value in expected["metrics"].items():
        if name.startswith(("val/", "test/")):
            assert final["metrics"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    # the rows the killed run logged after its checkpoint are not repeated in the CSV log
    assert logged_steps(run_dir) == logged_steps(root / "reference")
