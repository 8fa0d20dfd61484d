"""High-frequency error norm (HFEN): errors after a Laplacian-of-Gaussian filter.

Ravishankar & Bresler (2011) use a 15x15 LoG with sigma 1.5; the LoG removes the low
frequencies that MSE is dominated by and keeps edges and fine texture. The HFEN *metric* is
:func:`lfmri.scoring.metrics.hfen`, on the same filter.

The loss is the relative form of the metric by default (as Ravishankar & Bresler define HFEN, and
DIRECT's ``HFENLoss(norm=True)``): ``||LoG(pred) - LoG(target)|| / ||LoG(target)||``, 0.2-0.5 on
a blurred slice. The unnormalised form, a mean squared error of LoG images, is 5e-5 to 1e-4 on
[0, 1] slices: at the weights people copy from papers its gradient was 0.002-0.03 % of L1's.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def log_kernel(sigma: float = 1.5, size: int | None = None) -> torch.Tensor:
    """Zero-sum Laplacian-of-Gaussian kernel (size defaults to 2 * ceil(3 sigma) + 1)."""
    size = size or 2 * math.ceil(3 * sigma) + 1
    r = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    y, x = torch.meshgrid(r, r, indexing="ij")
    rr = (x**2 + y**2) / (2 * sigma**2)
    kernel = (rr - 1) / (math.pi * sigma**4) * torch.exp(-rr)
    return (kernel - kernel.mean()).float()  # zero sum: flat regions give exactly zero


def log_filter(image: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
    """Filter (B, C, H, W) channel-wise with reflect padding (output keeps the size)."""
    channels = image.shape[1]
    pad = kernel.shape[-1] // 2
    weight = kernel.to(image)[None, None].expand(channels, 1, -1, -1)
    mode = "reflect" if min(image.shape[-2:]) > pad else "replicate"
    return F.conv2d(F.pad(image, (pad, pad, pad, pad), mode=mode), weight, groups=channels)


class HFENLoss(nn.Module):
    """The high-frequency error of ``pred`` against ``target``, relative by default.

    Args:
        sigma: the LoG's standard deviation in pixels (1.5 as Ravishankar & Bresler).
        kernel_size: the LoG's size (default ``2 * ceil(3 sigma) + 1``).
        normalized: ``||LoG(pred - target)|| / ||LoG(target)||`` over the whole batch (one ratio per
            batch, so a patch of empty background, whose LoG is zero, cannot divide by zero);
            ``false``: the mean squared difference of the LoG images (four orders of magnitude
            smaller on [0, 1] images: its weight must be about 1e4 times larger for the same effect).
    """

    EPS = 1e-8  # the denominator's floor: a batch of constant images scores its error against this

    def __init__(self, sigma: float = 1.5, kernel_size: int | None = None, normalized: bool = True) -> None:
        super().__init__()
        self.register_buffer("kernel", log_kernel(sigma, kernel_size), persistent=False)
        self.normalized = bool(normalized)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_target = log_filter(target, self.kernel)
        error = log_filter(pred, self.kernel) - log_target
        if not self.normalized:
            return error.pow(2).mean()
        return error.norm() / log_target.detach().norm().clamp_min(self.EPS)
