"""FSRCNN(56, 12, 4) (Dong et al., ECCV 2016): fast SR from the LR image with a learned deconvolution.

5x5 feature extraction (1->56), 1x1 shrinking (56->12), four 3x3 mapping layers (12->12), 1x1
expanding (12->56), each followed by a channel-wise PReLU, then a 9x9 transposed convolution with
stride ``scale`` (padding 4, output_padding scale-1) that gives exactly scale x the input size.
12,809 parameters at x2 (12,637 weights and biases + 172 PReLU slopes). Initialisation as in the
reference reimplementation: Kaiming-normal convolutions, N(0, 0.001) deconvolution.
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.contracts import check_scale


def _conv_prelu(cin: int, cout: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, kernel, padding=kernel // 2), nn.PReLU(cout)]


class FSRCNN(nn.Module):
    input_mode = "lr"

    def __init__(self, scale: int = 2, channels: int = 1, d: int = 56, s: int = 12, m: int = 4) -> None:
        super().__init__()
        self.scale = check_scale(self, scale)
        layers = _conv_prelu(channels, d, 5) + _conv_prelu(d, s, 1)
        for _ in range(m):
            layers += _conv_prelu(s, s, 3)
        layers += _conv_prelu(s, d, 1)
        self.body = nn.Sequential(*layers)
        self.deconv = nn.ConvTranspose2d(d, channels, 9, stride=scale, padding=4, output_padding=scale - 1)
        for module in self.body:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        nn.init.normal_(self.deconv.weight, std=1e-3)
        nn.init.zeros_(self.deconv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.deconv(self.body(x))
