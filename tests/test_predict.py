"""``lfmri.cli.predict``: geometry, tiling, data consistency, uncertainty, and the command line."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lfmri.inference import consistency
from lfmri.checkpoints.load import METADATA_KEY, SCHEMA_VERSION, load_checkpoint, model_card
from lfmri.degrade.kspace import center_crop_or_pad, fft2c
from lfmri.cli.predict import parse_args, run_predict
from lfmri.inference.predictor import PredictConfig
from lfmri.inference.tiling import tiled
from lfmri.inference.uncertainty import DIHEDRAL, IDENTITY, error_correlation, mc_dropout, predictive_spread
from tests.conftest import ROOT, run_script, write_phantom, write_phantom_volumes
from tests.test_end_to_end import TINY, check


def make_checkpoint(path: Path, *overrides: str) -> Path:
    """A checkpoint as train.py writes it (config, card, ``net.`` weights), without training."""
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["output_dir=/tmp/lfmri-predict-test", *overrides])
    config = OmegaConf.to_container(cfg, resolve=True)
    torch.manual_seed(0)
    net = instantiate(cfg.model)
    checkpoint = {
        "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
        METADATA_KEY: {"schema": SCHEMA_VERSION, "config": config, "split": None, "card": model_card(config, net, None)},
    }
    torch.save(checkpoint, path)
    return path


def fov_corners(affine: np.ndarray, shape) -> np.ndarray:
    """World coordinates of the 8 outer corners of the field of view (voxel edges, not centres)."""
    corners = np.array([[i, j, k] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5) for k in (-0.5, shape[2] - 0.5)])
    return nib.affines.apply_affine(affine, corners)


def oblique_affine() -> np.ndarray:
    """A rotated, non-canonical (mostly P, S, R) affine with anisotropic voxels."""
    angle = np.deg2rad(17)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    axes = np.array([[0, 0, 1.0], [-1.0, 0, 0], [0, 1.0, 0]]) @ np.diag([1.2, 1.0, 3.0])
    affine = np.eye(4)
    affine[:3, :3] = rot @ axes
    affine[:3, 3] = [12.0, -30.0, 7.5]
    return affine


def config(tmp_path: Path, ckpt: Path, *inputs: Path, **options) -> PredictConfig:
    return PredictConfig(ckpt_path=str(ckpt), inputs=[str(p) for p in inputs], output_dir=str(tmp_path / "out"), progress=False, **options)


@pytest.mark.parametrize("degradation", ["kspace", "bicubic"])
def test_round_trip_on_an_oblique_volume_keeps_orientation_field_of_view_and_intensities(tmp_path, degradation):
    ckpt = make_checkpoint(tmp_path / "bicubic.ckpt", "model=bicubic", f"degradation={degradation}", "data=folder", "data.pattern=x")
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(30, 36, 20), affine=oblique_affine())
    done, failed = run_predict(config(tmp_path, ckpt, src))
    assert not failed
    img_in, img_out = nib.load(src), nib.load(done[str(src)]["sr"])
    assert nib.aff2axcodes(img_out.affine) == nib.aff2axcodes(img_in.affine)
    # slices were along canonical axis 2 (S), which is stored axis 1 here: the other two double
    assert img_out.shape == (60, 36, 40) and img_out.get_data_dtype() == np.float32
    zooms_in, zooms_out = np.array(img_in.header.get_zooms()), np.array(img_out.header.get_zooms())
    assert np.allclose(zooms_out, zooms_in / [2, 1, 2])
    # the input's field-of-view corners, in output voxels, against the output's own corners
    gap = np.abs(
        nib.affines.apply_affine(np.linalg.inv(img_out.affine), fov_corners(img_in.affine, img_in.shape))
        - nib.affines.apply_affine(np.linalg.inv(img_out.affine), fov_corners(img_out.affine, img_out.shape))
    )
    assert gap.max() <= 0.5 + 1e-6
    if degradation == "bicubic":  # area grid: the field of view is kept exactly
        assert gap.max() < 1e-4  # float32 sform precision
    data_in, data_out = img_in.get_fdata(), img_out.get_fdata()
    # bicubic interpolation in the normalised range, mapped back: the input's intensity scale
    inside = data_in > 0.1 * data_in.max()
    assert abs(np.percentile(data_out, 99) / np.percentile(data_in[inside], 99) - 1) < 0.1


@pytest.mark.parametrize("size, tile", [((70, 53), 24), ((33, 40), 28)])
def test_tiled_prediction_equals_whole_slice_prediction(size, tile):
    torch.manual_seed(0)
    from lfmri.models.espcn import ESPCN
    from lfmri.inference.network import predict

    net = ESPCN(scale=2).eval()  # receptive radius 4 LR pixels
    x = torch.rand(2, 1, *size)
    with torch.no_grad():
        whole = predict(net, x)
        pieces = tiled(lambda t: predict(net, t), x, scale=2, tile=tile, overlap=16)
    assert pieces.shape == whole.shape
    assert (pieces - whole).abs().max() < 1e-5


def test_tiling_with_too_little_overlap_differs_and_bad_overlap_is_refused():
    torch.manual_seed(0)
    from lfmri.models.vdsr import VDSR

    net = VDSR().eval()  # receptive radius 20 pixels: overlap 8 cannot be exact
    x = torch.rand(1, 1, 48, 48)
    with torch.no_grad():
        assert (tiled(net, x, 1, 24, 8) - net(x)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="tile_overlap"):
        tiled(net, x, 1, 16, 16)


def test_data_consistency_keeps_exactly_the_measured_central_kspace(mni_slice):
    hr = mni_slice[None, None, 10:138, 20:148].float()
    lr = consistency.truncate(hr, (64, 64), 2)
    sr = torch.rand_like(hr)
    fixed = consistency.enforce(sr, lr, 2)
    expected = consistency.measured_kspace(lr, (128, 128), 2)
    assert torch.allclose(center_crop_or_pad(fft2c(fixed), (64, 64)), expected, atol=1e-5)
    # outside the centre the network's k-space is untouched
    outer = fft2c(fixed) - fft2c(sr)
    outer[..., 32:96, 32:96] = 0
    assert outer.abs().max() < 1e-4
    # the HR image itself is consistent with its own truncation; noise is not
    assert consistency.consistency_error(hr, lr, 2).max() < 1e-5
    assert consistency.consistency_error(sr, lr, 2).mean() > 0.05


def test_uncertainty_is_zero_for_a_deterministic_model_without_augmentation():
    net = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        mean, std = predictive_spread(net, x, IDENTITY, repeats=4)
        assert torch.equal(std, torch.zeros_like(std)) and torch.allclose(mean, net(x), atol=1e-6)
        # a kernel without the symmetries of the square sees the 8 orientations differently
        _, tta_std = predictive_spread(net, x, DIHEDRAL)
        assert tta_std.mean() > 1e-3
        # an equivariant operation gives zero spread under the same augmentation
        _, identity_std = predictive_spread(lambda t: 2 * t, x, DIHEDRAL)
        assert identity_std.max() < 1e-6


def test_mc_dropout_needs_dropout_and_varies_with_it():
    plain = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    with pytest.raises(ValueError, match="has none"), mc_dropout(plain, True):
        pass
    with_dropout = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Dropout(0.5), torch.nn.Conv2d(8, 1, 1)).eval()
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad(), mc_dropout(with_dropout, True):
        _, std = predictive_spread(with_dropout, x, IDENTITY, repeats=8)
    assert std.mean() > 1e-3 and not with_dropout[1].training


def test_error_correlation_is_spearman_inside_the_mask():
    error = torch.arange(16.0).reshape(1, 1, 4, 4)
    mask = torch.ones_like(error)
    assert error_correlation(error ** 3, error, mask)[0] == pytest.approx(1.0)
    assert error_correlation(-error, error, mask)[0] == pytest.approx(-1.0)
    assert np.isnan(error_correlation(torch.ones_like(error), error, mask)[0])


def test_predict_writes_consistency_and_uncertainty_maps_on_their_grids(tmp_path):
    ckpt = make_checkpoint(tmp_path / "espcn.ckpt", "model=espcn", "data=folder", "data.pattern=x")
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(24, 20, 6))
    done, failed = run_predict(config(tmp_path, ckpt, src, data_consistency=True, tta=True, tile_size=12, tile_overlap=8))
    assert not failed
    out = {k: nib.load(p) for k, p in done[str(src)].items() if k != "views"}
    assert set(out) == {"sr", "consistency", "uncertainty"} and done[str(src)]["views"].stat().st_size > 10_000
    assert out["sr"].shape == out["uncertainty"].shape == (48, 40, 6)
    assert out["consistency"].shape == (24, 20, 6) and np.allclose(out["consistency"].affine, nib.load(src).affine)
    assert out["uncertainty"].get_fdata().max() > 0 and out["consistency"].get_fdata().max() > 0
    # a bicubic-trained checkpoint has no k-space measurement to keep
    bicubic_ckpt = make_checkpoint(tmp_path / "b.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    with pytest.raises(ValueError, match="k-space degradation"):
        run_predict(config(tmp_path, bicubic_ckpt, src, data_consistency=True))


def test_pre_upsampled_model_reads_the_scan_on_the_hr_grid(tmp_path):
    ckpt = make_checkpoint(tmp_path / "vdsr.ckpt", "model=vdsr", "data=folder", "data.pattern=x")
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(20, 22, 4))
    done, failed = run_predict(config(tmp_path, ckpt, src))
    assert not failed and nib.load(done[str(src)]["sr"]).shape == (40, 44, 4)


def test_bad_options_are_named(capsys):
    from tests.helpers.cli import refusal

    assert "tile_sise" in refusal(capsys, parse_args, ["ckpt_path=a", "inputs=[b]", "output_dir=c", "tile_sise=3"])
    assert "output_dir" in refusal(capsys, parse_args, ["ckpt_path=a", "inputs=[b]"])
    assert parse_args(["ckpt_path=a", "inputs=b.nii.gz", "output_dir=c"]).inputs == ["b.nii.gz"]


def test_command_line_on_a_trained_checkpoint_folder_of_scans_bad_inputs_and_overwrite(tmp_path):
    write_phantom_volumes(tmp_path / "volumes")
    run_dir = tmp_path / "run"
    check(run_script("train.py", *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}"))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    card = load_checkpoint(ckpt)[METADATA_KEY]["card"]
    assert {"test/psnr", "test/ssim"} <= set(card["test_metrics"]) and card["slice_axis"] == 2
    assert card["data"]["percentiles"] == card["percentiles"] and card["scale"] == 2

    scans = tmp_path / "scans"
    write_phantom(scans / "a.nii.gz", shape=(32, 30, 5), seed=7)
    write_phantom(scans / "b.nii.gz", shape=(26, 34, 3), seed=8)
    (scans / "c.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "pred"
    args = ["-m", "lfmri.cli.predict", f"ckpt_path={ckpt}", f"inputs=[{scans}]", f"output_dir={out}", "progress=false"]
    proc = run_script(*args)
    assert proc.returncode == 1 and "c.nii.gz" in proc.stderr
    assert nib.load(out / "a_sr.nii.gz").shape == (64, 60, 5) and nib.load(out / "b_sr.nii.gz").shape == (52, 68, 3)
    before = (out / "a_sr.nii.gz").read_bytes()
    proc = run_script(*args[:3], f"inputs=[{scans / 'a.nii.gz'}]", *args[4:])
    assert proc.returncode == 1 and "overwrite=true" in proc.stderr
    assert (out / "a_sr.nii.gz").read_bytes() == before
    check(run_script(*args[:3], f"inputs=[{scans / 'a.nii.gz'}]", *args[4:], "overwrite=true"))


@pytest.mark.parametrize("model", ["srdensenet", "srcnn"])  # LR-grid and pre-upsampled networks
def test_checkpoint_trained_on_real_pairs_resamples_the_scan_onto_its_training_grids(tmp_path, model):
    from tests.paired_fixtures import GRID_OVERRIDES, HF_SHAPE, HF_SPACING, LF_SHAPE

    ckpt = make_checkpoint(tmp_path / "paired.ckpt", f"model={model}", "data=paired_lowfield", "data.root=x",
                           "degradation=lowfield", *GRID_OVERRIDES)
    # a 64 mT-like scan stored P, S, R with its own voxel sizes: only its field of view matters
    affine = np.array([[0, 0, 1.6, -10], [-1.6, 0, 0, 20], [0, 5.0, 0, -5], [0, 0, 0, 1.0]])
    shape_psr = (LF_SHAPE[1], LF_SHAPE[2], LF_SHAPE[0])
    src = write_phantom(tmp_path / "scan.nii.gz", shape=shape_psr, affine=affine)
    done, failed = run_predict(config(tmp_path, ckpt, src, preview=False))
    assert not failed, failed
    out = nib.load(done[str(src)]["sr"])
    assert nib.aff2axcodes(out.affine) == nib.aff2axcodes(affine)
    canonical = nib.as_closest_canonical(out)
    assert canonical.shape == HF_SHAPE  # the configured 3T grid (sagittal in-plane sizes already even)
    assert np.allclose(nib.affines.voxel_sizes(canonical.affine), HF_SPACING, atol=1e-5)
    centre_in = fov_corners(affine, shape_psr).mean(0)
    centre_out = fov_corners(out.affine, out.shape).mean(0)
    assert np.abs(centre_out - centre_in).max() < 0.5
    assert np.isfinite(out.get_fdata()).all()


def test_data_consistency_is_refused_for_checkpoints_trained_on_real_pairs(tmp_path):
    from tests.paired_fixtures import GRID_OVERRIDES

    ckpt = make_checkpoint(tmp_path / "paired.ckpt", "data=paired_lowfield", "data.root=x", *GRID_OVERRIDES)
    with pytest.raises(ValueError, match="real low-field pairs"):
        run_predict(config(tmp_path, ckpt, tmp_path / "scan.nii.gz", data_consistency=True))
