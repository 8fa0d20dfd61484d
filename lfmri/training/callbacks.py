"""Lightning callbacks that lfmri's configs add to every training run."""

from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import WeightAveraging
from lightning.pytorch.utilities.exceptions import SIGTERMException

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
    """Writes ``path`` (``last.ckpt``) when a SIGTERM stops training, so that nothing is lost.

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
            log.warning("SIGTERM at step %d: saved %s", trainer.global_step, self.path)


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
        return [cb for cb in trainer.callbacks if isinstance(cb, WeightAveraging) and cb._average_model is not None]

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for callback in self._averaging(trainer):
            callback._swap_models(pl_module)

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        for callback in self._averaging(trainer):
            callback._swap_models(pl_module)


class ProgressLog(L.Callback):
    """Progress as log lines, for output that is not a terminal (SLURM, ``docker logs``, nohup).

    Lightning's progress bar redraws one line in place: in a file it shows up, if at all, at the
    end. Every ``every_n_steps`` optimiser steps this logs ``epoch E step S/T: loss L, lr R, X
    steps/s, Y patches/s`` and after each validation the monitored metrics, through the ``logging``
    module (so into ``train.log`` and the console). ``only_without_tty`` (default) keeps a
    terminal with its progress bar free of them.
    """

    def __init__(self, every_n_steps: int = 50, only_without_tty: bool = True) -> None:
        if every_n_steps < 1:
            raise ValueError(f"callbacks.progress_log.every_n_steps={every_n_steps}: must be at least 1")
        self.every_n_steps = int(every_n_steps)
        self.only_without_tty = bool(only_without_tty)
        self._last: tuple[float, int, int] | None = None  # (time, step, samples) of the last line
        self._samples = 0

    @property
    def active(self) -> bool:
        return not (self.only_without_tty and sys.stdout.isatty())

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._samples = 0
        self._last = (time.perf_counter(), trainer.global_step, 0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs, batch, batch_idx: int) -> None:
        hr = batch.get("hr") if isinstance(batch, dict) else None
        self._samples += int(hr.shape[0]) if hr is not None else 0
        step = trainer.global_step
        if not self.active or not trainer.is_global_zero or self._last is None or step == self._last[1]:
            return
        if step % self.every_n_steps and step != trainer.max_steps:
            return
        now = time.perf_counter()
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
        log.info(", ".join(parts))
        self._last = (now, step, self._samples)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.active or trainer.sanity_checking or not trainer.is_global_zero:
            return
        values = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and v.numel() == 1}
        if values:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(values.items()))
            log.info("epoch %d step %d validation: %s", trainer.current_epoch, trainer.global_step, shown)
