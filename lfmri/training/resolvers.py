"""OmegaConf resolvers used by lfmri's configs; registered on import (train.py, evaluate.py and lfmri.training.run import this)."""

from __future__ import annotations

import math

from omegaconf import OmegaConf

from lfmri.scoring.names import metric_mode  # torch-free: the checkpoint callback's mode: ${metric_mode:${monitor}}


def nearest_multiple(value: int, scale: int) -> int:
    """The even multiple of ``scale`` nearest to ``value`` (ties upwards), at least one.

    ``degradation.hr_size: ${lfmri.multiple:128,${scale}}`` gives 128 at x2 and x4, 126 at x3,
    and ``data.patch_size: ${lfmri.multiple:32,${scale}}`` 32 at x2/x4, 30 at x3: ``scale=N``
    alone keeps every size divisible. Even, so HR and LR k-space centres stay on a pixel (the
    same convention at every scale).
    """
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}")
    value = int(value)
    step = math.lcm(2, scale)
    return max(step, step * int((value + step / 2) // step))


def _factor(batch_scale) -> float:
    if batch_scale is None:
        return 1
    if isinstance(batch_scale, bool) or not isinstance(batch_scale, (int, float)) or batch_scale <= 0:
        raise ValueError(f"batch_scale={batch_scale!r}: must be a positive number (or null: 1)")
    return batch_scale


def batch_scaled(value: int, batch_scale) -> int:
    """``value`` (a recipe's batch size or patches per epoch) times ``batch_scale`` (``null``: 1):
    ``data.batch_size: ${lfmri.batch_scaled:12,${batch_scale}}`` is 12 on a CPU, 96 under hardware=gpu."""
    return max(1, int(round(int(value) * _factor(batch_scale))))


def lr_scaled(value: float, batch_scale) -> float:
    """A learning rate for a batch ``batch_scale`` times the recipe's: times its square root, the rule
    for Adam-type optimisers (the gradient noise of a batch k times larger is sqrt(k) times smaller;
    Hoffer et al. 2017, Malladi et al. 2022), which every recipe that uses it trains with (SGD's usual
    rule is linear; the SGD recipes, MRLN's, keep their published batch and rate)."""
    return float(value) * math.sqrt(_factor(batch_scale))


def register() -> None:
    if not OmegaConf.has_resolver("lfmri.multiple"):
        OmegaConf.register_new_resolver("lfmri.multiple", nearest_multiple)
    if not OmegaConf.has_resolver("lfmri.batch_scaled"):
        OmegaConf.register_new_resolver("lfmri.batch_scaled", batch_scaled)
    if not OmegaConf.has_resolver("lfmri.lr_scaled"):
        OmegaConf.register_new_resolver("lfmri.lr_scaled", lr_scaled)
    if not OmegaConf.has_resolver("metric_mode"):
        OmegaConf.register_new_resolver("metric_mode", metric_mode)


register()
