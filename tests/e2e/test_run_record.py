"""The run record: a refused rerun leaves ``.hydra/`` as it was; a resume keeps the stored split."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers.run import TINY, check, run_script
from tests.helpers.volumes import write_phantom, write_phantom_volumes

pytestmark = pytest.mark.e2e


SHORT = ["trainer.max_epochs=1", "data.patches_per_epoch=8", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> tuple[Path, Path]:
    """A short finished run (one epoch) on four phantom subjects: (volume folder, run directory)."""
    root = tmp_path_factory.mktemp("record")
    volumes = write_phantom_volumes(root / "volumes")
    run_dir = root / "run"
    check(run_script("train.py", *TINY, *SHORT, f"data.pattern={volumes}/*.nii.gz", f"hydra.run.dir={run_dir}"))
    return volumes, run_dir


def record(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / ".hydra").iterdir())}


def test_a_refused_rerun_leaves_the_run_record_byte_identical(finished):
    volumes, run_dir = finished
    before = record(run_dir)
    assert sorted(before) == ["config.yaml", "hydra.yaml", "overrides.yaml"]
    proc = run_script("train.py", *TINY, "model=espcn", f"data.pattern={volumes}/*.nii.gz", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "already holds checkpoints" in proc.stderr and "resume=true" in proc.stderr and "Traceback" not in proc.stderr
    assert record(run_dir) == before
    # resume=true where there is nothing to resume: refused before a directory is even created
    missing = run_dir.parent / "never-ran"
    proc = run_script("train.py", *TINY, "resume=true", f"hydra.run.dir={missing}")
    assert proc.returncode == 2 and "last.ckpt does not exist" in proc.stderr and not missing.exists()


def test_a_resume_after_volumes_were_added_keeps_the_stored_split(finished, tmp_path):
    volumes, run_dir = finished
    split = json.loads((run_dir / "split.json").read_text())
    for i in (4, 5, 6):  # new subjects would move others between the sets if the split were redrawn
        write_phantom(volumes / f"sub-{i:02d}.nii.gz", seed=i)
    proc = check(run_script("train.py", *TINY, *SHORT[1:], "trainer.max_epochs=2", f"data.pattern={volumes}/*.nii.gz",
                            f"hydra.run.dir={run_dir}", "resume=true"))
    assert json.loads((run_dir / "split.json").read_text()) == split
    log = proc.stdout + proc.stderr
    assert "resuming with the stored split" in log and "sub-04" in log and "not used" in log
