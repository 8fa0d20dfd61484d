"""Where not to trust a super-resolved image: spread of predictions under perturbation.

Two sources, combinable:
- test-time augmentation: the eight flips and 90-degree rotations of the slice (a network that
  invents structure tends to invent it differently in each orientation);
- Monte-Carlo dropout, for networks with dropout layers: dropout stays active at inference and
  the prediction is repeated.
The map is the per-pixel standard deviation over all predictions (population std, so a network
that always gives the same answer has a map of exactly zero); the image is their mean.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

Transform = tuple[int, bool]  # (quarter turns, flip left-right)
IDENTITY: tuple[Transform, ...] = ((0, False),)
DIHEDRAL: tuple[Transform, ...] = tuple((k, flip) for flip in (False, True) for k in range(4))


def apply(x: torch.Tensor, t: Transform) -> torch.Tensor:
    turns, flip = t
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1))


def invert(x: torch.Tensor, t: Transform) -> torch.Tensor:
    turns, flip = t
    x = torch.rot90(x, -turns, dims=(-2, -1))
    return x.flip(-1) if flip else x


def dropout_layers(net: nn.Module) -> list[nn.Module]:
    return [m for m in net.modules() if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0]


@contextmanager
def mc_dropout(net: nn.Module, enabled: bool) -> Iterator[None]:
    """Dropout layers in training mode (everything else in eval) while the block runs."""
    layers = dropout_layers(net) if enabled else []
    if enabled and not layers:
        raise ValueError(
            f"uncertainty.mc_samples needs a network with dropout; {type(net).__name__} has none "
            "(use uncertainty.tta=true instead)"
        )
    for layer in layers:
        layer.train()
    try:
        yield
    finally:
        for layer in layers:
            layer.eval()


def predictive_spread(
    run: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    transforms: tuple[Transform, ...] = DIHEDRAL,
    repeats: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``run`` over ``transforms`` x ``repeats`` predictions of (B, C, h, w).

    Running sums keep memory at two output-sized tensors whatever the number of samples.
    """
    total = total_sq = None
    n = 0
    for t in transforms:
        for _ in range(repeats):
            y = invert(run(apply(x, t)), t).double()
            total = y if total is None else total + y
            total_sq = y * y if total_sq is None else total_sq + y * y
            n += 1
    mean = total / n
    var = (total_sq / n - mean * mean).clamp_min(0)
    return mean.float(), var.sqrt().float()


def error_correlation(uncertainty: torch.Tensor, error: torch.Tensor, mask: torch.Tensor) -> np.ndarray:
    """Spearman correlation between uncertainty and absolute error inside ``mask``, per slice.

    (B, 1, H, W) tensors; NaN for a slice whose masked uncertainty or error is constant.
    """
    out = []
    for u, e, m in zip(uncertainty, error, mask):
        m = m.bool()
        u_in, e_in = u[m].cpu().numpy(), e[m].abs().cpu().numpy()
        if u_in.size < 3 or np.ptp(u_in) == 0 or np.ptp(e_in) == 0:
            out.append(np.nan)
        else:
            out.append(float(spearmanr(u_in, e_in).statistic))
    return np.asarray(out)
