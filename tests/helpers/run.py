"""Running lfmri's entry points as a user does (subprocesses), and the tiny settings they share."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# the smallest training that exercises the real configs: 32-pixel slices, 16-pixel patches
TINY = [
    "data=folder",
    "degradation.hr_size=32",
    "data.patch_size=16",
    "data.batch_size=4",
    "data.eval_batch_size=4",
    "data.fractions=[0.5,0.25,0.25]",
    "data.num_workers=0",
]


def run_script(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run ``python <script> args`` as a user would; fail with its output if it fails."""
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}  # warnings stay on: the user sees them too
    proc = subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env
    )
    return proc


def check(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    """``proc``, after failing with its output unless it exited 0."""
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDOUT\n{proc.stdout[-3000:]}\nSTDERR\n{proc.stderr[-5000:]}"
    return proc


def run_evaluate(output_dir: Path, **overrides):
    """``evaluate.py``'s code path in-process (no interpreter start-up), with its default config;
    returns its :class:`~lfmri.scoring.report.MetricsTable`."""
    from lfmri.evaluation.evaluator import evaluate
    from tests.helpers.config import evaluate_config

    return evaluate(evaluate_config(output_dir=str(output_dir), **overrides))
