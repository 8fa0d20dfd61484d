"""Every option of every config group composes and instantiates; experiments set their recipes."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lfmri.contracts import input_mode
from lfmri.data.augment import SliceAugmentation
from lfmri.degrade.baselines import make_baselines
from lfmri.training.precision import trainer_precision
from lfmri.training.run import instantiate_group
from tests.helpers.config import CONF, compose


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def composed(overrides):
    return compose(*overrides, output_dir="/tmp/lfmri-config-test")


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
            assert instantiate_group(cfg[group]) or (group, option) == ("callbacks", "none")  # none: deliberately empty
        if group == "trainer":
            if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
                # GPU configs build on the CPU: same strategy, gloo instead of NCCL
                cfg.trainer.accelerator, cfg.trainer.devices = "cpu", 2
                if cfg.trainer.get("strategy") and cfg.trainer.strategy.get("process_group_backend"):
                    cfg.trainer.strategy.process_group_backend = "gloo"
            precision, _ = trainer_precision(cfg.trainer.precision, cfg.trainer.accelerator)  # as lfmri.training.run does
            assert instantiate(cfg.trainer, logger=False, precision=precision).max_epochs == cfg.trainer.max_epochs


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
    cfg = compose("experiment=baselines_x2", output_dir="/tmp/x", hydra=True)
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    assert cfg.hydra.sweeper.params.model.split(",") == ["srcnn", "fsrcnn", "espcn", "vdsr", "srdensenet", "mrln"]


def test_deleeuw_experiment_sets_the_paper_recipe():
    cfg = composed(["experiment=deleeuw2022_srdensenet", "data.pattern=/x/*.nii.gz"])
    assert cfg.module.optimizer.lr == 1e-3 and cfg.data.batch_size == 20
    assert cfg.data.patch_size == 32 and cfg.trainer.max_epochs == 74
    assert list(cfg.loss.terms) == ["mse"] and cfg.degradation.hr_size == 128
    assert cfg.data._target_.endswith("FolderDataModule")


def test_template_conventions_compose():
    """debug=..., callbacks=early_stopping, logger=many, ckpt_path, tags, extras.print_config."""
    for debug in ("fdr", "overfit", "limit", "profiler"):
        cfg = compose(f"debug={debug}", output_dir=None, hydra=True)
        assert cfg.hydra.run.dir.startswith("outputs/debug/")
    assert compose("debug=fdr", output_dir=None).trainer.fast_dev_run is True
    assert compose("debug=overfit", output_dir=None).trainer.overfit_batches == 3
    cfg = compose("callbacks=early_stopping", "logger=many", "tags=[a,b]", "extras.print_config=true", "ckpt_path=x.ckpt", output_dir=None)
    assert cfg.callbacks.early_stopping.monitor == "val/psnr_brain" and "model_checkpoint" in cfg.callbacks
    assert set(cfg.logger) == {"csv", "wandb", "tensorboard"} and list(cfg.logger.wandb.extra_tags) == ["a", "b"]
    assert set(compose("logger=[csv,wandb]", output_dir=None).logger) == {"csv", "wandb"}
    assert compose("scale=3", output_dir=None).degradation.hr_size == 126


def test_recipe_experiment_composes_and_builds():
    cfg = compose("experiment=srdensenet_kspace_x2", "data.pattern=/x/*.nii.gz", output_dir="/tmp/x")
    net = instantiate(cfg.model)
    assert net.residual and net.grid == "kspace"
    deg = instantiate(cfg.degradation)
    dm = instantiate(cfg.data, degradation=deg, input_mode="lr")
    assert isinstance(dm.augment, SliceAugmentation) and dm.augment.noise_std is not None
    sched = instantiate(cfg.module.scheduler)(optimizer=torch.optim.Adam(net.parameters()))
    assert sched.total_steps == cfg.trainer.max_steps and cfg.module.scheduler_interval == "step"
    assert instantiate(cfg.callbacks.ema).__class__.__name__ == "RunFittedEMA"  # Lightning's EMA, horizon fitted to the run
    assert math.isclose(cfg.module.optimizer.lr, 5e-4)


@pytest.mark.parametrize("budget", options("budget"))
@pytest.mark.parametrize("experiment", [None, *options("experiment")])
def test_a_budget_shortens_every_recipe_and_validates_on_a_step_interval(budget, experiment):
    """budget=quick after any experiment: its steps, a validation every N steps (not per epoch), bounded
    validation; a per-step schedule of the recipe follows the shorter run."""
    cfg = composed([*([f"experiment={experiment}"] if experiment else []), f"budget={budget}"])
    full = composed([f"experiment={experiment}"] if experiment else [])
    assert 0 < cfg.trainer.max_steps and cfg.trainer.max_epochs == -1
    # shorter than every recipe longer than it (gan_cpce_kspace_x2 is 200 generator updates: quick is not shorter)
    assert full.trainer.max_steps == -1 or cfg.trainer.max_steps < full.trainer.max_steps or full.trainer.max_steps <= 400
    assert cfg.trainer.max_steps <= 400
    assert cfg.trainer.check_val_every_n_epoch is None and 0 < cfg.trainer.val_check_interval <= cfg.trainer.max_steps
    assert isinstance(cfg.trainer.limit_val_batches, int) and cfg.trainer.limit_val_batches >= 1
    if cfg.module.get("scheduler") and "total_steps" in cfg.module.scheduler:
        assert cfg.module.scheduler.total_steps == cfg.trainer.max_steps


def test_debug_runs_log_lfmri_at_debug_without_matplotlib_font_lines():
    """debug=fdr sets the root logger to DEBUG; matplotlib would add ~200 font-probing lines."""
    import logging
    import logging.config

    cfg = compose("debug=fdr", hydra=True)
    job_logging = OmegaConf.to_container(cfg.hydra.job_logging, resolve=False)
    job_logging["handlers"] = {}  # configure the levels only, write nothing
    job_logging["root"].pop("handlers", None)
    job_logging["disable_existing_loggers"] = False
    before = {name: logging.getLogger(name).level for name in ("", "matplotlib", "PIL")}
    try:
        logging.config.dictConfig(job_logging)
        assert logging.getLogger("lfmri.training").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("matplotlib.font_manager").isEnabledFor(logging.DEBUG)
        assert not logging.getLogger("PIL.PngImagePlugin").isEnabledFor(logging.DEBUG)
    finally:
        for name, level in before.items():
            logging.getLogger(name).setLevel(level)


def test_slurm_launchers_fit_gpu_and_cpu_partitions_and_send_the_time_limit_signal_to_lightning():
    def launcher(*overrides):
        cfg = compose(*overrides, output_dir="/tmp/x", hydra=True)
        return OmegaConf.to_container(cfg.hydra.launcher, resolve=True)

    gpu = launcher("hydra/launcher=slurm")
    assert (gpu["gpus_per_node"], gpu["tasks_per_node"], gpu["cpus_per_task"]) == (1, 1, 4)
    assert launcher("hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4")["tasks_per_node"] == 4  # one task per GPU
    cpu = launcher("hydra/launcher=slurm_cpu")
    assert (cpu["gpus_per_node"], cpu["tasks_per_node"], cpu["cpus_per_task"]) == (None, 1, 1)
    assert cpu["setup"] == ["export OMP_NUM_THREADS=$SLURM_CPUS_PER_TASK"]
    for conf in (gpu, cpu, launcher("hydra/launcher=slurm_cpu", "+hydra.launcher.additional_parameters.constraint=x")):
        assert conf["_target_"].endswith("submitit_launcher.SlurmLauncher")
        # USR1 (Lightning's SLURM requeue handler), not submitit's USR2 which requeues without saving
        assert conf["additional_parameters"]["signal"] == f"USR1@{conf['signal_delay_s']}"
        assert conf["additional_parameters"]["requeue"] is True
    for app in ("train", "evaluate"):
        callbacks = compose(config=app, output_dir=None, hydra=True).hydra.callbacks
        assert callbacks.slurm_jobs._target_ == "lfmri.cli.common.WatchSlurmJobs"
