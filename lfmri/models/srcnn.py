"""SRCNN (Dong et al., ECCV 2014 / TPAMI 2016), the 9-1-5 setting with 64/32 filters.

Input: the LR image already interpolated onto the HR grid (``input_mode = "upsampled"``; lfmri
uses the degradation-aligned bicubic). Three convolutions: 9x9 1->64 ReLU, 1x1 64->32 ReLU,
5x5 32->1 linear; 8,129 parameters with biases. The original used no padding and scored the
centre crop; lfmri pads "same" so that whole slices keep their size (a documented deviation).
Initialisation: the paper's N(0, 0.001) for the reconstruction layer, Kaiming-normal for the two
ReLU layers (the paper's N(0, 0.001) there trains far slower with Adam).
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.contracts import check_context_slices, check_scale


class SRCNN(nn.Module):
    input_mode = "upsampled"

    def __init__(self, scale: int = 2, channels: int = 1, features: int = 64, mapping: int = 32,
                 context_slices: int = 0) -> None:
        """``context_slices``: neighbouring slices on each side read as extra input channels (2.5D)."""
        super().__init__()
        self.scale = check_scale(self, scale)
        self.context_slices = check_context_slices(context_slices, "SRCNN")
        self.extract = nn.Conv2d(channels * (2 * self.context_slices + 1), features, 9, padding=4)
        self.map = nn.Conv2d(features, mapping, 1)
        self.reconstruct = nn.Conv2d(mapping, channels, 5, padding=2)
        for conv in (self.extract, self.map):
            nn.init.kaiming_normal_(conv.weight, nonlinearity="relu")
            nn.init.zeros_(conv.bias)
        nn.init.normal_(self.reconstruct.weight, std=1e-3)
        nn.init.zeros_(self.reconstruct.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.reconstruct(torch.relu(self.map(torch.relu(self.extract(x)))))
