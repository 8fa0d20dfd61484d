"""MRLN: the multi-resolution learning residual network for MR super-resolution (x2, x3, x4).

The paper's text was not available to us; the design follows its published description, and
every inferred choice is a constructor argument:

1. Coarse features F0 = ReLU(conv3x3(1 -> 128)(x)).
2. N = 9 residual units of two 3x3 128-channel convs (conv, ReLU, conv); the coarse features are
   added to every unit's output. ``unit="drrn"`` (default): H_k = R_k(H_{k-1}) + F0 (DRRN-style
   shared identity); ``"residual"``: H_k = H_{k-1} + R_k(H_{k-1}) + F0; ``"preact"``: like drrn with
   ReLU before each conv.
3. Every unit's output is upsampled by ONE shared transposed convolution 128 -> 1 (kernel 2n-1,
   padding n-1, the support of the linear-interpolation tent; ``shared_upsampler=False`` gives
   one per unit) and fused with the upsampled LR image: Y_k = Deconv(H_k) + U(x). U is bicubic on
   the grid of the degradation (``grid``, from ``${degradation.grid}``). The deconvolution places LR
   pixel i on HR pixel n*i; output_padding n-1 extends the paper's (m-1)n+1 samples to n*m so whole
   slices keep lfmri's size convention (the last n-1 rows/columns are extrapolated by the kernel).
4. The output is a learned weighted sum Y = sum_k w_k Y_k, w_k initialised to 1/N (unconstrained;
   ``softmax_weights=True`` normalises them).

Training returns :class:`SROutput` with the branch images as auxiliary images, so the supervised
module's loss is sum_k l(Y_k) + l(Y), the paper's. Convolutions are Kaiming-normal, except that the
second conv of every unit is scaled by ``residual_init_scale`` (0.1): with plain Kaiming the unit
outputs grow to ~20x the coarse features by H_9, and the paper's SGD lr 0.1 then throws the output
far off in the first steps (measured on MNI152 x2 patches, batch 32, norm clip 0.4: MSE 200e-3 in
the first 10 steps and still 2.7e-3 after 100, bicubic 0.89e-3). Scaled, H_k stays at the scale of
F0 and the same recipe descends steadily, below bicubic after ~200 steps (0.62e-3 at 400). The
deconvolution starts near zero (N(0, 1e-4)), so every branch starts at the bicubic image.

Parameters with the shared deconvolution: x2 2,658,954; x3 2,661,002; x4 2,664,074.
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.geometry.grid import GRIDS, upsample_lr
from lfmri.contracts import SROutput, check_scale

UNITS = ("drrn", "residual", "preact")


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, preact: bool) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.preact = preact

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.preact:
            return self.conv2(torch.relu(self.conv1(torch.relu(x))))
        return self.conv2(torch.relu(self.conv1(x)))


class MRLN(nn.Module):
    input_mode = "lr"
    supported_scales = (2, 3, 4)

    def __init__(
        self,
        scale: int = 2,
        channels: int = 1,
        features: int = 128,
        units: int = 9,
        unit: str = "drrn",
        shared_upsampler: bool = True,
        softmax_weights: bool = False,
        grid: str = "area",
        residual_init_scale: float = 0.1,
    ) -> None:
        super().__init__()
        self.scale = check_scale(self, scale)
        if unit not in UNITS:
            raise ValueError(f"model.unit={unit!r}; expected one of {UNITS}")
        if grid not in GRIDS:
            raise ValueError(f"model.grid={grid!r}; expected one of {GRIDS}")
        self.unit, self.grid, self.softmax_weights = unit, grid, softmax_weights
        self.coarse = nn.Conv2d(channels, features, 3, padding=1)
        self.units = nn.ModuleList(ResidualUnit(features, unit == "preact") for _ in range(units))

        def deconv() -> nn.ConvTranspose2d:
            layer = nn.ConvTranspose2d(features, channels, 2 * scale - 1, stride=scale, padding=scale - 1, output_padding=scale - 1)
            nn.init.normal_(layer.weight, std=1e-4)
            nn.init.zeros_(layer.bias)
            return layer

        shared = deconv() if shared_upsampler else None
        self.upsamplers = nn.ModuleList([shared] if shared else [deconv() for _ in range(units)])
        self.weights = nn.Parameter(torch.full((units,), 1.0 / units))
        for module in [self.coarse, *self.units.modules()]:
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
                nn.init.zeros_(module.bias)
        for residual in self.units:
            residual.conv2.weight.data.mul_(residual_init_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor | SROutput:
        coarse = torch.relu(self.coarse(x))
        upsampled = upsample_lr(x, self.scale, self.grid)
        h, branches = coarse, []
        for k, unit in enumerate(self.units):
            h = unit(h) + coarse + (h if self.unit == "residual" else 0)
            up = self.upsamplers[0] if len(self.upsamplers) == 1 else self.upsamplers[k]
            branches.append(up(h) + upsampled)
        weights = torch.softmax(self.weights, 0) if self.softmax_weights else self.weights
        image = torch.einsum("k,kbchw->bchw", weights, torch.stack(branches))
        return SROutput(image, tuple(branches)) if self.training else image
