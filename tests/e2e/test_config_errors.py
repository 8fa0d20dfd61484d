"""train.py refuses an unknown option or an incompatible scale before training."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.run import run_script

pytestmark = pytest.mark.e2e


def test_unknown_group_option_fails_before_training_listing_valid_ones(tmp_path):
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
