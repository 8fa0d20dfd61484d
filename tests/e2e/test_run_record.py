"""The run record: a refused rerun leaves ``.hydra/`` as it was; a resume keeps the stored split; one writer per run folder."""

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


def test_a_second_training_into_a_running_runs_folder_is_refused(finished, tmp_path):
    """Two trainings started a second apart into one folder both exit 0, with one's checkpoints replaced."""
    import shutil
    import signal
    import subprocess
    import sys
    import time

    from tests.helpers.run import ROOT

    volumes, finished_dir = finished
    run_dir = tmp_path / "run"
    shutil.copytree(finished_dir, run_dir)
    import torch

    flag = tmp_path / "paused"
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)  # other tests extend the run
    args = ["train.py", *TINY, *SHORT, f"trainer.max_epochs={last['epoch'] + 3}", f"data.pattern={volumes}/*.nii.gz", "resume=true",
            f"hydra.run.dir={run_dir}"]
    pause = ["+callbacks.pause._target_=tests.helpers.pause_callback.PauseAtStep", f"+callbacks.pause.step={last['global_step'] + 1}",
             f"+callbacks.pause.flag={flag}"]
    first = subprocess.Popen([sys.executable, *args, *pause], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 300
        while not flag.exists():
            assert first.poll() is None, first.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the first run never reached its pause"
            time.sleep(0.1)
        before = record(run_dir)
        second = run_script(*args)
        assert second.returncode == 2 and "Traceback" not in second.stderr, second.stderr[-3000:]
        assert f"hydra.run.dir={run_dir}: another lfmri process (pid {first.pid}) is writing into this folder" in second.stderr
        assert record(run_dir) == before
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
