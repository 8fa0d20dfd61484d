"""Total variation and GAN-CIRCLE's joint sparsifying transform (JST) term."""

from __future__ import annotations

import torch
from torch import nn


def total_variation(image: torch.Tensor) -> torch.Tensor:
    """Anisotropic TV, ``mean|d/dy| + mean|d/dx|`` over (B, C, H, W): independent of the patch size.

    (The official GAN-CIRCLE code sums instead and divides by 20; weights are not interchangeable.)
    """
    return (image[..., 1:, :] - image[..., :-1, :]).abs().mean() + (image[..., :, 1:] - image[..., :, :-1]).abs().mean()


class JointSparsifyingTransform(nn.Module):
    """``tau * TV(pred) + (1 - tau) * TV(target - pred)`` (You et al. 2019).

    Sparse gradients of the image keep it piecewise smooth; sparse gradients of the residual keep
    the edges of the target. ``tau = 0.1`` is the official code's split.
    """

    def __init__(self, tau: float = 0.1) -> None:
        super().__init__()
        if not 0.0 <= tau <= 1.0:
            raise ValueError(f"tau must be in [0, 1], got {tau}")
        self.tau = float(tau)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return self.tau * total_variation(pred) + (1 - self.tau) * total_variation(target - pred)
