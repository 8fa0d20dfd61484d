"""``benchmarks/comparisons.py``: a paper's comparison as a sweep, scored on the unseen subjects (a tiny budget:
it proves the pipeline, not the numbers)."""

from __future__ import annotations

import pytest

from tests.helpers.run import ROOT, check, run_script

pytestmark = pytest.mark.e2e


def test_a_comparison_trains_its_rows_as_one_sweep_and_reports_them_on_the_unseen_subjects(phantom_dir, tmp_path):
    out = tmp_path / "comparisons"
    args = [str(ROOT / "benchmarks" / "comparisons.py"), "--set", "mrln_x2", "--data", str(phantom_dir / "*.nii.gz"),
            "--subjects", "{val:[sub-01],test:[sub-02,sub-03]}", "--out", str(out), "--steps", "4", "--batch", "2",
            "--validations", "2", "--rows", "srcnn", "espcn"]
    tiny = ["data.patch_size=16", "data.eval_batch_size=4", "data.num_workers=0", "trainer.limit_test_batches=2"]
    first = check(run_script(*args, *[f"--override={o}" for o in tiny], timeout=900)).stdout
    assert "lfmri.cli.train -m" in first and "model=srcnn,espcn" in first
    for row in ("srcnn", "espcn"):  # one run directory per row, named after it, tested on the unseen subjects only
        assert (out / "mrln_x2" / row / "test" / "metrics.csv").is_file()
    assert (out / "mrln_x2" / "summary.md").is_file()  # ranked by lfmri-sweep summarize
    table = first[first.index("**MRLN comparison x2"):]
    lines = {line.split("|")[1].strip(): line for line in table.splitlines() if line.startswith("| ")}
    assert "| 40.55 |" in lines["bicubic (baseline)"] and "| 44.96 | 4 |" in lines["SRCNN"]
    assert "not trained yet" in lines["MRLN"] and "not trained yet" in lines["FSRCNN"]
    assert "Ranking by whole-slice PSNR here:" in table and "by in-brain PSNR here:" in table
    # run again: the tested rows are not trained again, the table is the same; --classical adds the
    # rows beside the 3D denoiser on the same unseen slices (one evaluate.py over both checkpoints)
    again = check(run_script(*args, "--classical", timeout=300)).stdout
    assert "lfmri.cli.train" not in again and again[again.index("**MRLN comparison x2"):].startswith(table.rstrip())
    assert "lfmri.cli.evaluate ckpt_paths=[" in again and (out / "mrln_x2" / "evaluation" / "metrics.csv").is_file()
    beside = again[again.index("beside the classical 3D denoiser"):]
    assert "| nlm3d |" in beside and "| bicubic | " in beside and "Strongest classical row: nlm3d" in beside
