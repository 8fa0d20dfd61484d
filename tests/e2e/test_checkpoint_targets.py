"""Crafted ``_target_`` values in a checkpoint are refused by train.py (resume) and evaluate.py's command line."""

from __future__ import annotations

import os

import pytest

from tests.helpers.checkpoints import KINDS, crafted, interpolating, untouched
from tests.helpers.run import ROOT, TINY, run_script
from tests.helpers.volumes import write_phantom

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("kind", KINDS)
def test_resume_refuses_a_crafted_last_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt.rename(run_dir / "checkpoints" / "last.ckpt")
    write_phantom(tmp_path / "volumes" / "a.nii.gz")
    proc = run_script("train.py", *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "resume=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0 and "refused to build lfmri.config." in proc.stderr
    assert untouched(kind, witness)


def test_the_command_lines_refuse_in_one_line_with_exit_status_2(tmp_path):
    import subprocess
    import sys

    ckpt, witness = crafted(tmp_path, "open")
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "evaluate.py", f"ckpt_path={ckpt}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"evaluate.py: error: {ckpt}: refused to build lfmri.config.degradation._target_='builtins.open'" in proc.stderr
    assert untouched("open", witness)


def test_resume_refuses_an_interpolation_in_the_stored_config(tmp_path):
    """``${oc.create:{_target_: numpy.savetxt ...}}`` in a stored value wrote its file; now one line, exit 2."""
    ckpt, witness = interpolating(tmp_path, "data")
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt.rename(run_dir / "checkpoints" / "last.ckpt")
    write_phantom(tmp_path / "volumes" / "a.nii.gz")
    proc = run_script("train.py", *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "resume=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert "last.ckpt: refused lfmri.config.data.payload=" in proc.stderr
    assert not witness.exists()
