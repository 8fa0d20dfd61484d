"""High-frequency error norm (HFEN): errors after a Laplacian-of-Gaussian filter.

Ravishankar & Bresler (2011) use a 15x15 LoG with sigma 1.5; the LoG removes the low
frequencies that MSE is dominated by and keeps edges and fine texture. The HFEN *metric* is
:func:`lfmri.scoring.metrics.hfen`, on the same filter.
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
    """Mean squared difference of LoG-filtered images (an L2 loss on high frequencies)."""

    def __init__(self, sigma: float = 1.5, kernel_size: int | None = None) -> None:
        super().__init__()
        self.register_buffer("kernel", log_kernel(sigma, kernel_size), persistent=False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(log_filter(pred, self.kernel), log_filter(target, self.kernel))
