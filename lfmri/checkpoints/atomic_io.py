"""Checkpoint files that are never half written.

A run killed (SIGKILL, node failure, full disk) while ``torch.save`` streams a checkpoint would
otherwise leave a truncated ``last.ckpt`` and nothing to resume from. Here every checkpoint is
written to a temporary file in the same directory, flushed to disk, and renamed over the target:
the rename is atomic on POSIX file systems, so readers see the old file or the new one, never a
mix.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from lfmri.errors import StorageError
from lfmri.files import atomic_write


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that leaves ``path`` either untouched or complete (:func:`lfmri.files.atomic_write`).

    A write the file system refuses (a full disk, a quota, a read-only folder) raises
    :class:`~lfmri.errors.StorageError` naming the file: one line, the previous file kept.
    """
    try:
        with atomic_write(path) as tmp:
            torch.save(obj, tmp)
    except OSError as err:
        raise StorageError(f"{path}: could not be written ({err.strerror or err}); the previous file, if any, is kept. "
                           "Free space (or fix the folder's permissions), then resume the run") from err
    except RuntimeError as err:
        # torch's zip writer reports a failed write as RuntimeError("... file write failed") or, when the
        # disk fills between two records, "[enforce fail at inline_container.cc] . unexpected pos N vs M"
        text = str(err).lower()
        if "write" not in text and "unexpected pos" not in text:
            raise
        raise StorageError(f"{path}: could not be written ({str(err).strip().splitlines()[0]}); the previous file, if any, "
                           "is kept. Free space (or fix the folder's permissions), then resume the run") from err


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic writes (``trainer.plugins`` in conf/trainer)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)
