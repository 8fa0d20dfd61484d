"""The training run behind ``train.py``: build everything from the config, fit, test."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from lfmri.checkpoints.load import METADATA_KEY, build, config_targets, load_checkpoint, record_test_metrics
from lfmri.checkpoints.stored_run import CheckpointMetadata
from lfmri.files import remove_stale_temporaries
from lfmri.training.callbacks import AveragedWeightsInTest, FiniteLoss, choose_progress, start_averaging_within_run
from lfmri.training.csv_logger import ResumableCSVLogger
from lfmri.training.logs import quiet_lightning
from lfmri.training.precision import trainer_precision
from lfmri.errors import ConfigError, ExistingOutputError, MissingFileError, UserError
from lfmri.contracts import check_compatible, check_context, input_mode, model_name
from lfmri.degrade.baselines import make_baselines
from lfmri.training import resolvers  # noqa: F401  registers ${lfmri.multiple:...} and ${metric_mode:...} for configs resolved here
from lfmri.training.run_record import requeued_by_slurm
from lfmri.training.transfer import init_network
from lfmri.training.wandb_logger import define_summaries, hydra_job, log_test_table, short_config

log = logging.getLogger(__name__)


def instantiate_group(node: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` of a dict-of-components group (callbacks, logger)."""
    if not node:
        return []
    return [instantiate(entry) for entry in node.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def resume_checkpoint(checkpoint_dir: Path, resume: bool | str) -> str | None:
    """``last.ckpt`` to resume from, or ``None`` for a fresh run; refuses to clobber a finished one.

    ``resume``: ``true`` needs ``last.ckpt``; ``auto`` takes it when it exists (a requeued SLURM
    job always does); ``false`` refuses a directory that already holds checkpoints.
    """
    last = checkpoint_dir / "last.ckpt"
    if resume not in (True, False, "auto"):
        raise ConfigError(f"resume={resume!r}: expected true, false or auto")
    if resume is False and requeued_by_slurm():
        # the newest of last.ckpt and Lightning's SLURM requeue checkpoints (hpc_ckpt_N.ckpt)
        found = [p for p in [last, *checkpoint_dir.parent.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
        return str(max(found, key=lambda p: p.stat().st_mtime)) if found else None
    if resume == "auto":
        return str(last) if last.is_file() else None
    if resume:
        if not last.is_file():
            raise MissingFileError(f"resume=true but {last} does not exist; set hydra.run.dir to the run to resume")
        return str(last)
    existing = sorted(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
    if existing and rank_zero_only.rank == 0:
        # other ranks start after rank zero may have saved: only rank zero judges a fresh run
        raise ExistingOutputError(
            f"{checkpoint_dir} already holds checkpoints ({', '.join(p.name for p in existing)}); "
            "pass resume=true to continue that run, or choose another hydra.run.dir"
        )
    return None


def check_trainer_options(trainer_cfg: DictConfig) -> None:
    """Refuse, in one line before anything is built, a run that would not train (``max_epochs=0`` or
    ``max_steps=0``: it would test its untrained network and exit 0) and more CPU processes than the
    machine has cores (``trainer.devices=99`` with the CPU accelerator starts 99 DDP processes)."""
    import os

    for key in ("max_epochs", "max_steps"):
        value = trainer_cfg.get(key)
        if value is not None and not isinstance(value, bool) and isinstance(value, int) and value == 0:
            raise ConfigError(f"trainer.{key}=0 trains nothing (the test would score the untrained network); "
                              f"give a positive number, or -1 for no limit by {key.split('_')[1]}")
    devices, accelerator = trainer_cfg.get("devices"), str(trainer_cfg.get("accelerator", "auto"))
    cpu = accelerator == "cpu" or (accelerator == "auto" and not torch.cuda.is_available())
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cpu and isinstance(devices, int) and not isinstance(devices, bool) and devices > cores:
        raise ConfigError(f"trainer.devices={devices}: more CPU processes than the {cores} cores this job has; "
                          f"give at most {cores} (each process trains one share of every batch)")


def schedule_choices(cfg: DictConfig) -> dict:
    """The ``optimizer=`` and ``scheduler=`` groups' choices (top-level ``optimizer`` and ``scheduler``
    nodes) as the module's arguments, in place of the recipe's ``module.optimizer``/``module.scheduler``:
    a paper's training schedule is one choice, and nothing of the recipe's optimiser (SGD's momentum
    under ``optimizer=adam``) is left mixed into it."""
    chosen = {}
    if cfg.get("optimizer") is not None:
        chosen["optimizer"] = instantiate(cfg.optimizer)
        log.info("optimizer=%s in place of module.optimizer (lr %s)", cfg.optimizer._target_, cfg.optimizer.get("lr"))
    if cfg.get("scheduler") is not None:
        factory = cfg.scheduler.get("factory")
        chosen["scheduler"] = instantiate(factory) if factory is not None else None
        chosen["scheduler_interval"] = str(cfg.scheduler.get("interval", "epoch"))
        log.info("scheduler=%s (per %s) in place of module.scheduler", factory._target_ if factory is not None else "constant",
                 chosen["scheduler_interval"])
    return chosen


def check_rank_launch(trainer: L.Trainer) -> None:
    """Refuse ``trainer=ddp`` with several local ranks inside a Hydra multirun, before it hangs.

    Lightning starts the extra ranks by re-running the command line, which inside ``-m`` starts
    a sweep of its own in every rank (pitfalls: Lightning #11300, hydra #2070).
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from lightning.pytorch.strategies.launchers.subprocess_script import _SubprocessScriptLauncher

    launcher = getattr(trainer.strategy, "launcher", None)
    # under SLURM (srun) the same launcher starts nothing: the cluster started every rank
    relaunches = isinstance(launcher, _SubprocessScriptLauncher) and not launcher.cluster_environment.creates_processes_externally
    if relaunches and trainer.num_devices > 1 and HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        raise ValueError(
            "trainer.strategy re-runs train.py for each of its "
            f"{trainer.num_devices} processes, which does not work inside a multirun (-m): use "
            "trainer=ddp_spawn, or hydra/launcher=slurm where SLURM starts the ranks"
        )


def split_test_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/") and v.numel() == 1}


def flatten(config: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``: one column per setting in experiment dashboards."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict) and value:
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def scalar_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}


def write_run_metrics(path: Path, trainer: L.Trainer, metrics: dict[str, float], last: Path) -> None:
    """``metrics.json``: last validation and test metrics, best monitored value, step count."""
    callback = trainer.checkpoint_callback
    best = getattr(callback, "best_model_score", None)
    step, epoch = trainer.global_step, trainer.current_epoch
    if step == 0 and last.is_file():
        # ddp_spawn trained in child processes: this trainer never counted; the checkpoint did
        checkpoint = torch.load(last, map_location="cpu", weights_only=True)
        step, epoch = checkpoint["global_step"], checkpoint["epoch"]
        scores = [s["best_model_score"] for s in checkpoint.get("callbacks", {}).values()
                  if isinstance(s, dict) and s.get("monitor") == getattr(callback, "monitor", None)]
        best = next((s for s in scores if s is not None), best)
    record = {
        "global_step": int(step),
        "epoch": int(epoch),
        "monitor": getattr(callback, "monitor", None),
        "best_score": float(best) if best is not None else None,
        "metrics": metrics,
    }
    path.write_text(json.dumps(record, indent=2) + "\n")


def describe_tested_weights(path: Path) -> str | None:
    """One line on the weights a checkpoint holds (its step, averaged or raw), logged before the test;
    a warning, also returned for the test table, when they are the weights fitting started from."""
    weights = ((torch.load(path, map_location="cpu", weights_only=True).get(METADATA_KEY) or {}).get("weights")) or {}
    if not weights:
        return None
    kind = f"the weight average of {weights['averaged_updates']} updates" if weights.get("averaged") else "the raw network"
    if rank_zero_only.rank == 0:
        log.info("tested checkpoint %s: step %d, %s", path.name, weights["step"], kind)
    if not weights.get("same_as_init"):
        return None
    note = (f"{path.name} (step {weights['step']}, {kind}) holds the initial weights unchanged (seed or init_from): "
            "these rows score the network the run started from, not one it trained")
    if rank_zero_only.rank == 0:
        log.warning("%s", note)
    return note


def _fit_and_test(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule, net: torch.nn.Module,
                  ckpt_path: str | None, checkpoint_dir: Path) -> dict[str, float]:
    """``trainer.fit`` then ``trainer.test`` of the checkpoint validation chose; returns the scalar
    metrics of fit (``trainer.test`` replaces them in the trainer)."""
    fit_metrics: dict[str, float] = {}
    if any(p.requires_grad for p in net.parameters()):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        fit_metrics = scalar_metrics(trainer)
        if trainer.fast_dev_run:
            # fast_dev_run disables checkpoint callbacks; evaluation still needs the weights
            trainer.save_checkpoint(checkpoint_dir / "last.ckpt", weights_only=False)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        tested_weights = Path(best) if best else checkpoint_dir / "last.ckpt"
        if tested_weights.is_file():
            module.test_note = describe_tested_weights(tested_weights)
        # verbose=False: the module prints the test table once (in-brain first, per subject); Lightning's
        # table of every logged scalar would print the same numbers again
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
        tested = Path(best) if best else checkpoint_dir / "last.ckpt"
        if trainer.is_global_zero and tested.is_file():
            record_test_metrics(tested, split_test_metrics(trainer))
    else:
        log.info("%s has no trainable parameters: evaluating it without training", type(net).__name__)
        trainer.test(module, datamodule=datamodule, verbose=False)
    return fit_metrics


@contextlib.contextmanager
def stop_on_sigint(trainer: L.Trainer, stopped_by: list[int]):
    """Ctrl-C (SIGINT) stops training as SIGTERM does: at the end of the batch, with ``last.ckpt``
    written (:class:`~lfmri.training.callbacks.CheckpointOnSigterm`), the resume command and exit
    status 128 + signal.

    Lightning turns SIGTERM into ``trainer.received_sigterm`` and stops through ``SIGTERMException``
    at the next batch boundary of training, validation or test; it leaves SIGINT to Python, whose
    ``KeyboardInterrupt`` Lightning catches and answers with ``exit(1)``, no checkpoint. Here SIGINT
    sets the same flag. A second Ctrl-C is Python's again (``KeyboardInterrupt``: stop at once).
    """
    def handler(signum: int, frame) -> None:
        stopped_by.append(signum)
        trainer.lfmri_stop_signal = signal.Signals(signum).name  # named by CheckpointOnSigterm's line
        signal.signal(signal.SIGINT, signal.default_int_handler)
        # Lightning's own SIGTERM handler: sets trainer.received_sigterm, passes the stop to DDP ranks
        trainer._signal_connector._sigterm_notifier_fn(signum, frame)

    try:
        previous = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: Ctrl-C stays Python's
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit ``cfg.model`` on ``cfg.data`` degraded by ``cfg.degradation``, then test it."""
    output_dir = Path(cfg.output_dir)
    check_trainer_options(cfg.trainer)
    quiet_lightning()
    L.seed_everything(cfg.seed, workers=True)
    torch.set_float32_matmul_precision(cfg.get("float32_matmul_precision", "highest"))

    degradation = instantiate(cfg.degradation)
    net = instantiate(cfg.model)
    check_compatible(net, degradation)
    check_context(net, cfg.data.get("context_slices", 0))
    trust = list(cfg.get("trust_targets") or [])
    # what this run's own config names is instantiated anyway: a stored copy of it is no new code
    known = sorted(config_targets(OmegaConf.to_container(cfg, resolve=False)))
    init_network(net, cfg.get("init_from"), cfg.get("freeze"), trust, known)
    checkpoint_dir = output_dir / "checkpoints"
    ckpt_path = resume_checkpoint(checkpoint_dir, cfg.get("resume", False))
    if cfg.get("ckpt_path"):  # lightning-hydra-template's convention: continue from a checkpoint, in this new run
        if ckpt_path:
            raise ConfigError(f"ckpt_path={cfg.ckpt_path} and resume={cfg.resume} both name a checkpoint to continue from; give one")
        ckpt_path = str(cfg.ckpt_path)
    if cfg.get("extras", {}).get("print_config") and rank_zero_only.rank == 0:
        print(OmegaConf.to_yaml(cfg, resolve=True))
    resumed = load_checkpoint(ckpt_path, trust, known) if ckpt_path else None  # refuses foreign targets
    resumed_step = resumed["global_step"] if resumed is not None else 0
    stored = (resumed.get(METADATA_KEY) or {}).get("split") if resumed is not None else None
    del resumed  # the weights are loaded again by trainer.fit
    data_options = {}
    if stored and cfg.data.get("split") is None:
        # the run goes on with the subjects it started with, even if the folder has changed since
        data_options["split"] = stored
        log.info("resuming with the stored split (%s)", ", ".join(f"{k}: {len(v)}" for k, v in stored.items()))
    # build: the stored split's file names reach the data module as they are, never resolved by OmegaConf
    try:
        datamodule = build(cfg.data, degradation=degradation, input_mode=input_mode(net), **data_options)
    except (ValueError, TypeError) as err:
        # the data module's constructor checks its options (data.patch_size=-4, data.num_workers=-1): the
        # option's mistake, one line (a data error of its own, DataError, passes as it is)
        if isinstance(err, (UserError, OmegaConfBaseException)):  # OmegaConf's: lfmri.cli.common.run_entry names its key
            raise
        raise ConfigError(str(err).splitlines()[0] if str(err) else f"data: {type(err).__name__}") from err
    # a baseline evaluated as the model itself is not repeated beside it
    baselines = {k: b for k, b in make_baselines(degradation).items() if type(b) is not type(net)}
    module = instantiate(cfg.module, net=net, loss=instantiate(cfg.loss), baselines=baselines, name=model_name(net),
                         **schedule_choices(cfg))
    if hasattr(module, "check_setup"):
        module.check_setup(datamodule)  # e.g. a critic built for another patch size: fail before fitting

    if rank_zero_only.rank == 0:
        remove_stale_temporaries(checkpoint_dir)
    config = OmegaConf.to_container(cfg, resolve=True)
    callbacks = instantiate_group(cfg.get("callbacks"))
    callbacks.append(CheckpointMetadata(config, name=model_name(net)))
    callbacks.append(AveragedWeightsInTest())  # callbacks.ema: test the weights validation selected
    callbacks.append(FiniteLoss())  # a NaN loss stops the run with one line, not 0 after training on NaN
    loggers = instantiate_group(cfg.get("logger"))
    # the redrawn progress bar only on a terminal; files get callbacks.progress_log's lines instead
    callbacks, bar = choose_progress(callbacks, sys.stdout.isatty(), cfg.trainer.get("enable_progress_bar"))
    # trainer.precision=auto: bf16-mixed only where the device runs it natively (the detection predict uses)
    precision, reason = trainer_precision(cfg.trainer.get("precision", "auto"), cfg.trainer.get("accelerator"))
    if rank_zero_only.rank == 0:
        log.info("precision %s: %s", precision, reason)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False, enable_progress_bar=bar,
                                     precision=precision)
    start_averaging_within_run(callbacks, trainer.max_steps)  # a short trial run's EMA starts within it
    check_rank_launch(trainer)
    if ckpt_path:  # before the first log: the CSV keeps what the run logged up to its checkpoint
        for logger in trainer.loggers:
            if isinstance(logger, ResumableCSVLogger):
                logger.resume_from(resumed_step)
    # the config, and the short keys runs are grouped by in a dashboard (model_name, loss_name, ...)
    hyperparameters = {**flatten(config), **short_config(hydra_job(), config)}
    for logger in trainer.loggers:
        logger.log_hyperparams(hyperparameters)  # rank zero only, inside the loggers
        if isinstance(logger, WandbLogger) and trainer.is_global_zero:
            define_summaries(logger)

    fit_metrics: dict[str, float] = {}
    stopped_by: list[int] = []  # the signal that stopped the run (SIGINT caught by stop_on_sigint, else SIGTERM)
    try:
        with stop_on_sigint(trainer, stopped_by):
            fit_metrics = _fit_and_test(trainer, module, datamodule, net, ckpt_path, checkpoint_dir)
    except SIGTERMException:
        signum = stopped_by[0] if stopped_by else signal.SIGTERM
        if trainer.is_global_zero:
            # the exact command that resumes it is printed by lfmri.cli.common.run_entry (a sweep's job: its -m command with resume=auto)
            log.warning("stopped by %s; last.ckpt saved in %s", signal.Signals(signum).name, checkpoint_dir)
        raise SystemExit(128 + signum) from None
    finally:
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and trainer.is_global_zero:
                if getattr(module, "test_table", None) is not None:
                    log_test_table(logger, module.test_table)
                logger.experiment.finish()  # one wandb run per job, also when the job fails (multirun)

    metrics = {**fit_metrics, **scalar_metrics(trainer)}
    if trainer.is_global_zero:
        write_run_metrics(output_dir / "metrics.json", trainer, metrics, checkpoint_dir / "last.ckpt")
    log.info("run directory: %s", output_dir)
    return metrics
