"""A callback for tests that kill a training run: it parks the run at a known step.

Added from the command line (``+callbacks.pause._target_=tests.helpers.pause_callback.PauseAtStep``), it
writes ``flag`` once ``global_step`` reaches ``step`` and then waits, so that a test can send
SIGTERM or SIGKILL at a reproducible point in the middle of an epoch. A SIGTERM ends the wait:
Lightning then stops the run after this batch.

``during_write=N`` parks the run inside the N-th checkpoint file written at ``step`` instead (at the
end of epoch 1 with ``val_check_interval=1.0``: 1 is ``best.ckpt``, 2 is ``last.ckpt``): an object put
into the checkpoint waits while ``torch.save`` pickles it, with the file open and partly written,
so a SIGKILL there is a kill in the middle of the write.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L


class PauseAtStep(L.Callback):
    """``epoch_end=true``: park when the next epoch starts instead, right after the epoch-end checkpoint."""

    def __init__(self, step: int, flag: str, timeout_s: float = 120.0, epoch_end: bool = False, during_write: int = 0) -> None:
        self.step = int(step)
        self.flag = Path(flag)
        self.timeout_s = float(timeout_s)
        self.epoch_end = bool(epoch_end)
        self.during_write = int(during_write)
        self._writes = 0

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict) -> None:
        if not self.during_write or trainer.global_step != self.step:
            return
        self._writes += 1
        if self._writes == self.during_write and not self.flag.exists():
            checkpoint["paused_while_written"] = PauseWhilePickled(self.flag, self.timeout_s)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if not self.epoch_end and not self.during_write:
            self.pause(trainer)

    def on_train_epoch_start(self, trainer: L.Trainer, *args) -> None:
        # ModelCheckpoint saves the validated epoch in on_train_epoch_end (val_check_interval=1.0),
        # after every other callback's hook: the next epoch's start is the first moment after it
        if self.epoch_end and not self.during_write:
            self.pause(trainer)

    def pause(self, trainer: L.Trainer) -> None:
        if trainer.global_step != self.step or self.flag.exists():
            return
        self.flag.write_text(str(trainer.global_step))
        deadline = time.monotonic() + self.timeout_s
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)


class PauseWhilePickled:
    """Writes ``flag`` and waits when pickled (inside ``torch.save``); stored as the integer 0."""

    def __init__(self, flag: Path, timeout_s: float) -> None:
        self.flag, self.timeout_s = flag, timeout_s

    def __reduce__(self):
        self.flag.write_text("writing")
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:  # only a kill ends this wait early
            time.sleep(0.05)
        return int, (0,)
