"""A run directory's record is never replaced by a run that should not write there.

Hydra writes ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` before the task
function runs, so a rerun that would be refused later (the directory already holds checkpoints
and ``resume`` is false) would still replace the record of the overrides needed to resume.
:func:`check_run_dir` is therefore called by :class:`lfmri.cli.common.RunChecks`, the Hydra
callback that runs before Hydra creates or writes the run directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from lfmri.errors import ConfigError, ExistingOutputError


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
