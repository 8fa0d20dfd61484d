"""evaluate.py runs every volume but a bad one, names it, leaves nothing partial and exits 1."""

from __future__ import annotations

import pytest

from tests.helpers.bad_volumes import SHAPE, degenerate
from tests.helpers.run import run_script
from tests.helpers.volumes import outputs, write_phantom

pytestmark = pytest.mark.e2e


def test_evaluate_runs_every_other_volume_and_exits_1(tmp_path, bicubic_checkpoint):
    good1, good2 = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE), write_phantom(tmp_path / "c.nii.gz", shape=SHAPE, seed=1)
    bad = degenerate(tmp_path / "b.nii.gz")
    out = tmp_path / "out"
    proc = run_script("evaluate.py", f"ckpt_path={bicubic_checkpoint}", f"inputs=[{good1},{bad},{good2}]", f"output_dir={out}", "device=cpu")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"{bad}: has a degenerate affine" in proc.stderr and "Traceback" not in proc.stderr
    written = outputs(out)
    assert "a_comparison.png" in written and "c_comparison.png" in written and not [n for n in written if n.startswith(("b_", ".")) and n != ".hydra"]  # Hydra's record of the evaluation, no staging leftovers
    subjects = {row.split(",")[0] for row in (out / "metrics.csv").read_text().splitlines()[1:]}
    assert subjects == {"a", "c"}
