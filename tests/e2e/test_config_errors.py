"""train.py refuses an unknown option or an incompatible scale before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.run import run_script

pytestmark = pytest.mark.e2e


def test_unknown_group_option_fails_before_training_listing_valid_ones(tmp_path):
    import os
    import subprocess
    import sys

    # as a user runs it: one line, exit 2, the valid options
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "train.py", "model=nope", f"hydra.run.dir={tmp_path}/run"], cwd=Path(__file__).parents[2],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "train.py: error: model=nope: model has no option 'nope'; options: " in proc.stderr and "srdensenet" in proc.stderr
    assert not (tmp_path / "run").exists()
    # HYDRA_FULL_ERROR=1 (run_script's, a user's): Hydra's own report, its options listed
    proc = run_script("train.py", "model=nope", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    assert "Could not find 'model/nope'" in proc.stderr
    assert "Available options in 'model'" in proc.stderr and "srdensenet" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_incompatible_scale_fails_before_training(tmp_path):
    proc = run_script("train.py", "degradation=kspace_zerofill", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    assert "returns its LR on the HR grid" in proc.stderr
    assert not Path(tmp_path / "run" / "checkpoints").exists()


def test_scale_abc_is_one_line_and_a_diverging_run_stops_with_exit_2(tmp_path):
    """``scale=abc`` was Hydra's multi-line error (exit 1); a learning rate that makes the loss NaN
    trained to the end and exited 0."""
    from tests.helpers.run import TINY
    from tests.helpers.volumes import write_phantom_volumes

    write_phantom_volumes(tmp_path / "volumes")
    data = [*TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz"]
    proc = run_script("train.py", *data, "scale=abc", f"hydra.run.dir={tmp_path}/run1")
    assert proc.returncode == 2 and "train.py: error: degradation.scale must be a positive integer, got 'abc'" in proc.stderr
    proc = run_script("train.py", *data, "module.optimizer.lr=1e30", "trainer.max_steps=6", "trainer.limit_val_batches=0",
                      f"hydra.run.dir={tmp_path}/run2")
    assert proc.returncode == 2 and "train.py: error: training diverged at step" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
