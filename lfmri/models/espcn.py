"""ESPCN (Shi et al., CVPR 2016): LR-space convolutions and a sub-pixel (pixel shuffle) output.

5x5 1->64 tanh, 3x3 64->32 tanh, 3x3 32->scale^2, PixelShuffle(scale); "same" padding.
21,284 parameters at x2. Initialisation as in the reference reimplementation: Kaiming-normal for
the tanh layers, N(0, 0.001) for the last.

Grid note: pixel shuffle puts LR pixel j's value block on HR pixels [s*j, s*j+s), the pixel-area
grid; on k-space data the network learns the half-pixel shift itself.
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.contracts import check_context_slices, check_scale


class ESPCN(nn.Module):
    input_mode = "lr"

    def __init__(self, scale: int = 2, channels: int = 1, features: int = 64, hidden: int = 32,
                 context_slices: int = 0) -> None:
        """``context_slices``: neighbouring slices on each side read as extra input channels (2.5D)."""
        super().__init__()
        self.scale = check_scale(self, scale)
        self.context_slices = check_context_slices(context_slices, "ESPCN")
        self.conv1 = nn.Conv2d(channels * (2 * self.context_slices + 1), features, 5, padding=2)
        self.conv2 = nn.Conv2d(features, hidden, 3, padding=1)
        self.conv3 = nn.Conv2d(hidden, channels * scale**2, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        for conv in (self.conv1, self.conv2):
            nn.init.kaiming_normal_(conv.weight)
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.conv3.weight, std=1e-3)
        nn.init.zeros_(self.conv3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.shuffle(self.conv3(torch.tanh(self.conv2(torch.tanh(self.conv1(x))))))
