"""Prediction settings for tests: :class:`~lfmri.inference.predictor.PredictConfig` and a tiny SRDenseNet."""

from __future__ import annotations

from pathlib import Path

import torch

from lfmri.inference.network import bf16_supported
from lfmri.inference.predictor import PredictConfig
from lfmri.models.srdensenet import SRDenseNet

BF16 = bf16_supported("cpu")  # whether this CPU runs bf16 natively (else it is emulated and refused)

# an SRDenseNet a few thousand parameters large: the real wiring at a tiny width
TINY_NET = dict(low_level_channels=8, growth=4, layers_per_block=3, blocks=2, bottleneck_channels=16)
TINY_MODEL = [f"model.{k}={v}" for k, v in TINY_NET.items()]  # the same as train.py overrides


def tiny_net(scale: int = 2) -> SRDenseNet:
    torch.manual_seed(0)
    return SRDenseNet(scale=scale, **TINY_NET).eval()


def predict_config(tmp_path: Path, ckpt: Path, *inputs: Path, **options) -> PredictConfig:
    """Predict ``inputs`` with ``ckpt`` into ``tmp_path/out``, no progress bar."""
    return PredictConfig(ckpt_path=str(ckpt), inputs=[str(p) for p in inputs], output_dir=str(tmp_path / "out"), progress=False, **options)
