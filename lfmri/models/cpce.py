"""The GAN-CPCE generator: CPCE-2D (Shan et al. 2018), as used for MRI SR by Lyu et al. (2018).

A conveying-path encoder-decoder that keeps the image size, so it reads the LR image already on
the HR grid (``input_mode = "upsampled"``; with ``degradation=kspace_zerofill`` that is Lyu's
zero-filled LR). As in the official ``CPCE_2D``: 32 filters, 3x3 kernels, stride 1, "valid"
padding, no biases, Glorot-uniform initialisation, ReLU, no normalisation.

- encoder: four valid convs (1->32, then 32->32), each shrinking the image by 2 pixels;
- decoder: three valid transposed convs (32->32, +2 pixels each), each output concatenated with
  the encoder's pre-activation features of the same size (the conveying paths), ReLU, and a 1x1
  conv 64->32 with ReLU; a last valid transposed conv 32->1 and a final ReLU.

62,016 parameters. The output has the input's size with no border padding. ``shortcut=True`` gives
``CPCE_2D_shortcut`` (ReLU(deconv + input)). The critic comes with the adversarial module.
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.contracts import check_scale


class CPCE(nn.Module):
    input_mode = "upsampled"

    def __init__(self, scale: int = 2, channels: int = 1, features: int = 32, shortcut: bool = False) -> None:
        super().__init__()
        self.scale = check_scale(self, scale)
        self.shortcut = shortcut
        f = features
        self.encoder = nn.ModuleList(nn.Conv2d(channels if i == 0 else f, f, 3, bias=False) for i in range(4))
        self.decoder = nn.ModuleList(nn.ConvTranspose2d(f, f, 3, bias=False) for _ in range(3))
        self.fuse = nn.ModuleList(nn.Conv2d(2 * f, f, 1, bias=False) for _ in range(3))
        self.output = nn.ConvTranspose2d(f, channels, 3, bias=False)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.xavier_uniform_(module.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) < 9:
            raise ValueError(f"CPCE needs images of at least 9x9 pixels (four valid 3x3 convs), got {tuple(x.shape[-2:])}")
        skips, h = [], x
        for conv in self.encoder:
            pre = conv(h)
            skips.append(pre)
            h = torch.relu(pre)
        for deconv, fuse, skip in zip(self.decoder, self.fuse, reversed(skips[:3])):
            h = torch.relu(torch.cat([skip, deconv(h)], dim=1))
            h = torch.relu(fuse(h))
        out = self.output(h)
        return torch.relu(out + x if self.shortcut else out)
