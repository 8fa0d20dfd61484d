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
    value, scale = int(value), int(scale)
    if scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    step = math.lcm(2, scale)
    return max(step, step * int((value + step / 2) // step))


def register() -> None:
    if not OmegaConf.has_resolver("lfmri.multiple"):
        OmegaConf.register_new_resolver("lfmri.multiple", nearest_multiple)
    if not OmegaConf.has_resolver("metric_mode"):
        OmegaConf.register_new_resolver("metric_mode", metric_mode)


register()
