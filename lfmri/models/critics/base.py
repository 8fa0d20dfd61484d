"""What the fully connected critics share: a conv trunk whose flattened size follows the patch size."""

from __future__ import annotations

import torch
from torch import nn


class PatchCritic(nn.Module):
    """A conv ``trunk`` then ``flatten -> FC hidden -> LeakyReLU(0.2) -> FC 1`` (no sigmoid: Wasserstein).

    The flatten size is measured by running the trunk once on a ``patch_size`` x ``patch_size``
    zero image, so the critic is built for any patch size and refuses others with a clear error.
    """

    def __init__(self, trunk: nn.Sequential, patch_size: int, channels: int, hidden: int) -> None:
        super().__init__()
        self.patch_size = int(patch_size)
        self.channels = int(channels)
        self.trunk = trunk
        with torch.no_grad():
            flat = trunk.eval()(torch.zeros(1, channels, self.patch_size, self.patch_size)).numel()
        trunk.train()
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, P, P) -> (B,) critic scores."""
        if tuple(x.shape[-2:]) != (self.patch_size, self.patch_size):
            raise ValueError(
                f"{type(self).__name__} was built for {self.patch_size}x{self.patch_size} patches "
                f"(its patch_size, normally ${{data.patch_size}}) but got {tuple(x.shape[-2:])}"
            )
        return self.head(self.trunk(x)).squeeze(1)
