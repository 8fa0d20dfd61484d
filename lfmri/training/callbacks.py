"""Lightning callbacks that lfmri's configs add to every training run."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

from collections.abc import Callable

import lightning as L
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint, ProgressBar, WeightAveraging
from lightning.pytorch.utilities.exceptions import SIGTERMException
from torch.optim.swa_utils import get_ema_avg_fn

from lfmri.progress import duration, time_left
from lfmri.training.schedules import fit_to_run

log = logging.getLogger(__name__)


class FiniteLoss(L.Callback):
    """Stops training with :class:`~lfmri.errors.DivergedError` (one line, exit status 2) at the
    first step whose training loss is NaN or Inf, instead of training to the end on NaN and exiting 0.

    It reads the loss the step returned and every ``train/...loss`` value logged in the step (the
    adversarial and cycle modules optimise by hand and only log theirs): a few scalars per step, far
    cheaper than Lightning's ``detect_anomaly``, which checks every backward operation.
    """

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        import torch

        from lfmri.errors import DivergedError

        values = {}
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and loss.numel() == 1:
            values["loss"] = loss
        for key, value in trainer.callback_metrics.items():
            if key.startswith("train/") and key.endswith("loss") and isinstance(value, torch.Tensor) and value.numel() == 1:
                values[key] = value
        bad = {key: float(value) for key, value in values.items() if not bool(torch.isfinite(value.detach()))}
        if bad:
            described = ", ".join(f"{key}={value}" for key, value in bad.items())
            raise DivergedError(
                f"training diverged at step {trainer.global_step} (epoch {trainer.current_epoch}): {described}. "
                "Stopped; lower the learning rate (optimizer.lr), check the data, or start from an earlier checkpoint"
            )


class CheckpointOnSigterm(L.Callback):
    """Writes ``path`` (``last.ckpt``) when a SIGTERM (or Ctrl-C, :func:`lfmri.training.run.stop_on_sigint`)
    stops training, so that nothing is lost.

    Lightning turns SIGTERM (``kill``, ``scancel``, a preempting scheduler, ``docker stop``) into
    a clean stop at the end of the current batch; the checkpoint is written there, with the
    data loader's position, so ``resume=true`` replays the rest of the epoch exactly. SIGKILL
    cannot be caught: the periodic ``last.ckpt`` (``callbacks.last_checkpoint``) covers it.
    """

    def __init__(self, path: str) -> None:
        self.path = Path(path)

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        trainer.save_checkpoint(self.path)
        if trainer.is_global_zero:
            # SIGINT when lfmri.training.run.stop_on_sigint turned a Ctrl-C into Lightning's stop
            log.warning("%s at step %d: saved %s", getattr(trainer, "lfmri_stop_signal", "SIGTERM"), trainer.global_step, self.path)


class StepCheckpoint(ModelCheckpoint):
    """``last.ckpt`` every ``every_n_train_steps`` optimiser steps (``callbacks.last_checkpoint``),
    never between a batch and the validation that Lightning runs right after it.

    Lightning resumes a checkpoint written in ``on_train_batch_end`` as "this batch done, go on with
    the next": a validation due after that batch (the epoch's last one, or a ``val_check_interval``
    step) is never run, so a run killed before the epoch-end checkpoint was complete resumed without
    that validation, with another ``best.ckpt`` and another test score. Lightning defers such a save
    to after the validation only for a checkpoint with a ``monitor``; this one has none, so it defers
    here, with Lightning's own decision whether a validation follows the batch: the save is made when
    that validation is over (at the epoch's end, where Lightning saves epoch-end checkpoints, or in
    ``on_validation_end`` for a validation within the epoch).
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._after_validation = False

    @staticmethod
    def _validation_follows(trainer: L.Trainer) -> bool:
        loop = trainer.fit_loop.epoch_loop
        try:  # the very test the training loop applies after this batch's hooks (a private method)
            return bool(loop._should_check_val_fx(trainer.fit_loop._data_fetcher))
        except (AttributeError, TypeError):  # another Lightning: the epoch's last batch is the validation's
            return bool(getattr(loop.batch_progress, "is_last_batch", False)) and trainer.enable_validation

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        due = self._every_n_train_steps >= 1 and trainer.global_step % self._every_n_train_steps == 0
        if due and not self._should_skip_saving_checkpoint(trainer) and self._validation_follows(trainer):
            self._after_validation = True
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._after_validation and not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            self._save_after_validation(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._after_validation:
            self._save_after_validation(trainer)

    def _save_after_validation(self, trainer: L.Trainer) -> None:
        self._after_validation = False
        if self._should_skip_saving_checkpoint(trainer):
            return
        candidates = self._monitor_candidates(trainer)
        path = self.format_checkpoint_name(candidates, self.CHECKPOINT_NAME_LAST)
        written = [c for c in trainer.checkpoint_callbacks if c is not self and isinstance(c, ModelCheckpoint)
                   and c.last_model_path == path and c._last_global_step_saved == trainer.global_step]
        if not written:  # callbacks.model_checkpoint (save_last) may have written this step's last.ckpt already
            self._save_last_checkpoint(trainer, candidates)


def average_updates(callback: WeightAveraging) -> int:
    """How many times a weight average has been updated (0 before its first update, and outside fit,
    where Lightning's average is only a copy of the module it started from)."""
    return int(callback._average_model.n_averaged) if callback._average_model is not None else 0


class AveragedWeightsInTest(L.Callback):
    """Tests with the averaged weights of a weight-averaging callback (``callbacks.ema``).

    Lightning's ``WeightAveraging`` swaps the averaged weights in for validation only. After fit,
    ``trainer.test(ckpt_path=best)`` reloads the checkpoint's ``current_model_state`` (the raw
    weights) into the module, so the test would score weights that were neither selected by
    validation nor shipped (``lowfield-sim``: 21.74 dB in the brain instead of the averaged
    weights' 21.87). This swaps the averaged weights in for the test epoch and back after it; it
    uses ``WeightAveraging._swap_models`` because Lightning offers no public hook for test. Without a
    weight-averaging callback it does nothing.
    """

    @staticmethod
    def _averaging(trainer: L.Trainer) -> list[WeightAveraging]:
        # an average never updated holds the initial weights: the raw network is tested then
        return [cb for cb in trainer.callbacks if isinstance(cb, WeightAveraging) and average_updates(cb) > 0]

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for callback in self._averaging(trainer):
            callback._swap_models(pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for callback in self._averaging(trainer):
            callback._swap_models(pl_module)


class ProgressLog(ProgressBar):
    """Progress as log lines, for output that is not a terminal (SLURM, ``docker logs``, nohup).

    Lightning's progress bar redraws one line in place: in a file it shows up, if at all, at the
    end. This is Lightning's progress-bar callback (:class:`~lightning.pytorch.callbacks.ProgressBar`:
    the trainer's batch counts, its ``disable``/``enable``) writing log lines instead, through the
    ``logging`` module (so into ``train.log`` and the console), on rank zero:

    - training: ``epoch E step S/T, loss L, lr R, X steps/s, Y patches/s, about D left``: the time
      left for the run at its pace so far (wall time since this fit started over the steps it made,
      so the validations within it count too);
    - validation and test: a line when they start (``validation: N batches``), ``validation: batch
      b/N, X batches/s, about D left`` while they run, and the metrics when a validation ends;

    a line whenever ``every_n_seconds`` have passed since the last one (time, not steps: a slow
    network or a long validation is never silent for longer, a fast one does not flood the log),
    and also every ``every_n_steps`` optimiser steps when that is set.

    Args:
        every_n_seconds: the longest silence between two lines.
        every_n_steps: also a training line every this many steps (``null``: by time only).
        only_without_tty: a terminal keeps Lightning's redrawn bar instead
            (:func:`choose_progress`).
        clock: seconds as a float (``time.monotonic``; tests pass their own).
    """

    def __init__(self, every_n_seconds: float = 30.0, every_n_steps: int | None = None, only_without_tty: bool = True,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        if every_n_seconds < 0:
            raise ValueError(f"callbacks.progress_log.every_n_seconds={every_n_seconds}: must not be negative")
        if every_n_steps is not None and every_n_steps < 1:
            raise ValueError(f"callbacks.progress_log.every_n_steps={every_n_steps}: must be at least 1 (or null)")
        self.every_n_seconds = float(every_n_seconds)
        self.every_n_steps = None if every_n_steps is None else int(every_n_steps)
        self.only_without_tty = bool(only_without_tty)
        self.clock = clock
        self._enabled = True
        self._line_at = clock()  # time of the last line, whatever its kind
        self._last: tuple[float, int, int] | None = None  # (time, step, samples) of the last training line
        self._samples = 0
        self._loop_start = (0.0, 0)  # (time, batch) when the current validation/test began
        self._fit_start: tuple[float, int] | None = None  # (time, step) when this fit began (a resumed run: its step)

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def _active(self, trainer: L.Trainer) -> bool:
        return self._enabled and trainer.is_global_zero and not trainer.sanity_checking

    def _due(self) -> bool:
        return self.clock() - self._line_at >= self.every_n_seconds

    def _log(self, message: str, *args) -> None:
        log.info(message, *args)
        self._line_at = self.clock()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._samples = 0
        self._last = (self.clock(), trainer.global_step, 0)
        self._fit_start = (self._last[0], trainer.global_step)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        hr = batch.get("hr") if isinstance(batch, dict) else None
        self._samples += int(hr.shape[0]) if hr is not None else 0
        step = trainer.global_step
        if not self._active(trainer) or self._last is None or step == self._last[1]:
            return
        by_steps = self.every_n_steps is not None and step % self.every_n_steps == 0
        if not (by_steps or self._due() or step == trainer.max_steps):
            return
        now = self.clock()
        seconds = max(now - self._last[0], 1e-9)
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None:
            loss = trainer.callback_metrics.get("train/loss")
        total = trainer.estimated_stepping_batches
        parts = [f"epoch {trainer.current_epoch} step {step}" + (f"/{int(total)}" if math.isfinite(total) else "")]
        if loss is not None:
            parts.append(f"loss {float(loss):.4g}")
        if trainer.optimizers:
            parts.append(f"lr {trainer.optimizers[0].param_groups[0]['lr']:.3g}")
        parts.append(f"{(step - self._last[1]) / seconds:.2f} steps/s")
        if self._samples:
            parts.append(f"{(self._samples - self._last[2]) / seconds:.1f} patches/s")
        started, first_step = self._fit_start or self._last[:2]
        left = time_left(step - first_step, total - first_step, now - started)
        if left is not None and step < total:
            parts.append(f"about {duration(left)} left")
        self._log(", ".join(parts))
        self._last = (now, step, self._samples)

    def _loop_started(self, trainer: L.Trainer, stage: str, total: float) -> None:
        self._loop_start = (self.clock(), 0)
        if self._active(trainer):
            count = f"{int(total)} batches" if math.isfinite(total) else "batches"
            self._log("epoch %d step %d %s: %s", trainer.current_epoch, trainer.global_step, stage, count)

    def _loop_batch(self, trainer: L.Trainer, stage: str, batch_idx: int, total: float) -> None:
        if not self._active(trainer) or not self._due():
            return
        seconds = max(self.clock() - self._loop_start[0], 1e-9)
        of = f"/{int(total)}" if math.isfinite(total) else ""
        left = time_left(batch_idx + 1, total, seconds)
        ending = f", about {duration(left)} left" if left is not None and batch_idx + 1 < total else ""
        self._log("epoch %d step %d %s: batch %d%s, %.2f batches/s%s", trainer.current_epoch, trainer.global_step, stage,
                  batch_idx + 1, of, (batch_idx + 1) / seconds, ending)

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loop_started(trainer, "validation", self.total_val_batches)

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._loop_batch(trainer, "validation", batch_idx, trainer.num_val_batches[dataloader_idx])

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._loop_started(trainer, "test", sum(trainer.num_test_batches))

    def on_test_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._loop_batch(trainer, "test", batch_idx, trainer.num_test_batches[dataloader_idx])

    def on_test_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._active(trainer):
            self._log("epoch %d step %d test: done in %.0f s", trainer.current_epoch, trainer.global_step,
                      self.clock() - self._loop_start[0])

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's own epoch end, which logs the gains over the baselines (callbacks' epoch-end hooks run before it)
        if not self._active(trainer):
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
        if values:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(values.items()))
            self._log("epoch %d step %d validation: %s", trainer.current_epoch, trainer.global_step, shown)


def choose_progress(callbacks: list[L.Callback], tty: bool, enable_progress_bar: bool | None) -> tuple[list[L.Callback], bool]:
    """(callbacks, ``enable_progress_bar``) for the Trainer: log lines off a terminal, a bar on one.

    A :class:`ProgressLog` is the trainer's progress bar when the output is not a terminal; on a
    terminal it stands aside for Lightning's redrawn bar unless ``only_without_tty=false``. An
    explicit ``trainer.enable_progress_bar=false`` shows no progress at all.
    """
    logs = [c for c in callbacks if isinstance(c, ProgressLog)]
    if enable_progress_bar is False or (tty and all(c.only_without_tty for c in logs)):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressLog)]
        logs = []
    if enable_progress_bar is None:
        enable_progress_bar = tty or bool(logs)  # off a terminal without ProgressLog: no bar in the file
    return callbacks, bool(enable_progress_bar)


class RunFittedEMA(EMAWeightAveraging):
    """Lightning's EMA of the weights (validation, checkpoints and test use the average) whose
    averaging horizon, about ``1 / (1 - decay)`` steps, :func:`start_averaging_within_run` can fit to
    a short run.

    With ``decay=0.998`` (a 500-step horizon) a 120-step run that starts averaging at step 30 ends with
    84% of its average still the step-30 weights: a comparison at that budget scores stale networks.
    Lightning's callback bakes the decay into its averaging function at construction; this one keeps
    it as ``decay`` and builds the function when fitting begins.

    Args:
        decay: weight of the running average at each update, in [0, 1).
        **kwargs: :class:`~lightning.pytorch.callbacks.EMAWeightAveraging`'s (``update_starting_at_step``,
            ``update_every_n_steps``, ``device``, ``use_buffers``, ...).
    """

    def __init__(self, decay: float = 0.999, **kwargs) -> None:
        if not 0 <= decay < 1:
            raise ValueError(f"callbacks.ema.decay must be in [0, 1), got {decay}")
        super().__init__(decay=decay, **kwargs)
        self.decay = float(decay)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if stage == "fit":  # the AveragedModel is built in super().setup from these kwargs
            self._kwargs["avg_fn"] = get_ema_avg_fn(self.decay)
        super().setup(trainer, pl_module, stage)

    # --- the network that trained is the network scored -----------------------------------------
    # Lightning's WeightAveraging copies the module when fitting begins (after init_from loaded it)
    # and swaps that copy in for every validation, stores it in every checkpoint and copies it back
    # at the end, whether or not it was ever updated: before its first update the "average" is the
    # initial network. A fine-tune whose validations only fell stored its init, bit-identical, as
    # best.ckpt. Until the first update the raw network is validated, stored and kept instead.

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # swapped back at the end only if swapped in here: no update happens during a validation
        self._swapped_for_validation = average_updates(self) > 0
        if self._swapped_for_validation:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if getattr(self, "_swapped_for_validation", False):
            self._swap_models(pl_module)
        self._swapped_for_validation = False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if average_updates(self) > 0:
            super().on_train_end(trainer, pl_module)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if self._average_model is None or average_updates(self) > 0:
            super().on_save_checkpoint(trainer, pl_module, checkpoint)
            return
        # not averaged yet: the raw weights are the checkpoint's weights, and resume finds the
        # average's state (n_averaged 0: its first update copies the network) under Lightning's keys
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        checkpoint["averaging_state"] = {name: value for name, value in self._average_model.state_dict().items()
                                         if not name.startswith("module.")}


def start_averaging_within_run(callbacks: list[L.Callback], max_steps: int) -> None:
    """An EMA that would start after a short run ends starts within it (a quarter of ``max_steps``),
    and a :class:`RunFittedEMA` averages over at most a quarter of the steps left after its start.

    ``callbacks.ema.update_starting_at_step=200`` with ``trainer.max_steps=6`` would validate,
    select and ship the averaged model before its first update, i.e. the untrained network; a
    500-step horizon in a 120-step run would ship mostly the weights of the first update.
    """
    for callback in callbacks:
        start = getattr(callback, "update_starting_at_step", None)
        if isinstance(callback, WeightAveraging) and start is not None and max_steps > 0:
            callback.update_starting_at_step = fit_to_run(int(start), int(max_steps), "EMA start")
        if isinstance(callback, RunFittedEMA) and max_steps > 0 and callback.decay > 0:
            averaged = max_steps - (callback.update_starting_at_step or 0)
            horizon = fit_to_run(round(1 / (1 - callback.decay)), averaged, "EMA horizon (the steps averaged after its start)")
            callback.decay = min(callback.decay, 1 - 1 / max(horizon, 1))
