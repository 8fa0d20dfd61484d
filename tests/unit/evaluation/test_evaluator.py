"""``lfmri.evaluation.evaluator`` in-process: checkpoint options, method names, empty inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from lfmri.evaluation.evaluator import method_names
from lfmri.run_options import RunOptions
from tests.helpers.config import evaluate_config
from tests.helpers.run import run_evaluate


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


def test_method_names_get_more_specific_only_where_they_collide():
    paths = [Path("a/run1/checkpoints/last.ckpt"), Path("b/run1/checkpoints/best.ckpt"), Path("c/x/espcn.ckpt")]
    assert method_names(["srdensenet", "vdsr", "espcn"], paths) == ["srdensenet", "vdsr", "espcn"]
    assert method_names(["vdsr", "vdsr", "espcn"], paths) == ["vdsr (run1/last)", "vdsr (run1/best)", "espcn"]
    same_run = [Path("a/0/checkpoints/last.ckpt"), Path("b/0/checkpoints/last.ckpt")]
    assert method_names(["m", "m"], same_run) == [f"m ({same_run[0]})", f"m ({same_run[1]})"]
    assert method_names(["bicubic"], paths[:1], reserved=["zerofill", "bicubic"]) == ["bicubic (run1)"]


def test_sweep_jobs_are_named_by_their_differing_overrides(tmp_path):
    from lfmri.evaluation.evaluator import method_names

    paths = []
    for job, loss in (("0", "mse"), ("1", "l1")):
        hydra_dir = tmp_path / "multirun" / job / ".hydra"
        hydra_dir.mkdir(parents=True)
        (hydra_dir / "overrides.yaml").write_text(yaml.safe_dump([f"loss={loss}", "data.pattern=/x/*.nii.gz", "hydra.x=1"]))
        paths.append(tmp_path / "multirun" / job / "checkpoints" / "best.ckpt")
    assert method_names(["srdensenet", "srdensenet"], paths) == ["srdensenet (loss=mse)", "srdensenet (loss=l1)"]
    # overrides too long for a name (a checkpoint path) give way to the run directory
    for job, extra in (("0", "ckpt_path=/data/runs/2026-11-29/run1/checkpoints/last.ckpt"), ("1", "trainer.max_epochs=2")):
        (tmp_path / "multirun" / job / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([extra, "loss=mse"]))
    assert method_names(["srdensenet", "srdensenet"], paths) == ["srdensenet", "srdensenet (trainer.max_epochs=2)"]


def test_evaluate_with_empty_inputs_is_an_error(tmp_path, bicubic_checkpoint):
    from lfmri.evaluation.evaluator import evaluate

    cfg = evaluate_config(output_dir=str(tmp_path / "out"), ckpt_path=str(bicubic_checkpoint), inputs=[], device="cpu")
    with pytest.raises(ValueError, match=r"inputs=\[\]"):
        evaluate(cfg)


@pytest.mark.parametrize("tiles", [{"tile_size": 0}, {"tile_size": 16, "tile_overlap": 16}])
def test_impossible_tiles_are_refused_before_any_work(tmp_path, bicubic_checkpoint, tiles):
    from lfmri.evaluation.evaluator import evaluate

    cfg = evaluate_config(output_dir=str(tmp_path / "out"), ckpt_path=str(bicubic_checkpoint), device="cpu", **tiles)
    with pytest.raises(ValueError, match="tile_size="):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


def test_evaluate_tiles_like_predict_and_agrees_with_whole_slices(tmp_path):
    """A slice larger than tile_size runs in tiles (bounded memory) with the same scores."""
    import torch

    from lfmri.degrade.degradations import BicubicDegradation
    from lfmri.evaluation.evaluator import EvalVolume, Evaluator
    from lfmri.data.normalize import Intensity
    from lfmri.geometry.nifti import Volume
    from lfmri.models.srcnn import SRCNN
    from tests.helpers.volumes import phantom

    torch.manual_seed(0)
    net = SRCNN(scale=2).eval()
    data = phantom((48, 40, 3)) / 1000
    volume = Volume(data.astype("float32"), np.eye(4), "x.nii.gz", ("R", "A", "S"))
    v = EvalVolume("x", "x", volume, Intensity(0.0, 1.0), 0, 3, np.arange(3))
    scores = {}
    for tile in (256, 32):
        evaluator = Evaluator({"net": net}, BicubicDegradation(scale=2), slice_axis=2, seed=0,
                              options=RunOptions(device="cpu", precision="fp32", tile_size=tile, tile_overlap=24))
        evaluator.progress = False
        outputs, table = evaluator.run_volume(v)
        scores[tile] = (outputs["sr"], [r["psnr"] for r in table.rows if r["method"] == "net"])
    np.testing.assert_allclose(scores[32][0], scores[256][0], atol=1e-4)
    np.testing.assert_allclose(scores[32][1], scores[256][1], atol=1e-3)


def test_evaluate_scores_networks_as_self_ensembles_when_asked(tmp_path):
    """self_ensemble=true: the network's scored output is the 8-orientation mean (not one pass),
    the baselines are untouched, and the table says how the networks ran."""
    import torch

    from lfmri.degrade.degradations import KSpaceDegradation
    from lfmri.evaluation.evaluator import EvalVolume, Evaluator
    from lfmri.data.normalize import Intensity
    from lfmri.geometry.nifti import Volume
    from lfmri.models.espcn import ESPCN
    from tests.helpers.volumes import phantom

    torch.manual_seed(0)
    net = ESPCN(scale=2).eval()
    data = phantom((32, 32, 3)) / 1000
    volume = Volume(data.astype("float32"), np.eye(4), "x.nii.gz", ("R", "A", "S"))
    v = EvalVolume("x", "x", volume, Intensity(0.0, 1.0), 0, 3, np.arange(3))
    degradation = KSpaceDegradation(scale=2, hr_size=None, noise_std=0.02)
    runs = {}
    for ensemble in (False, True):
        evaluator = Evaluator({"net": net}, degradation, slice_axis=2, seed=0, options=RunOptions(device="cpu", precision="fp32"), self_ensemble=ensemble)
        evaluator.progress = False
        runs[ensemble] = evaluator.run_volume(v), evaluator.ensemble_note
    (plain, plain_table), plain_note = runs[False]
    (mean, mean_table), note = runs[True]
    assert plain_note == "" and "self-ensemble" in note
    assert not np.allclose(plain["sr"], mean["sr"], atol=1e-4)
    np.testing.assert_array_equal(plain["zerofill"], mean["zerofill"])
    runner = evaluator.methods["net"].run
    lr = torch.from_numpy(np.ascontiguousarray(mean["lr"].transpose(2, 0, 1)))[:, None]
    assert runner.self_ensemble and runner.spread(lr)[0].shape[-2:] == (32, 32)


def test_two_and_multi_slice_networks_are_scored_on_the_same_degraded_slices():
    """A 2D network and a multi-slice one in one table: both read the same LR volume (each slice
    degraded once with its own seed); with silent neighbour weights the multi-slice network scores
    as the 2D one."""
    import torch

    from lfmri.data.normalize import Intensity
    from lfmri.degrade.degradations import KSpaceDegradation
    from lfmri.evaluation.evaluator import EvalVolume, Evaluator
    from lfmri.geometry.nifti import Volume
    from lfmri.models.srdensenet import SRDenseNet
    from tests.helpers.predict import TINY_NET
    from tests.helpers.volumes import phantom

    torch.manual_seed(0)
    flat = SRDenseNet(scale=2, **TINY_NET).eval()
    torch.nn.init.normal_(flat.reconstruction.weight, std=0.05)
    multi = SRDenseNet(scale=2, context_slices=2, **TINY_NET).eval()
    state = flat.state_dict()
    state["low_level.weight"] = torch.cat([torch.zeros_like(state["low_level.weight"])] * 2 + [state["low_level.weight"]]
                                          + [torch.zeros_like(state["low_level.weight"])] * 2, dim=1)
    multi.load_state_dict(state)
    data = (phantom((32, 32, 6)) / 1000).astype("float32")
    v = EvalVolume("x", "x", Volume(data, np.eye(4), "x.nii.gz", ("R", "A", "S")), Intensity(0.0, 1.0), 0, 6, np.arange(6))
    options = RunOptions(device="cpu", precision="fp32", batch_size=4)
    evaluator = Evaluator({"flat": flat, "multi": multi}, KSpaceDegradation(scale=2, hr_size=None, noise_std=0.02),
                          slice_axis=2, seed=0, options=options)
    evaluator.progress = False
    outputs, table = evaluator.run_volume(v)
    assert outputs["sr_multi"].shape == outputs["sr_flat"].shape == (32, 32, 6)
    np.testing.assert_allclose(outputs["sr_multi"], outputs["sr_flat"], atol=1e-5)
    scores = {m: [r["psnr"] for r in table.rows if r["method"] == m] for m in ("flat", "multi", "zerofill")}
    assert len(scores["multi"]) == 6 and np.allclose(scores["multi"], scores["flat"], atol=1e-3)
    # the LR written for the volume is the same whichever networks are compared
    alone = Evaluator({"flat": flat}, KSpaceDegradation(scale=2, hr_size=None, noise_std=0.02), slice_axis=2, seed=0,
                      options=options)
    alone.progress = False
    assert np.array_equal(alone.run_volume(v)[0]["lr"], outputs["lr"])


def test_evaluate_names_inputs_outside_the_checkpoints_contract(tmp_path, caplog):
    """6 mm slices given to srdensenet-kspace-x2 (a 2 mm model): a warning naming the file, or with
    contract=refuse an input failure that names it while the other inputs are still evaluated."""
    import logging

    from tests.helpers.volumes import write_phantom

    thick = write_phantom(tmp_path / "thick.nii.gz", shape=(40, 40, 4), affine=np.diag([1.5, 1.5, 6.0, 1.0]))
    fine = write_phantom(tmp_path / "fine.nii.gz", shape=(40, 40, 4), affine=np.diag([1.5, 1.5, 2.0, 1.0]))
    options = {"pretrained": "srdensenet-kspace-x2", "inputs": [str(thick), str(fine)], "classical": [], "device": "cpu",
               "progress": False}
    with caplog.at_level(logging.WARNING):
        table = run_evaluate(tmp_path / "warn", **options)
    assert set(table.subjects) == {"thick", "fine"} and not table.failures
    warnings = [r.getMessage() for r in caplog.records if "expects" in r.getMessage()]
    assert len(warnings) == 1 and "thick.nii.gz" in warnings[0] and "slice thickness 6 mm" in warnings[0]
    table = run_evaluate(tmp_path / "refuse", contract="refuse", **options)
    assert table.subjects == ["fine"] and "contract=refuse" in table.failures[str(thick)]


def test_a_lesion_brighter_than_the_window_survives_evaluate(tmp_path, bicubic_checkpoint):
    """Evaluate scores on the window (as before) and writes every output with what lies beyond it:
    the reference, the degraded input and each method keep the lesion."""
    import nibabel as nib

    from tests.helpers.volumes import write_lesion_phantom

    src, value, lesion = write_lesion_phantom(tmp_path / "lesion.nii.gz")
    table = run_evaluate(tmp_path / "out", ckpt_path=str(bicubic_checkpoint), inputs=[str(src)])
    assert table.rows and not table.failures
    scan = nib.load(src).get_fdata()
    written = {p.name.removeprefix("lesion_").removesuffix(".nii.gz"): nib.load(p).get_fdata()
               for p in (tmp_path / "out").glob("lesion_*.nii.gz")}
    assert {"hr", "lr", "zerofill", "bicubic"} <= set(written), sorted(written)
    for kind, data in written.items():
        assert data.max() > 0.9 * value, (kind, data.max(), value)
        assert data.max() <= scan.max() + 1e-3 and data.min() >= scan.min() - 1e-3, kind
    np.testing.assert_allclose(written["hr"][lesion].max(), value, rtol=1e-4)
