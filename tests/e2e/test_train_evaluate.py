"""The real entry points, run as a user runs them: train.py, then evaluate.py on its checkpoint."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lfmri.checkpoints.load import METADATA_KEY
from lfmri.scoring.report import MetricsTable
from tests.helpers.run import TINY, check, run_script
from tests.helpers.volumes import write_phantom, write_phantom_volumes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One fast_dev_run training on generated volumes, shared by the tests below."""
    root = tmp_path_factory.mktemp("e2e")
    write_phantom_volumes(root / "volumes")
    run_dir = root / "run"
    check(run_script("train.py", *TINY, f"data.pattern={root}/volumes/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}"))
    return root, run_dir


def test_training_writes_a_complete_run_directory(trained):
    _, run_dir = trained
    for rel in ["checkpoints/last.ckpt", "split.json", ".hydra/config.yaml", "test/metrics.csv", "test/metrics.md"]:
        assert (run_dir / rel).is_file(), rel
    assert list((run_dir / "panels").glob("*.png"))
    ckpt = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    meta = ckpt[METADATA_KEY]
    assert meta["config"]["model"]["_target_"].endswith("SRDenseNet")
    assert meta["card"]["scale"] == 2 and meta["card"]["input_mode"] == "lr"
    assert meta["split"]["test"] and meta["split"]["train"]
    table = MetricsTable.read_csv(run_dir / "test" / "metrics.csv")
    assert set(table.methods) == {"srdensenet", "zerofill", "bicubic"}


def test_training_refuses_to_reuse_a_run_directory(trained):
    root, run_dir = trained
    before = (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime
    proc = run_script("train.py", *TINY, f"data.pattern={root}/volumes/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0 and "already holds checkpoints" in proc.stderr
    assert (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime == before


def world_centroid(path: Path) -> np.ndarray:
    img = nib.load(path)
    data = np.clip(img.get_fdata(), 0, None)
    idx = np.indices(data.shape).reshape(3, -1)
    centre = (idx * data.reshape(-1)).sum(axis=1) / data.sum()
    return (img.affine @ np.r_[centre, 1.0])[:3]


def test_evaluate_on_input_volumes_writes_correct_niftis_tables_and_figures(trained, tmp_path):
    root, run_dir = trained

    oblique = np.array([[0, 0, 1.5, -10], [-1.0, 0, 0, 20], [0, 1.0, 0, -5], [0, 0, 0, 1]])
    inputs = [root / "volumes" / "sub-00.nii.gz", write_phantom(tmp_path / "psr.nii.gz", shape=(48, 24, 40), seed=9, affine=oblique)]
    out = tmp_path / "eval"
    args = ["evaluate.py", f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs=[{inputs[0]},{inputs[1]}]", f"output_dir={out}"]
    proc = check(run_script(*args))
    assert "| sub-00 | srdensenet |" in proc.stdout

    for path in inputs:
        name = path.name.replace(".nii.gz", "")
        src = nib.load(path)
        src_zooms = np.array(src.header.get_zooms())
        for kind in ("sr", "lr", "hr", "zerofill", "bicubic", "nlm3d"):
            img = nib.load(out / f"{name}_{kind}.nii.gz")
            assert nib.aff2axcodes(img.affine) == nib.aff2axcodes(src.affine), kind  # input orientation kept
            assert img.get_data_dtype() == np.float32
            np.testing.assert_allclose(img.header.get_zooms(), np.sqrt((img.affine[:3, :3] ** 2).sum(0)), rtol=1e-5)
            assert np.isfinite(img.get_fdata()).all()
            if kind == "sr":  # the one-step network's output is not an image yet: same grid as HR
                hr = nib.load(out / f"{name}_hr.nii.gz")
                np.testing.assert_allclose(img.affine, hr.affine)
                assert img.shape == hr.shape
                continue
            # the anatomy stays where it was in the world (within one input voxel)
            assert np.linalg.norm(world_centroid(out / f"{name}_{kind}.nii.gz") - world_centroid(path)) < src_zooms.max()
            # intensities are back in the input's range
            assert img.get_fdata().max() == pytest.approx(src.get_fdata().max(), rel=0.25)
        sr, lr = nib.load(out / f"{name}_sr.nii.gz"), nib.load(out / f"{name}_lr.nii.gz")
        # the axial (canonical z) axis is the slice axis: only the two in-plane axes change resolution
        ratio = np.sort(np.array(lr.header.get_zooms()) / np.array(sr.header.get_zooms()))
        np.testing.assert_allclose(ratio, [1.0, 2.0, 2.0], rtol=1e-5)
        assert (out / f"{name}_comparison.png").stat().st_size > 10_000

    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {r["method"] for r in rows} == {"srdensenet", "zerofill", "bicubic", "nlm3d"}
    assert {r["subject"] for r in rows} == {"sub-00", "psr"}
    markdown = (out / "metrics.md").read_text()
    assert markdown.count("| sub-00 |") == 4 and markdown.count("| psr |") == 4 and "±" in markdown


def test_evaluate_never_overwrites_unless_asked(trained, tmp_path):
    root, run_dir = trained
    out = tmp_path / "eval"
    args = ["evaluate.py", f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs=[{root}/volumes/sub-01.nii.gz]", f"output_dir={out}"]
    check(run_script(*args))
    stamp = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    proc = run_script(*args)
    assert proc.returncode != 0 and "already exist" in proc.stderr and "overwrite=true" in proc.stderr
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamp
    check(run_script(*args, "overwrite=true"))
    assert (out / "sub-01_sr.nii.gz").stat().st_mtime_ns > stamp["sub-01_sr.nii.gz"]


def test_evaluate_reports_every_bad_input_by_name(trained, tmp_path):
    _, run_dir = trained
    (tmp_path / "broken.nii.gz").write_bytes(b"\x1f\x8bnot really")
    proc = run_script("evaluate.py", f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs=[{tmp_path}/broken.nii.gz,{tmp_path}/gone.nii.gz]", f"output_dir={tmp_path}/out")
    assert proc.returncode != 0
    assert "broken.nii.gz" in proc.stderr and "gone.nii.gz: does not exist" in proc.stderr
    assert not (tmp_path / "out" / "metrics.csv").exists()


@pytest.mark.precision  # .ci/run runs these again with the other answer to "native bf16?"
def test_evaluate_on_the_checkpoint_test_split_matches_training_test_metrics(trained, tmp_path):
    _, run_dir = trained
    out = tmp_path / "eval"
    check(run_script("evaluate.py", f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"output_dir={out}"))
    evaluated = {(r["subject"], r["slice"], r["method"]): r for r in MetricsTable.read_csv(out / "metrics.csv").rows}
    trained_rows = MetricsTable.read_csv(run_dir / "test" / "metrics.csv").rows
    assert trained_rows
    for row in trained_rows:  # fast_dev_run tested one batch: every one of its rows must agree
        other = evaluated[(row["subject"], row["slice"], row["method"])]
        for key in ("psnr", "ssim", "psnr_brain", "ssim_brain"):
            assert other[key] == pytest.approx(row[key], abs=1e-4), (row, key)


def test_default_config_smoke_runs_on_the_embedded_mni152(tmp_path):
    proc = check(run_script("train.py", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}/run"))
    assert "| mni152 | srdensenet |" in proc.stdout
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()


def test_non_learned_model_is_evaluated_without_training(tmp_path):
    proc = check(run_script("train.py", "model=bicubic", "trainer.fast_dev_run=true", f"hydra.run.dir={tmp_path}/run"))
    assert "| mni152 | bicubic |" in proc.stdout and "| mni152 | zerofill |" in proc.stdout
    assert not (tmp_path / "run" / "checkpoints").exists()
