"""Checkpoints written before lfmri was grouped by job still load, build and predict.

``tests/fixtures/checkpoint-main-b21863f.ckpt`` was written by ``train.py`` at commit b21863f
(experiment=srdensenet_kspace_x2 with a tiny network, 4 steps on generated volumes, 61 kB): its
config names ``lfmri.data.degradations``, ``lfmri.schedules``, ``lfmri.callbacks``,
``lfmri.checkpoint_io`` and ``lfmri.csv_logger``, none of which exist any more.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lfmri.checkpoints.load import (
    METADATA_KEY,
    MOVED_MODULES,
    build_network,
    config_targets,
    load_checkpoint,
    moved_target,
)
from lfmri.cli.predict import run_predict
from lfmri.degrade.degradations import KSpaceDegradation
from lfmri.inference.predictor import PredictConfig
from tests.helpers.volumes import write_phantom

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "checkpoint-main-b21863f.ckpt"


def test_the_fixture_is_small_and_names_the_old_paths():
    assert FIXTURE.stat().st_size < 200_000
    raw = torch.load(FIXTURE, map_location="cpu", weights_only=True)
    targets = config_targets(raw[METADATA_KEY])
    assert "lfmri.data.degradations.KSpaceDegradation" in targets and "lfmri.schedules.WarmupCosineLR" in targets


def test_old_paths_are_rewritten_on_load_and_build():
    checkpoint = load_checkpoint(FIXTURE)
    config = checkpoint[METADATA_KEY]["config"]
    assert config["degradation"]["_target_"] == "lfmri.degrade.degradations.KSpaceDegradation"
    assert config["module"]["scheduler"]["_target_"] == "lfmri.training.schedules.WarmupCosineLR"
    assert not {t for t in config_targets(checkpoint[METADATA_KEY]) if t.rpartition(".")[0] in MOVED_MODULES}
    assert isinstance(instantiate(OmegaConf.create(config).degradation), KSpaceDegradation)
    net = build_network(checkpoint)
    with torch.no_grad():
        assert net(torch.rand(1, 1, 16, 16)).shape[-2:] == (32, 32)


def test_moved_target_leaves_current_and_foreign_paths_alone():
    assert moved_target("lfmri.models.bicubic.Bicubic") == "lfmri.degrade.baselines.Bicubic"
    assert moved_target("lfmri.degrade.baselines.Bicubic") == "lfmri.degrade.baselines.Bicubic"
    assert moved_target("torch.optim.Adam") == "torch.optim.Adam"


def test_an_old_checkpoint_predicts_a_volume(tmp_path):
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(20, 24, 6))
    done, failed = run_predict(PredictConfig(ckpt_path=str(FIXTURE), inputs=[str(scan)], output_dir=str(tmp_path / "out"),
                                             progress=False, preview=False, device="cpu"))
    assert not failed
    out = nib.load(done[str(scan)]["sr"])
    assert out.shape == (40, 48, 6)
    np.testing.assert_allclose(np.diag(out.affine)[:3], np.diag(nib.load(scan).affine)[:3] / [2, 2, 1])
