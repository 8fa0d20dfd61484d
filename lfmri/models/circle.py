"""The GAN-CIRCLE generator (You et al., IEEE TMI 2019; used for MRI SR by Lyu et al. 2018).

Paper design (You et al. 2019, section II; DCSCN lineage):

- feature extraction: 12 blocks of 3x3 conv (with bias) -> LeakyReLU(0.1) -> dropout, with the
  paper's decaying filter counts 64, 54, 48, 43, 39, 35, 31, 28, 25, 22, 18, 16 (the DCSCN rule
  f_i = int((64-16)(1-(i/11)^(1/1.5)) + 16)); the outputs of all 12 blocks are concatenated
  (423 channels);
- reconstruction, two parallel network-in-network branches: A = 1x1 conv to 64 + LReLU, B = 1x1
  conv to 32 + LReLU -> 3x3 conv to 32; their outputs concatenated (96 channels);
- upsampling tail (as in the official code): 3x3 conv 96->96, 4x4 stride-2 transposed conv
  96->48 + LReLU, 3x3 conv 48->1 without bias;
- global residual: the bicubic-upsampled LR (on the degradation's ``grid``).

Two forms (``mode``):
- ``"upsample"`` (default): reads the LR image and returns it x2 larger (343,568 parameters);
- ``"same_size"``: reads an image already on the HR grid, halves it with a stride-2 first conv and
  brings it back with the tail, adding the input as the residual, as the official code does for
  its same-size data (same 343,568 parameters). This is the form for k-space zero-filled inputs.

Dropout defaults to 0 (the official code's dropout is inactive); set ``dropout`` to use it.
Initialisation: Kaiming-normal for the LeakyReLU layers (the code's He variance scaling).
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.geometry.grid import GRIDS, upsample_lr
from lfmri.contracts import check_scale

MODES = ("upsample", "same_size")


def decaying_widths(first: int = 64, last: int = 16, layers: int = 12, gamma: float = 1.5) -> list[int]:
    """DCSCN filter counts: from ``first`` down to ``last`` over ``layers`` layers."""
    return [
        first if i == 0 else int((first - last) * (1 - (i / (layers - 1)) ** (1 / gamma)) + last)
        for i in range(layers)
    ]


class CircleGenerator(nn.Module):
    def __init__(
        self,
        scale: int = 2,
        mode: str = "upsample",
        channels: int = 1,
        widths: list[int] | None = None,
        branch_a: int = 64,
        branch_b: int = 32,
        branch_b2: int = 32,
        dropout: float = 0.0,
        grid: str = "area",
    ) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"model.mode={mode!r}; expected one of {MODES}")
        if grid not in GRIDS:
            raise ValueError(f"model.grid={grid!r}; expected one of {GRIDS}")
        self.mode, self.grid = mode, grid
        self.input_mode = "lr" if mode == "upsample" else "upsampled"
        self.supported_scales = (2,) if mode == "upsample" else None
        self.scale = check_scale(self, scale)
        self.size_multiple = 2 if mode == "same_size" else 1
        widths = list(widths) if widths is not None else decaying_widths()
        act = lambda: nn.LeakyReLU(0.1)  # noqa: E731
        first_stride = 2 if mode == "same_size" else 1
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.Conv2d(cin, cout, 3, stride=first_stride if i == 0 else 1, padding=1), act(), nn.Dropout(dropout)
            )
            for i, (cin, cout) in enumerate(zip([channels] + widths[:-1], widths))
        )
        total = sum(widths)
        self.branch_a = nn.Sequential(nn.Conv2d(total, branch_a, 1), act(), nn.Dropout(dropout))
        self.branch_b = nn.Sequential(
            nn.Conv2d(total, branch_b, 1), act(), nn.Dropout(dropout), nn.Conv2d(branch_b, branch_b2, 3, padding=1)
        )
        r = branch_a + branch_b2
        self.tail = nn.Sequential(
            nn.Conv2d(r, r, 3, padding=1),
            nn.ConvTranspose2d(r, r // 2, 4, stride=2, padding=1),
            act(),
            nn.Conv2d(r // 2, channels, 3, padding=1, bias=False),
        )
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, h = [], x
        for block in self.blocks:
            h = block(h)
            features.append(h)
        h = torch.cat(features, dim=1)
        out = self.tail(torch.cat([self.branch_a(h), self.branch_b(h)], dim=1))
        residual = upsample_lr(x, 2, self.grid) if self.mode == "upsample" else x
        return out + residual
