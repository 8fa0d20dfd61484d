"""Protect a run directory's record before Hydra writes anything into it.

Hydra writes ``.hydra/config.yaml``, ``hydra.yaml`` and ``overrides.yaml`` before the task
function runs, so a rerun that ``train.py`` refuses (the directory already holds checkpoints and
``resume`` is false) would still replace the record of the overrides needed to resume. Hydra
calls its callbacks' ``on_run_start`` before it creates or writes the run directory; the
:class:`ProtectRunRecord` callback (``hydra.callbacks`` in conf/train.yaml) refuses there.
This module imports nothing heavy: it runs on every ``train.py`` start.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig


def requeued_by_slurm() -> bool:
    """Whether SLURM restarted this job (requeue after preemption or time-out): resume it."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0) > 0


def launched_rank() -> int:
    """The rank of a process that Lightning's DDP launcher started by re-running the command line."""
    return max(int(os.environ.get(key, "0") or 0) for key in ("LOCAL_RANK", "RANK", "NODE_RANK"))


def check_run_dir(checkpoint_dir: Path, resume: Any) -> None:
    """Refuse a fresh run in a directory that holds checkpoints, and ``resume=true`` without one."""
    if resume not in (True, False, "auto"):
        raise ValueError(f"resume={resume!r}: expected true, false or auto")
    last = checkpoint_dir / "last.ckpt"
    if resume is True and not last.is_file():
        raise FileNotFoundError(f"resume=true but {last} does not exist; set hydra.run.dir to the run to resume")
    if resume is False and not requeued_by_slurm():
        existing = sorted(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
        if existing:
            raise FileExistsError(
                f"{checkpoint_dir} already holds checkpoints ({', '.join(p.name for p in existing)}); "
                "pass resume=true to continue that run, or choose another hydra.run.dir"
            )


class ProtectRunRecord(Callback):
    """Refuses a ``train.py`` run before Hydra creates its directory or writes ``.hydra/``."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if launched_rank() != 0:  # later ranks start once rank zero may have saved: it alone judges
            return
        run_dir = Path(str(config.hydra.run.dir))
        try:
            check_run_dir(run_dir / "checkpoints", config.get("resume", False))
        except (FileExistsError, FileNotFoundError, ValueError) as err:
            # one line, exit status 2: a user mistake, found before anything was written
            print(f"train.py: error: {err}", file=sys.stderr)  # the format of lfmri.cli.common.fail
            raise SystemExit(2) from None
