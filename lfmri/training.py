"""The training run behind ``train.py``: build everything from the config, fit, test."""

from __future__ import annotations

import logging
from pathlib import Path

import lightning as L
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from lfmri.checkpoint import CheckpointMetadata, record_test_metrics
from lfmri.models.base import check_compatible, input_mode, model_name
from lfmri.models.bicubic import Bicubic
from lfmri.models.zerofill import ZeroFill
from lfmri.transfer import init_network

log = logging.getLogger(__name__)


def make_baselines(degradation) -> dict[str, nn.Module]:
    """The non-learned references every evaluation reports beside the network."""
    return {"zerofill": ZeroFill(degradation), "bicubic": Bicubic(degradation)}


def instantiate_group(node: DictConfig | None) -> list:
    """Instantiate every entry with a ``_target_`` of a dict-of-components group (callbacks, logger)."""
    if not node:
        return []
    return [instantiate(entry) for entry in node.values() if isinstance(entry, DictConfig) and "_target_" in entry]


def resume_checkpoint(checkpoint_dir: Path, resume: bool) -> str | None:
    """``last.ckpt`` to resume from, or ``None`` for a fresh run; refuses to clobber a finished one."""
    last = checkpoint_dir / "last.ckpt"
    if resume:
        if not last.is_file():
            raise FileNotFoundError(f"resume=true but {last} does not exist; set hydra.run.dir to the run to resume")
        return str(last)
    existing = sorted(checkpoint_dir.glob("*.ckpt")) if checkpoint_dir.is_dir() else []
    if existing:
        raise FileExistsError(
            f"{checkpoint_dir} already holds checkpoints ({', '.join(p.name for p in existing)}); "
            "pass resume=true to continue that run, or choose another hydra.run.dir"
        )
    return None


def split_test_metrics(trainer: L.Trainer) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("test/") and v.numel() == 1}


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit ``cfg.model`` on ``cfg.data`` degraded by ``cfg.degradation``, then test it."""
    output_dir = Path(cfg.output_dir)
    L.seed_everything(cfg.seed, workers=True)

    degradation = instantiate(cfg.degradation)
    net = instantiate(cfg.model)
    check_compatible(net, degradation)
    init_network(net, cfg.get("init_from"), cfg.get("freeze"))
    datamodule = instantiate(cfg.data, degradation=degradation, input_mode=input_mode(net))
    # a baseline evaluated as the model itself is not repeated beside it
    baselines = {k: b for k, b in make_baselines(degradation).items() if type(b) is not type(net)}
    module = instantiate(cfg.module, net=net, loss=instantiate(cfg.loss), baselines=baselines, name=model_name(net))
    if hasattr(module, "check_setup"):
        module.check_setup(datamodule)  # e.g. a critic built for another patch size: fail before fitting

    checkpoint_dir = output_dir / "checkpoints"
    ckpt_path = resume_checkpoint(checkpoint_dir, bool(cfg.get("resume", False)))
    callbacks = instantiate_group(cfg.get("callbacks"))
    callbacks.append(CheckpointMetadata(OmegaConf.to_container(cfg, resolve=True), name=model_name(net)))
    loggers = instantiate_group(cfg.get("logger"))
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)

    if any(p.requires_grad for p in net.parameters()):
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        if trainer.fast_dev_run:
            # fast_dev_run disables checkpoint callbacks; evaluation still needs the weights
            trainer.save_checkpoint(checkpoint_dir / "last.ckpt", weights_only=False)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        trainer.test(module, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        tested = Path(best) if best else checkpoint_dir / "last.ckpt"
        if trainer.is_global_zero and tested.is_file():
            record_test_metrics(tested, split_test_metrics(trainer))
    else:
        log.info("%s has no trainable parameters: evaluating it without training", type(net).__name__)
        trainer.test(module, datamodule=datamodule)

    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if v.numel() == 1}
    log.info("run directory: %s", output_dir)
    return metrics
