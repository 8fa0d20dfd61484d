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

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import torch
from scipy.stats import spearmanr
from torch import nn

from lfmri.geometry.grid import flip_shift

Transform = tuple[int, bool]  # (quarter turns, flip left-right)
IDENTITY: tuple[Transform, ...] = ((0, False),)
DIHEDRAL: tuple[Transform, ...] = tuple((k, flip) for flip in (False, True) for k in range(4))


def apply(x: torch.Tensor, t: Transform) -> torch.Tensor:
    turns, flip = t
    x = x.flip(-1) if flip else x
    return torch.rot90(x, turns, dims=(-2, -1))


def invert(x: torch.Tensor, t: Transform, shifts: tuple[int, int] = (0, 0)) -> torch.Tensor:
    """Undo :func:`apply` on a network output; ``shifts`` (rows, columns) from :func:`mirror_shifts`.

    :func:`apply` mirrors the input about its middle pixel. On a centred k-space grid that is not
    the output's middle (LR pixel ``j`` sits on HR pixel ``2j``, and a flip maps it to
    ``N - 1 - 2j``, one pixel off ``N - 2 - 2j``), so each output flip is rolled by its axis's shift.
    A quarter turn is a transpose followed by a flip of the rows; this undoes them step by step.
    """
    turns, flip = t
    # which original axis (0: rows, 1: columns) the current rows and columns hold
    axes = [0, 1] if turns % 2 == 0 else [1, 0]
    for _ in range(turns):  # undo (transpose, then flip rows): flip rows, then transpose
        x = _mirror(x, -2, shifts[axes[0]])
        x = x.transpose(-2, -1)
        axes.reverse()
    return _mirror(x, -1, shifts[1]) if flip else x


def _mirror(x: torch.Tensor, dim: int, shift: int) -> torch.Tensor:
    x = x.flip(dim)
    return torch.roll(x, shift, dims=dim) if shift else x


def mirror_shifts(degradation, input_shape: Sequence[int], output_shape: Sequence[int]) -> tuple[int, int]:
    """Per output axis, the roll :func:`invert` needs for a network that maps inputs of
    ``input_shape`` to outputs of ``output_shape`` (last two sizes) for ``degradation``
    (see :func:`lfmri.geometry.grid.flip_shift`).

    A network reading the LR grid maps it to the HR grid by the degradation's ``lr_maps``; one
    whose input already lies on the output grid (``upsampled``, zero-filled k-space) keeps pixels
    where they are.
    """
    lr_shape = tuple(int(n) for n in input_shape[-2:])
    hr_shape = tuple(int(n) for n in output_shape[-2:])
    if lr_shape == hr_shape:
        return 0, 0
    maps = degradation.lr_maps(hr_shape)
    return tuple(flip_shift(m, n_in, n_out) for m, n_in, n_out in zip(maps, lr_shape, hr_shape))  # type: ignore[return-value]


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
    shifts: tuple[int, int] = (0, 0),
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and std of ``run`` over ``transforms`` x ``repeats`` predictions of (B, C, h, w);
    ``shifts`` put each transformed output back on the grid (:func:`mirror_shifts`).

    Running sums keep memory at two output-sized tensors whatever the number of samples.
    """
    total = total_sq = None
    n = 0
    for t in transforms:
        for _ in range(repeats):
            y = invert(run(apply(x, t)), t, shifts).double()
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
