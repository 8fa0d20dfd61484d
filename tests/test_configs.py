"""Every option of every config group composes and instantiates; bad options fail early."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lfmri.contracts import input_mode
from lfmri.degrade.baselines import make_baselines
from lfmri.training.run import instantiate_group
from tests.conftest import ROOT, run_script

CONF = ROOT / "conf"


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(overrides):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=["output_dir=/tmp/lfmri-config-test", *overrides])


def build(cfg):
    if "perceptual" in cfg.loss.get("terms", {}):
        cfg.loss.terms.perceptual.allow_random_weights = True  # no ImageNet weights offline
    degradation = instantiate(cfg.degradation)
    net = instantiate(cfg.model)
    data = instantiate(cfg.data, degradation=degradation, input_mode=input_mode(net))
    module = instantiate(cfg.module, net=net, loss=instantiate(cfg.loss), baselines=make_baselines(degradation))
    return degradation, net, data, module


@pytest.mark.parametrize("group", ["data", "degradation", "model", "loss", "module", "trainer", "logger", "callbacks"])
def test_every_option_of_every_group_instantiates(group):
    for option in options(group):
        overrides = [f"{group}={option}", "data.pattern=/nowhere/*.nii.gz"] if group == "data" else [f"{group}={option}"]
        if group == "data" and option != "folder":
            overrides = overrides[:1]
        if group == "data" and option in ("paired_lowfield", "ixi", "fastmri"):
            overrides.append("data.root=/nowhere")  # read at setup, not at instantiation
        if group == "degradation" and option == "kspace_zerofill":
            overrides.append("model=bicubic")  # the LR-grid default model cannot read HR-grid inputs
        cfg = composed(overrides)
        degradation, net, data, module = build(cfg)
        assert module.net is net and data.degradation is degradation
        if group in ("logger", "callbacks"):
            assert instantiate_group(cfg[group])
        if group == "trainer":
            if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
                # GPU configs build on the CPU: same strategy, gloo instead of NCCL
                cfg.trainer.accelerator, cfg.trainer.devices = "cpu", 2
                if cfg.trainer.strategy.get("process_group_backend"):
                    cfg.trainer.strategy.process_group_backend = "gloo"
            assert instantiate(cfg.trainer, logger=False).max_epochs == cfg.trainer.max_epochs


@pytest.mark.parametrize("experiment", options("experiment"))
def test_experiments_compose_and_instantiate(experiment):
    cfg = composed([f"experiment={experiment}"])
    if cfg.data._target_.endswith("FolderDataModule"):
        cfg.data.pattern = "/nowhere/*.nii.gz"
    if "root" in cfg.data.keys() and OmegaConf.is_missing(cfg.data, "root"):
        cfg.data.root = "/nowhere"
    if cfg.data._target_.endswith("PairedLowFieldDataModule") and not cfg.data.root and not cfg.data.synthetic_pattern:
        cfg.data.synthetic_pattern = "/nowhere/*.nii.gz"  # simulated pairs only (experiment=lowfield_sim)
    _, net, data, module = build(cfg)
    assert cfg.trainer.max_epochs > 0 or cfg.trainer.get("max_steps", -1) > 0  # every recipe ends


@pytest.mark.parametrize("scale, lr_patch", [(2, 14), (3, 10), (4, 8)])
def test_mrln_experiments_set_the_paper_recipe(scale, lr_patch):
    cfg = composed([f"experiment=mrln_x{scale}"])
    assert cfg.scale == scale and cfg.degradation._target_.endswith("BicubicDegradation")
    assert cfg.data.patch_size == scale * lr_patch and cfg.data.batch_size == 128
    opt, sched = cfg.module.optimizer, cfg.module.scheduler
    assert opt._target_ == "torch.optim.SGD" and (opt.lr, opt.momentum, opt.weight_decay) == (0.1, 0.9, 1e-4)
    assert (sched.step_size, sched.gamma) == (20, 0.1) and cfg.trainer.gradient_clip_val > 0
    assert cfg.model.grid == "area"  # U(x) follows the bicubic degradation's grid


def test_baselines_experiment_is_a_multirun_over_six_models():
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["output_dir=/tmp/x", "experiment=baselines_x2"], return_hydra_config=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params.model.split(",") == ["srcnn", "fsrcnn", "espcn", "vdsr", "srdensenet", "mrln"]


def test_deleeuw_experiment_sets_the_paper_recipe():
    cfg = composed(["experiment=deleeuw2022_srdensenet", "data.pattern=/x/*.nii.gz"])
    assert cfg.module.optimizer.lr == 1e-3 and cfg.data.batch_size == 20
    assert cfg.data.patch_size == 32 and cfg.trainer.max_epochs == 74
    assert list(cfg.loss.terms) == ["mse"] and cfg.degradation.hr_size == 128
    assert cfg.data._target_.endswith("FolderDataModule")


def test_unknown_group_option_fails_before_training_listing_valid_ones(tmp_path):
    proc = run_script("train.py", "model=nope", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    assert "Could not find 'model/nope'" in proc.stderr
    assert "Available options in 'model'" in proc.stderr and "srdensenet" in proc.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_incompatible_scale_fails_before_training(tmp_path):
    proc = run_script("train.py", "degradation=kspace_zerofill", f"hydra.run.dir={tmp_path}/run")
    assert proc.returncode != 0
    assert "returns its LR on the HR grid" in proc.stderr
    assert not Path(tmp_path / "run" / "checkpoints").exists()
