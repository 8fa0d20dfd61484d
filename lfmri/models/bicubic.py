"""Bicubic interpolation on the grid the degradation implies (a non-learned baseline).

After a centred k-space crop LR pixel j sits on HR pixel 2j (x2), not where image libraries
assume; interpolating on the naive grid costs 2-3 dB, so this baseline asks the degradation.
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.data.degradations import Degradation


class Bicubic(nn.Module):
    """Non-learned baseline: (B, C, h, w) LR magnitude -> (B, C, s*h, s*w)."""

    input_mode = "lr"

    def __init__(self, degradation: Degradation) -> None:
        super().__init__()
        self.degradation = degradation
        self.scale = degradation.grid_scale

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        hr_shape = (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale)
        return self.degradation.upsample(lr, hr_shape)
