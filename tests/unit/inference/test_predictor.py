"""Predicting volumes in-process (``run_predict``): geometry, maps, real-pair grids, precision from the card, workers."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import torch

from lfmri.checkpoints.stored_run import StoredRun
from lfmri.cli.predict import run_predict
from lfmri.inference.network import BF16_PARITY_KEY
from lfmri.inference.predictor import Predictor
from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.predict import BF16, TINY_MODEL, predict_config
from tests.helpers.volumes import oblique_affine, write_lesion_phantom, write_phantom


def fov_corners(affine: np.ndarray, shape) -> np.ndarray:
    """World coordinates of the 8 outer corners of the field of view (voxel edges, not centres)."""
    corners = np.array([[i, j, k] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5) for k in (-0.5, shape[2] - 0.5)])
    return nib.affines.apply_affine(affine, corners)


@pytest.mark.parametrize("degradation", ["kspace", "bicubic"])
def test_round_trip_on_an_oblique_volume_keeps_orientation_field_of_view_and_intensities(tmp_path, degradation):
    ckpt = make_checkpoint(tmp_path / "bicubic.ckpt", "model=bicubic", f"degradation={degradation}", "data=folder", "data.pattern=x")
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(30, 36, 20), affine=oblique_affine())
    done, failed = run_predict(predict_config(tmp_path, ckpt, src))
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


def test_predict_writes_consistency_and_uncertainty_maps_on_their_grids(tmp_path):
    ckpt = make_checkpoint(tmp_path / "espcn.ckpt", "model=espcn", "data=folder", "data.pattern=x")
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(24, 20, 6))
    done, failed = run_predict(predict_config(tmp_path, ckpt, src, data_consistency=True, tta=True, tile_size=12, tile_overlap=8))
    assert not failed
    out = {k: nib.load(p) for k, p in done[str(src)].items() if k != "views"}
    assert set(out) == {"sr", "consistency", "uncertainty"} and done[str(src)]["views"].stat().st_size > 10_000
    assert out["sr"].shape == out["uncertainty"].shape == (48, 40, 6)
    assert out["consistency"].shape == (24, 20, 6) and np.allclose(out["consistency"].affine, nib.load(src).affine)
    assert out["uncertainty"].get_fdata().max() > 0 and out["consistency"].get_fdata().max() > 0
    # a bicubic-trained checkpoint has no k-space measurement to keep
    bicubic_ckpt = make_checkpoint(tmp_path / "b.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    with pytest.raises(ValueError, match="k-space degradation"):
        run_predict(predict_config(tmp_path, bicubic_ckpt, src, data_consistency=True))


def test_pre_upsampled_model_reads_the_scan_on_the_hr_grid(tmp_path):
    ckpt = make_checkpoint(tmp_path / "vdsr.ckpt", "model=vdsr", "data=folder", "data.pattern=x")
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(20, 22, 4))
    done, failed = run_predict(predict_config(tmp_path, ckpt, src))
    assert not failed and nib.load(done[str(src)]["sr"]).shape == (40, 44, 4)


@pytest.mark.parametrize("model", ["srdensenet", "srcnn"])  # LR-grid and pre-upsampled networks
def test_checkpoint_trained_on_real_pairs_resamples_the_scan_onto_its_training_grids(tmp_path, model):
    from tests.helpers.paired import GRID_OVERRIDES, HF_SHAPE, HF_SPACING, LF_SHAPE

    ckpt = make_checkpoint(tmp_path / "paired.ckpt", f"model={model}", "data=paired_lowfield", "data.root=x",
                           "degradation=lowfield", *GRID_OVERRIDES)
    # a 64 mT-like scan stored P, S, R with its own voxel sizes: only its field of view matters
    affine = np.array([[0, 0, 1.6, -10], [-1.6, 0, 0, 20], [0, 5.0, 0, -5], [0, 0, 0, 1.0]])
    shape_psr = (LF_SHAPE[1], LF_SHAPE[2], LF_SHAPE[0])
    src = write_phantom(tmp_path / "scan.nii.gz", shape=shape_psr, affine=affine)
    done, failed = run_predict(predict_config(tmp_path, ckpt, src, preview=False))
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


def test_a_multi_slice_network_trained_on_pairs_reads_the_scan_a_low_field_slice_apart(tmp_path, monkeypatch):
    from lfmri.geometry import resample
    from tests.helpers.paired import GRID_OVERRIDES, HF_SHAPE, LF_SHAPE

    ckpt = make_checkpoint(tmp_path / "paired.ckpt", "model=srdensenet", "data=paired_lowfield", "data.root=x",
                           "degradation=lowfield", "context_slices=1", "data.slice_axis=2", *GRID_OVERRIDES)
    src = write_phantom(tmp_path / "scan.nii.gz", shape=LF_SHAPE, affine=np.diag([1.6, 1.6, 5.0, 1.0]))
    asked = []
    real = resample.thick_slice_neighbours
    monkeypatch.setattr(resample, "thick_slice_neighbours", lambda *a: asked.append(a[4:]) or real(*a))
    seen = []
    original = Predictor.slices
    monkeypatch.setattr(Predictor, "slices", lambda self, lr, excess=None: seen.append(lr.shape) or original(self, lr, excess))
    done, failed = run_predict(predict_config(tmp_path, ckpt, src, preview=False))
    assert not failed, failed
    assert asked == [(2, 5.0, 1)]  # neighbours along the slice axis, one 5 mm low-field slice away
    assert all(shape[1] == 3 for shape in seen)
    # axial slices: the in-plane axes trimmed to a multiple of x2 (19 -> 18)
    assert nib.as_closest_canonical(nib.load(done[str(src)]["sr"])).shape == (18, *HF_SHAPE[1:])


def test_data_consistency_is_refused_for_checkpoints_trained_on_real_pairs(tmp_path):
    from tests.helpers.paired import GRID_OVERRIDES

    ckpt = make_checkpoint(tmp_path / "paired.ckpt", "data=paired_lowfield", "data.root=x", *GRID_OVERRIDES)
    with pytest.raises(ValueError, match="real low-field pairs"):
        run_predict(predict_config(tmp_path, ckpt, tmp_path / "scan.nii.gz", data_consistency=True))


def test_predictor_auto_reads_the_card(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    run = StoredRun.load(ckpt)
    x = torch.rand(1, 1, 16, 16)
    plain = Predictor(run, predict_config(tmp_path, ckpt)).runner(x)
    assert torch.equal(plain, Predictor(run, predict_config(tmp_path, ckpt, precision="fp32")).runner(x))
    run.card[BF16_PARITY_KEY] = 0.01
    recorded = Predictor(run, predict_config(tmp_path, ckpt)).runner(x)
    assert torch.equal(recorded, plain) != BF16  # bf16 exactly where the CPU has it


def test_self_ensemble_output_is_the_tta_mean_and_differs_from_one_pass(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    run = StoredRun.load(ckpt)
    lr = torch.rand(2, 1, 16, 16)
    plain = Predictor(run, predict_config(tmp_path, ckpt, precision="fp32"))
    both = Predictor(run, predict_config(tmp_path, ckpt, precision="fp32", self_ensemble=True, tta=True))
    ensemble = Predictor(run, predict_config(tmp_path, ckpt, precision="fp32", self_ensemble=True))
    one, shared, alone = plain.slices(lr), both.slices(lr), ensemble.slices(lr)
    # tta=true gives the self-ensemble its mean for free; alone it runs the same 8 passes
    assert torch.allclose(shared["sr"], alone["sr"], atol=1e-6) and "uncertainty" in shared
    assert not torch.allclose(one["sr"], alone["sr"], atol=1e-4)
    assert (shared["sr"] - one["sr"]).abs().max() < 0.5


def test_predict_rejects_bad_workers(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    with pytest.raises(ValueError, match="workers=0"):
        run_predict(predict_config(tmp_path, ckpt, tmp_path, workers=0))


def multi_slice_checkpoints(tmp_path, context=1):
    """A tiny 2D SRDenseNet and the same network widened to ``context`` neighbours each side, its
    neighbour weights zero (so it computes the 2D network), and a copy with neighbour weights set."""
    flat = make_checkpoint(tmp_path / "flat.ckpt", *TINY_MODEL, "model.residual=true", "data=folder", "data.pattern=x")
    multi = make_checkpoint(tmp_path / "multi.ckpt", *TINY_MODEL, "model.residual=true", "data=folder", "data.pattern=x",
                            f"context_slices={context}")
    trained = torch.load(flat, weights_only=True)
    # a residual network starts as bicubic (zero reconstruction); give its trunk a say
    trained["state_dict"]["net.reconstruction.weight"].normal_(std=0.05, generator=torch.Generator().manual_seed(0))
    torch.save(trained, flat)
    checkpoint = torch.load(multi, weights_only=True)
    stored = trained["state_dict"]
    for name, value in stored.items():  # centre slice: the 2D weights; neighbours: zero
        target = checkpoint["state_dict"][name]
        if target.shape != value.shape:
            target.zero_()[:, context : context + 1] = value
        else:
            target.copy_(value)
    torch.save(checkpoint, multi)
    weighted = tmp_path / "weighted.ckpt"
    checkpoint["state_dict"]["net.low_level.weight"][:, 0] = 0.5  # the first neighbour now counts
    torch.save(checkpoint, weighted)
    return flat, multi, weighted


def test_multi_slice_model_predicts_an_oblique_volume_with_the_right_geometry(tmp_path):
    flat, multi, weighted = multi_slice_checkpoints(tmp_path)
    src = write_phantom(tmp_path / "scan.nii.gz", shape=(20, 12, 16), affine=oblique_affine())
    outputs = {}
    for ckpt in (flat, multi, weighted):
        done, failed = run_predict(predict_config(tmp_path / ckpt.stem, ckpt, src))
        assert not failed
        outputs[ckpt.stem] = nib.load(done[str(src)]["sr"])
    # the multi-slice path with silent neighbours is the 2D path, file for file (geometry included;
    # values up to float rounding: a convolution over 3 channels sums in another order than over 1)
    assert np.array_equal(outputs["multi"].affine, outputs["flat"].affine)
    flat_data = outputs["flat"].get_fdata()
    assert np.abs(outputs["multi"].get_fdata() - flat_data).max() < 1e-5 * np.abs(flat_data).max()
    # canonical slice axis 2 (S) is stored axis 1 of this oblique file: changing one stored slice of
    # the input changes, with one neighbour each side, exactly the output slices around it
    assert outputs["weighted"].shape == (40, 12, 32)
    data = nib.load(src).get_fdata()
    data[:, 5] = data[::-1, 5, ::-1]  # the same intensities (so the same normalisation), moved around
    nib.save(nib.Nifti1Image(data.astype(np.float32), nib.load(src).affine), tmp_path / "bumped.nii.gz")
    done, failed = run_predict(predict_config(tmp_path / "bumped", weighted, tmp_path / "bumped.nii.gz"))
    assert not failed
    changed = np.abs(nib.load(done[str(tmp_path / "bumped.nii.gz")]["sr"]).get_fdata() - outputs["weighted"].get_fdata())
    per_slice = changed.max(axis=(0, 2))
    # slice 5's own output changes through the centre; which neighbour reads it depends on whether
    # canonical S runs with or against stored axis 1: one of slices 4 and 6 changes, slices 3 and 7 do not
    assert per_slice[5] > 0 and per_slice[[3, 7]].max() == 0 and per_slice[[0, 1, 2, 8, 9, 10, 11]].max() == 0
    assert (per_slice[4] > 0) != (per_slice[6] > 0)


def test_a_scan_outside_the_models_contract_is_warned_about_or_refused_and_outputs_keep_its_range(tmp_path, caplog):
    """srdensenet-kspace-x2 trained on 2 mm slices: a scan with 6 mm slices is named in a warning
    (and still predicted, within the input's intensity range), or refused with contract=refuse."""
    import logging

    affine = np.diag([3.0, 3.0, 6.0, 1.0])
    src = write_phantom(tmp_path / "thick.nii.gz", shape=(32, 28, 4), affine=affine)
    data = nib.load(src).get_fdata()
    nib.save(nib.Nifti1Image((data + np.random.default_rng(0).normal(0, 40, data.shape)).astype(np.float32), affine), src)
    cfg = predict_config(tmp_path, "unused", src, preview=False)
    cfg.ckpt_path, cfg.pretrained = None, "srdensenet-kspace-x2"
    with caplog.at_level(logging.WARNING):
        done, failed = run_predict(cfg)
    assert not failed
    warning = next(r.getMessage() for r in caplog.records if "thick.nii.gz" in r.getMessage())
    assert "slice thickness 6 mm along axis 2" in warning and "expected 1.6-3 mm" in warning
    scan, sr = nib.load(src).get_fdata(), nib.load(done[str(src)]["sr"]).get_fdata()
    assert scan.min() <= sr.min() and sr.max() <= scan.max()
    refused = predict_config(tmp_path / "refused", "unused", src, preview=False, contract="refuse")
    refused.ckpt_path, refused.pretrained = None, "srdensenet-kspace-x2"
    done, failed = run_predict(refused)
    assert not done and "contract=refuse" in failed[str(src)] and "thick.nii.gz" in failed[str(src)]
    assert not (tmp_path / "refused" / "out").exists() or not any((tmp_path / "refused" / "out").iterdir())


@pytest.mark.parametrize("degradation", ["kspace", "bicubic"])
def test_a_lesion_brighter_than_the_window_keeps_its_intensity(tmp_path, degradation):
    """The scan is normalised by its 1st-99th percentiles; the network reads it clipped there (as in
    training) and what lies above is carried onto the output: the lesion's intensity survives, and
    nothing goes beyond the scan's own range."""
    ckpt = make_checkpoint(tmp_path / "m.ckpt", "model=bicubic", f"degradation={degradation}", "data=folder", "data.pattern=x")
    src, value, lesion = write_lesion_phantom(tmp_path / "lesion.nii.gz")
    done, failed = run_predict(predict_config(tmp_path, ckpt, src))
    assert not failed
    scan, sr = nib.load(src).get_fdata(), nib.load(done[str(src)]["sr"]).get_fdata()
    window_top = np.percentile(scan, 99)
    assert value > 2 * window_top
    assert scan.min() - 1e-3 <= sr.min() and sr.max() <= scan.max() + 1e-3
    # the lesion's centre on the output grid (x2 in-plane: axes 0 and 1), away from its edges
    centre = tuple(slice(2 * s.start + 3, 2 * s.stop - 3) if axis < 2 else slice(s.start + 1, s.stop - 1)
                   for axis, s in enumerate(lesion))
    assert np.median(sr[centre]) > 0.9 * value, (np.median(sr[centre]), value, window_top)
