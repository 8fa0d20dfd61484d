"""Structural dissimilarity loss ``1 - SSIM`` (torchmetrics' Gaussian 11x11, sigma 1.5).

The low-field project names SSIM as its remedy for the over-smoothing that pixel losses cause.
"""

from __future__ import annotations

import torch
from torch import nn
from torchmetrics.functional.image import structural_similarity_index_measure


class SSIMLoss(nn.Module):
    def __init__(self, data_range: float = 1.0, kernel_size: int = 11, sigma: float = 1.5) -> None:
        super().__init__()
        self.data_range = data_range
        self.kernel_size = kernel_size
        self.sigma = sigma

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        ssim = structural_similarity_index_measure(
            pred.float(),
            target.float(),
            data_range=self.data_range,
            kernel_size=self.kernel_size,
            sigma=self.sigma,
        )
        return 1.0 - ssim
