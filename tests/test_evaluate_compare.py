"""evaluate.py with several checkpoints: one table and one figure, every method on the same slices.

Two tiny networks with different input modes (SRDenseNet reads the LR grid, VDSR the pre-upsampled
LR) are trained once with fast_dev_run; the comparison must give each exactly what a
single-checkpoint evaluation gives it. Plus NRMSE/HFEN on known values and the report's bolding.
"""

from __future__ import annotations

import csv
import math
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from lfmri.checkpoints.load import METADATA_KEY
from lfmri.data.splits import subject_groups
from lfmri.evaluation.evaluator import evaluate, method_names
from lfmri.losses.hfen import log_filter, log_kernel
from lfmri.scoring.metrics import METRICS, brain_mask, hfen, nrmse, slice_metrics
from lfmri.scoring.report import DISPLAY_ORDER, MetricsTable
from tests.conftest import ROOT, run_script, write_phantom, write_phantom_volumes
from tests.test_end_to_end import TINY, check

METHODS = {"srdensenet", "vdsr", "zerofill", "bicubic"}


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


def run_evaluate(output_dir: Path, **overrides) -> MetricsTable:
    """``evaluate.py``'s code path in-process (no interpreter start-up), with its default config."""
    cfg = OmegaConf.load(ROOT / "conf" / "evaluate.yaml")
    cfg.pop("hydra")
    return evaluate(OmegaConf.merge(cfg, {"output_dir": str(output_dir), **overrides}))


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
        for kind in ("sr_srdensenet", "sr_vdsr", "zerofill", "bicubic", "lr", "hr"):
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
        assert {k[2] for k in alone} == {method, "zerofill", "bicubic"}
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


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"ckpt_path": "a.ckpt", "ckpt_paths": ["b.ckpt"]}, "got both"),
        ({}, "got neither"),
        ({"ckpt_paths": "a.ckpt"}, "non-empty list"),
    ],
)
def test_exactly_one_of_ckpt_path_and_ckpt_paths(overrides, message, tmp_path):
    with pytest.raises(ValueError, match=message) as err:
        run_evaluate(tmp_path / "out", **overrides)
    assert "ckpt_path=" in str(err.value) and "ckpt_paths=" in str(err.value)


def test_duplicate_model_names_are_disambiguated_by_run_directory(runs, tmp_path):
    root, ckpts = runs
    twin = tmp_path / "run2" / "checkpoints" / "last.ckpt"
    twin.parent.mkdir(parents=True)
    shutil.copy(ckpts[0], twin)
    volume = write_phantom(tmp_path / "tiny.nii.gz", shape=(40, 48, 4), seed=5)
    out = tmp_path / "out"
    args = {"ckpt_paths": [str(ckpts[0]), str(twin)], "inputs": [str(volume)]}
    table = run_evaluate(out, **args)
    assert set(table.methods) == {"srdensenet (0)", "srdensenet (run2)", "zerofill", "bicubic"}
    means = table.means("tiny")
    assert means["srdensenet (0)"] == means["srdensenet (run2)"]  # same weights, separate rows
    a, b = (nib.load(out / f"tiny_sr_srdensenet_{run}.nii.gz").get_fdata() for run in ("0", "run2"))
    np.testing.assert_array_equal(a, b)
    with pytest.raises(FileExistsError, match="overwrite=true"):
        run_evaluate(out, **args)


def test_method_names_get_more_specific_only_where_they_collide():
    paths = [Path("a/run1/checkpoints/last.ckpt"), Path("b/run1/checkpoints/best.ckpt"), Path("c/x/espcn.ckpt")]
    assert method_names(["srdensenet", "vdsr", "espcn"], paths) == ["srdensenet", "vdsr", "espcn"]
    assert method_names(["vdsr", "vdsr", "espcn"], paths) == ["vdsr (run1/last)", "vdsr (run1/best)", "espcn"]
    same_run = [Path("a/0/checkpoints/last.ckpt"), Path("b/0/checkpoints/last.ckpt")]
    assert method_names(["m", "m"], same_run) == [f"m ({same_run[0]})", f"m ({same_run[1]})"]
    assert method_names(["bicubic"], paths[:1], reserved=["zerofill", "bicubic"]) == ["bicubic (run1)"]


# --- metrics ------------------------------------------------------------------------------------------
def textured(size: int = 48) -> torch.Tensor:
    """A (2, 1, size, size) batch with edges and texture in [0.2, 0.8] inside a square, 0 outside."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = 0.5 + 0.3 * torch.sin(x / 2.0) * torch.cos(y / 3.0)
    inside = (x >= 6) & (x < 26) & (y >= 6) & (y < 26)
    one = torch.where(inside, image, torch.zeros(()))
    return torch.stack([one, one.flip(-1)])[:, None]


def test_nrmse_and_hfen_are_zero_for_identical_images():
    hr = textured()
    m = slice_metrics(hr, hr, brain_mask(hr))
    for key in ("nrmse", "hfen", "nrmse_brain", "hfen_brain"):
        assert m[key].tolist() == [0.0, 0.0], key


def test_nrmse_and_hfen_known_values():
    hr = textured()
    mask = brain_mask(hr, dilation=0)
    # a uniform 30 % intensity loss: both are linear, so both are exactly 0.3, with or without mask
    m = slice_metrics(0.7 * hr, hr, mask)
    for key in ("nrmse", "hfen", "nrmse_brain", "hfen_brain"):
        assert m[key].tolist() == pytest.approx([0.3, 0.3], abs=1e-5), key
    # a constant offset c: NRMSE = c sqrt(N) / ||hr||; the zero-sum LoG does not see it
    c = 0.1
    flat = torch.full_like(hr, 0.5)
    assert nrmse(flat + c, flat).tolist() == pytest.approx([c / 0.5] * 2, rel=1e-5)
    expected = (c * math.sqrt(hr[0].numel()) / hr.flatten(1).norm(dim=1)).tolist()
    assert nrmse(hr + c, hr).tolist() == pytest.approx(expected, rel=1e-5)
    inside = hr[0][mask[0]]
    expected_brain = c * math.sqrt(inside.numel()) / float(inside.norm())
    assert float(nrmse(hr + c, hr, mask)[0]) == pytest.approx(expected_brain, rel=1e-5)
    assert hfen(hr + c, hr).abs().max() < 1e-5
    # Ravishankar & Bresler's definition on the loss's LoG filter (for images already in [0, 1])
    noisy = (hr + 0.05 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    kernel = log_kernel(1.5)
    direct = log_filter(noisy - hr, kernel).flatten(1).norm(dim=1) / log_filter(hr, kernel).flatten(1).norm(dim=1)
    assert hfen(noisy, hr).tolist() == pytest.approx(direct.tolist(), rel=1e-5)


def test_brain_nrmse_and_hfen_ignore_errors_outside_the_mask():
    hr = textured()
    mask = brain_mask(hr, dilation=2)
    pred = hr.clone()
    pred[..., -2:, -2:] = 1.0  # background corner, more than the LoG's 5 px radius from the mask
    m = slice_metrics(pred, hr, mask)
    assert (m["nrmse"] > 0).all() and (m["hfen"] > 0).all()
    assert m["nrmse_brain"].tolist() == [0.0, 0.0] and m["hfen_brain"].tolist() == [0.0, 0.0]
    empty = slice_metrics(pred, hr, torch.zeros_like(mask))
    assert all(torch.isnan(empty[k]).all() for k in ("psnr_brain", "nrmse_brain", "hfen_brain"))


def test_markdown_bolds_the_lowest_error_and_the_highest_score():
    def row(method, value):
        return {"subject": "s", "slice": 0, "method": method, **{k: value for k in METRICS}}

    markdown = MetricsTable([row("a", 0.2), row("b", 0.4)]).to_markdown()
    cells = {line.split(" | ")[1]: line.split(" | ")[3:] for line in markdown.splitlines() if line.startswith("| s |")}
    for i, key in enumerate(DISPLAY_ORDER):
        higher_better = key.startswith(("psnr", "ssim"))
        assert cells["b" if higher_better else "a"][i].startswith("**"), key
        assert not cells["a" if higher_better else "b"][i].startswith("**"), key


def test_markdown_puts_brain_columns_first_and_never_pools_seen_with_unseen_subjects():
    def row(subject, method, value):
        return {"subject": subject, "slice": 0, "method": method, **{k: value for k in METRICS}}

    table = MetricsTable([row("train1", "m", 40.0), row("new1", "m", 20.0), row("new2", "m", 22.0)])
    split = {"train": [{"subject": "train1", "start": 0, "stop": 5}], "val": [], "test": []}
    groups = subject_groups(table.subjects, split)
    assert groups == {"train1": "seen in training", "new1": "unseen", "new2": "unseen"}
    markdown = table.to_markdown("t", groups)
    header = next(line for line in markdown.splitlines() if line.startswith("| subject"))
    assert header.split(" | ")[3] == "PSNR brain (dB)"
    pooled = {line.split(" | ")[0][2:]: float(line.split(" | ")[3].split(" ")[0]) for line in markdown.splitlines()
              if line.startswith("| all")}
    # the unseen pool is the mean of the unseen subjects only (21), the seen one its own (40)
    assert pooled == {"all seen in training (1)": 40.0, "all unseen (2)": 21.0}
    assert "Not a generalisation estimate**: train1 trained" in markdown
    assert "Not a generalisation" not in table.to_markdown("t", subject_groups(table.subjects, None))


def test_tables_written_before_nrmse_and_hfen_still_read(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("subject,slice,method,psnr,ssim,psnr_brain,ssim_brain\ns,3,m,30.0,0.9,28.0,0.8\n")
    table = MetricsTable.read_csv(path)
    assert table.rows[0]["psnr"] == 30.0 and math.isnan(table.rows[0]["hfen"])
    assert "30.00 ± 0.00" in table.to_markdown()


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
