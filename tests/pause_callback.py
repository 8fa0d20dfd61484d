"""A callback for tests that kill a training run: it parks the run at a known step.

Added from the command line (``+callbacks.pause._target_=tests.pause_callback.PauseAtStep``), it
writes ``flag`` once ``global_step`` reaches ``step`` and then waits, so that a test can send
SIGTERM or SIGKILL at a reproducible point in the middle of an epoch. A SIGTERM ends the wait:
Lightning then stops the run after this batch.
"""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L


class PauseAtStep(L.Callback):
    def __init__(self, step: int, flag: str, timeout_s: float = 120.0) -> None:
        self.step = int(step)
        self.flag = Path(flag)
        self.timeout_s = float(timeout_s)

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step != self.step or self.flag.exists():
            return
        self.flag.write_text(str(trainer.global_step))
        deadline = time.monotonic() + self.timeout_s
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)
