"""A run directory's record is never replaced by a run that should not write there.

Hydra writes ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` before the task
function runs, so a rerun that would be refused later (the directory already holds checkpoints
and ``resume`` is false) would still replace the record of the overrides needed to resume.
:func:`check_run_dir` is therefore called by :class:`lfmri.cli.common.RunChecks`, the Hydra
callback that runs before Hydra creates or writes the run directory.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from lfmri.errors import ConfigError, ExistingOutputError
from lfmri.files import LOCK_NAME


def requeued_by_slurm() -> bool:
    """Whether SLURM restarted this job (requeue after preemption or time-out): resume it."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def check_run_dir(checkpoint_dir: Path, resume: Any) -> None:
    """Refuse a fresh run in a directory that holds checkpoints, and a ``resume`` that is not a switch."""
    if resume not in (True, False, "auto"):
        raise ConfigError(f"resume={resume!r}: expected true, false or auto")
    if resume is False and not requeued_by_slurm():
        existing = sorted(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
        if existing:
            raise ExistingOutputError(
                f"{checkpoint_dir} already holds checkpoints ({', '.join(p.name for p in existing)}); "
                "pass resume=true to continue that run, or choose another hydra.run.dir"
            )


def check_new_or_resumed(run_dir: Path, resume: Any) -> None:
    """A training run folder is new (absent or empty), or the run it holds is being resumed, or refused.

    ``resume=true`` (or ``auto``) with the run's ``checkpoints/last.ckpt`` continues that run (its
    config compared by :func:`lfmri.cli.common.check_resume`); a SLURM requeue continues its own job.
    Anything else found in the folder belongs to someone else (an earlier run, the user's files): a
    new run would replace its ``metrics.json``, ``split.json``, logs and ``.hydra/``, so it is refused
    before anything is written.
    """
    if not run_dir.exists():
        return
    if not run_dir.is_dir():
        raise ExistingOutputError(f"hydra.run.dir={run_dir} is an existing file, not a folder; give a new folder for the run")
    if resume in (True, "auto") and (run_dir / "checkpoints" / "last.ckpt").is_file():
        return
    if requeued_by_slurm():
        return
    found = sorted(p.name for p in run_dir.iterdir() if p.name != LOCK_NAME)
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        raise ExistingOutputError(
            f"hydra.run.dir={run_dir} already holds {shown}: a new run starts in a new or empty folder "
            "(choose another hydra.run.dir), and resume=true continues a run that saved checkpoints/last.ckpt there"
        )


def missing_folders(run_dir: Path) -> list[Path]:
    """The folders a run creates for ``run_dir``: it and each parent that does not exist yet, deepest first."""
    created, folder = [], run_dir
    while not folder.exists() and folder.parent != folder:
        created.append(folder)
        folder = folder.parent
    return created


def remove_created(run_dir: Path, was_new: bool, created: list[Path]) -> None:
    """After a failed fresh run: remove what this run created, and nothing else.

    ``run_dir`` was new (absent or empty) when the run started and this run held its lock since
    (:func:`lfmri.files.lock_folder`), so everything in it is this run's own: its contents go. The
    folders above it that this run created (``created``, deepest first, from :func:`missing_folders`)
    are removed only while empty (``rmdir``): another job may have put files there meanwhile
    (``outputs/train/<its own run>``), and those stay with their folders.
    """
    if not was_new or not run_dir.is_dir():
        return
    for child in run_dir.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    for folder in created:  # run_dir itself first (when this run created it), then its new parents
        try:
            folder.rmdir()
        except OSError:  # not empty: holds what another process created; it stays, and so do its parents
            break
