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


def test_reader_errors_of_every_kind_are_each_inputs_failure_and_option_mistakes_one_line(tmp_path, bicubic_checkpoint):
    """A header with datatype code 0 or a folder named x.nii.gz used to stop the whole evaluation
    (no summary, the later inputs skipped); tile_overlap >= tile_size and an output_dir that is a
    file were tracebacks."""
    from tests.helpers.bad_volumes import corrupt_mgz, datatype_zero, folder

    good1, good2 = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE), write_phantom(tmp_path / "e.nii.gz", shape=SHAPE, seed=1)
    bad = [datatype_zero(tmp_path / "b.nii.gz"), corrupt_mgz(tmp_path / "c.mgz"), folder(tmp_path / "d.nii.gz")]
    out = tmp_path / "out"
    inputs = ",".join(map(str, [good1, *bad, good2]))
    proc = run_script("evaluate.py", f"ckpt_path={bicubic_checkpoint}", f"inputs=[{inputs}]", f"output_dir={out}", "device=cpu", "progress=false")
    assert proc.returncode == 1 and "3 input(s) failed" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert all(f"{path}:" in proc.stderr for path in bad)
    assert {row.split(",")[0] for row in (out / "metrics.csv").read_text().splitlines()[1:]} == {"a", "e"}
    blocker = tmp_path / "file"
    blocker.write_text("x")
    for options, reason in [(["tile_size=16", "tile_overlap=16", f"output_dir={tmp_path / 'o'}"], "tile_overlap=16"),
                            ([f"output_dir={blocker}"], "is an existing file")]:
        proc = run_script("evaluate.py", f"ckpt_path={bicubic_checkpoint}", f"inputs=[{good1}]", "device=cpu", *options)
        assert proc.returncode == 2 and reason in proc.stderr and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert blocker.read_text() == "x" and not (tmp_path / "o").exists()
