"""Checkpoint files that are never half written.

A run killed (SIGKILL, node failure, full disk) while ``torch.save`` streams a checkpoint would
otherwise leave a truncated ``last.ckpt`` and nothing to resume from. Here every checkpoint is
written to a temporary file in the same directory, flushed to disk, and renamed over the target:
the rename is atomic on POSIX file systems, so readers see the old file or the new one, never a
mix.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO


log = logging.getLogger(__name__)
_TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp")  # the names atomic_torch_save writes to


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files of :func:`atomic_torch_save` that a killed process left in ``folder``.

    A SIGKILL during a write leaves ``.last.ckpt.<pid>.<id>.tmp``; only files whose writing
    process is gone are removed (a live writer keeps its file). Returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and (int(match[1]) == os.getpid() or not _alive(int(match[1]))):
            path.unlink(missing_ok=True)
            removed.append(path)
            log.info("removed %s, left by an interrupted checkpoint write", path)
    return removed


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save(obj, path)`` that leaves ``path`` either untouched or complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # same directory (rename stays on one file system), unique name, the usual permissions
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "xb") as file:
            torch.save(obj, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass  # some file systems cannot fsync directories; the file itself is on disk
    finally:
        os.close(dir_fd)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint IO with atomic writes (``trainer.plugins`` in conf/trainer)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: str | Path, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} takes no storage_options, got {storage_options!r}")
        atomic_torch_save(checkpoint, path)
