"""Lightning callbacks that lfmri's configs add to every training run."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from lightning.pytorch.utilities.exceptions import SIGTERMException

log = logging.getLogger(__name__)


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
