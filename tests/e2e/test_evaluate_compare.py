"""evaluate.py with several checkpoints: one table and one figure, every method on the same slices.

Two tiny networks with different input modes (SRDenseNet reads the LR grid, VDSR the pre-upsampled
LR) are trained once with fast_dev_run; the comparison must give each exactly what a
single-checkpoint evaluation gives it."""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lfmri.checkpoints.load import METADATA_KEY
from lfmri.scoring.metrics import METRICS
from lfmri.scoring.report import MetricsTable
from tests.helpers.run import TINY, check, run_evaluate, run_script
from tests.helpers.volumes import write_phantom, write_phantom_volumes

pytestmark = pytest.mark.e2e


METHODS = {"srdensenet", "vdsr", "zerofill", "bicubic", "nlm3d"}  # nlm3d: evaluate's default classical row


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """SRDenseNet and VDSR trained (fast_dev_run) on the same phantoms, as one multirun."""
    root = tmp_path_factory.mktemp("compare")
    write_phantom_volumes(root / "volumes")
    sweep = root / "sweep"
    check(run_script(
        "train.py", "-m", "model=srdensenet,vdsr", *TINY, f"data.pattern={root}/volumes/*.nii.gz",
        "trainer.fast_dev_run=true", f"hydra.sweep.dir={sweep}",
    ))
    return root, [sweep / job / "checkpoints" / "last.ckpt" for job in ("0", "1")]


@pytest.fixture(scope="module")
def compared(runs):
    """``evaluate.py ckpt_paths=[...]`` on two input volumes, as a user runs it."""
    root, ckpts = runs
    inputs = [root / "volumes" / "sub-00.nii.gz", write_phantom(root / "small.nii.gz", shape=(40, 48, 10), seed=7)]
    out = root / "compared"
    proc = check(run_script(
        "evaluate.py", f"ckpt_paths=[{ckpts[0]},{ckpts[1]}]", f"inputs=[{inputs[0]},{inputs[1]}]", f"output_dir={out}"
    ))
    return inputs, out, proc


def rows_by_key(table: MetricsTable) -> dict:
    return {(r["subject"], r["slice"], r["method"]): r for r in table.rows}


def test_one_table_with_every_checkpoint_and_baseline_per_subject(compared):
    inputs, out, proc = compared
    table = MetricsTable.read_csv(out / "metrics.csv")
    assert set(table.subjects) == {"sub-00", "small"}
    for subject in table.subjects:
        summary = table.summary(subject)
        assert set(summary) == METHODS
        for stats in summary.values():
            assert set(stats) == set(METRICS) and len(METRICS) == 8
            assert all(math.isfinite(stats[k][0]) and stats[k][2] > 0 for k in METRICS)
    # every method scored exactly the same slices
    slices = {m: sorted((r["subject"], r["slice"]) for r in table.rows if r["method"] == m) for m in METHODS}
    assert len({tuple(s) for s in slices.values()}) == 1
    with (out / "metrics.csv").open() as f:
        assert csv.DictReader(f).fieldnames == ["subject", "slice", "method", *METRICS]
    markdown = (out / "metrics.md").read_text()
    # neither volume trained the first checkpoint: pooled under that name
    for subject in ("sub-00", "small", "all unseen (2)"):
        assert all(f"| {subject} | {m} |" in markdown for m in METHODS)
    assert "| all |" not in markdown and "seen in training" not in markdown
    assert "NRMSE brain" in markdown and "HFEN brain" in markdown
    assert "| sub-00 | vdsr |" in proc.stdout
    for path in inputs:
        name = path.name.replace(".nii.gz", "")
        for kind in ("sr_srdensenet", "sr_vdsr", "zerofill", "bicubic", "nlm3d", "lr", "hr"):
            assert (out / f"{name}_{kind}.nii.gz").is_file(), kind
        assert not (out / f"{name}_sr.nii.gz").exists()
        assert (out / f"{name}_comparison.png").stat().st_size > 10_000


def test_each_checkpoint_gets_what_a_single_evaluation_gives_it(runs, compared, tmp_path):
    _, ckpts = runs
    inputs, out, _ = compared
    together = rows_by_key(MetricsTable.read_csv(out / "metrics.csv"))
    for ckpt, method in zip(ckpts, ("srdensenet", "vdsr")):
        single = tmp_path / method
        alone = rows_by_key(run_evaluate(single, ckpt_path=str(ckpt), inputs=[str(p) for p in inputs]))
        assert {k[2] for k in alone} == {method, "zerofill", "bicubic", "nlm3d"}
        for key, row in alone.items():
            for metric in METRICS:  # the CSV keeps 6 decimals
                assert together[key][metric] == pytest.approx(row[metric], abs=2e-6), (key, metric)
        for path in inputs:
            name = path.name.replace(".nii.gz", "")
            for kind, other in ((f"sr_{method}", "sr"), ("lr", "lr"), ("bicubic", "bicubic")):
                a, b = nib.load(out / f"{name}_{kind}.nii.gz"), nib.load(single / f"{name}_{other}.nii.gz")
                scale = np.abs(b.get_fdata()).max()
                np.testing.assert_allclose(a.get_fdata(), b.get_fdata(), rtol=0, atol=1e-5 * scale)
                np.testing.assert_array_equal(a.affine, b.affine)


@pytest.mark.precision  # .ci/run runs these again with the other answer to "native bf16?"
def test_comparison_on_the_test_split_matches_each_training_test_table(runs, tmp_path):
    _, ckpts = runs
    evaluated = rows_by_key(run_evaluate(tmp_path / "split", ckpt_paths=[str(c) for c in ckpts]))
    for ckpt in ckpts:
        trained = MetricsTable.read_csv(ckpt.parents[1] / "test" / "metrics.csv").rows
        assert trained
        for row in trained:
            other = evaluated[(row["subject"], row["slice"], row["method"])]
            for metric in METRICS:
                assert other[metric] == pytest.approx(row[metric], abs=1e-4), (row, metric)


def altered_copy(ckpt: Path, dest: Path, edit) -> Path:
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    edit(checkpoint[METADATA_KEY])
    dest.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint, dest)
    return dest


def test_mismatched_checkpoints_fail_before_any_work_naming_both_files(runs, tmp_path):
    root, ckpts = runs

    def other_recipe(meta):
        meta["config"]["degradation"]["noise_std"] = [0.02, 0.02]
        meta["config"]["data"]["slice_axis"] = 1

    other = altered_copy(ckpts[1], tmp_path / "other" / "checkpoints" / "last.ckpt", other_recipe)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as err:
        run_evaluate(out, ckpt_paths=[str(ckpts[0]), str(other)], inputs=[str(root / "volumes" / "sub-01.nii.gz")])
    message = str(err.value)
    assert str(ckpts[0]) in message and str(other) in message
    assert "degradation.noise_std" in message and "data.slice_axis" in message and "hr_size" not in message
    assert not out.exists()

    def trained_on_the_test_subject(meta):
        meta["split"]["train"] = meta["split"]["train"] + meta["split"]["test"]

    leaky = altered_copy(ckpts[1], tmp_path / "leaky" / "checkpoints" / "last.ckpt", trained_on_the_test_subject)
    with pytest.raises(ValueError, match="not unseen") as err:
        run_evaluate(out, ckpt_paths=[str(ckpts[0]), str(leaky)])
    assert str(leaky) in str(err.value) and not out.exists()


def test_duplicate_model_names_are_disambiguated_by_run_directory(runs, tmp_path):
    root, ckpts = runs
    twin = tmp_path / "run2" / "checkpoints" / "last.ckpt"
    twin.parent.mkdir(parents=True)
    shutil.copy(ckpts[0], twin)
    volume = write_phantom(tmp_path / "tiny.nii.gz", shape=(40, 48, 4), seed=5)
    out = tmp_path / "out"
    args = {"ckpt_paths": [str(ckpts[0]), str(twin)], "inputs": [str(volume)]}
    table = run_evaluate(out, **args)
    assert set(table.methods) == {"srdensenet (0)", "srdensenet (run2)", "zerofill", "bicubic", "nlm3d"}
    means = table.means("tiny")
    assert means["srdensenet (0)"] == means["srdensenet (run2)"]  # same weights, separate rows
    a, b = (nib.load(out / f"tiny_sr_srdensenet_{run}.nii.gz").get_fdata() for run in ("0", "run2"))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        run_evaluate(out, **args)


def test_tta_uncertainty_is_scored_against_the_actual_error(runs, tmp_path):
    root, ckpts = runs
    out = tmp_path / "tta"
    run_evaluate(out, ckpt_paths=[str(c) for c in ckpts], inputs=[str(root / "volumes" / "sub-01.nii.gz")], tta=True)
    with open(out / "uncertainty.csv") as f:
        rows = list(csv.DictReader(f))
    scored = {(r["slice"], r["method"]) for r in MetricsTable.read_csv(out / "metrics.csv").rows if r["method"] in ("srdensenet", "vdsr")}
    assert {(int(r["slice"]), r["method"]) for r in rows} == {(int(s), m) for s, m in scored}
    rho = np.array([float(r["spearman"]) for r in rows])
    assert np.all(np.isnan(rho) | ((rho >= -1) & (rho <= 1))) and np.isfinite(rho).any()
    assert "| srdensenet |" in (out / "uncertainty.md").read_text()
