"""SRDenseNet as configured by de Leeuw den Bouter et al. (2022) for low-field MR.

Tong et al.'s "SRDenseNet_All": a 3x3 low-level conv (1 -> 16), 8 dense blocks of 8 convs
(16 maps each, growth 16), every block fed with the low-level features and all earlier block
outputs, a 1x1 bottleneck to 256 maps, a learned transposed-convolution upsampler and a 3x3
reconstruction conv. ReLU everywhere but the last layer, biases everywhere, no normalisation,
no global residual. With one channel at x2 this has exactly 1,910,689 parameters.

``residual=True`` (not in the paper, off by default) adds global residual learning: the network
predicts the correction to the LR upsampled bicubically on the degradation's ``grid``, and the
reconstruction conv starts at zero so that an untrained network is the aligned bicubic baseline.
On real brains this is what lets a CPU-sized training budget beat zero-filling (README, ablation).

Upsamplers per scale (the trunk never changes, see ``../shared/specs/srdensenet.md`` section 3):
  x2: one 3x3 transposed conv, stride 2, padding 1, output_padding 1;
  x3: one 3x3 transposed conv, stride 3, padding 0 (same parameter count as x2);
  x4: two stacked x2 deconvs, each followed by ReLU, as Tong et al. did (2,500,769 parameters).
"""

from __future__ import annotations

import torch
from torch import nn

from lfmri.data.grid import GRIDS, upsample_lr
from lfmri.models.base import check_scale


class DenseBlock(nn.Module):
    """Eight 3x3 conv + ReLU layers; layer j reads the concatenated outputs of layers 0..j-1.

    Only layer 0 reads the block input, and the block output is the concatenation of the layer
    outputs (not the input), as in both public reimplementations and the parameter count.
    """

    def __init__(self, in_channels: int, growth: int = 16, layers: int = 8) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(in_channels if j == 0 else growth * j, growth, 3, padding=1)
            for j in range(layers)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: list[torch.Tensor] = []
        for j, conv in enumerate(self.convs):
            inp = x if j == 0 else torch.cat(outputs, dim=1)
            outputs.append(torch.relu(conv(inp)))
        return torch.cat(outputs, dim=1)


def _upsampler(scale: int, channels: int) -> nn.Sequential:
    if scale == 2:
        return nn.Sequential(
            nn.ConvTranspose2d(channels, channels, 3, stride=2, padding=1, output_padding=1),
            nn.ReLU(inplace=True),
        )
    if scale == 3:
        return nn.Sequential(nn.ConvTranspose2d(channels, channels, 3, stride=3), nn.ReLU(inplace=True))
    # x4: Tong et al.'s two successive stride-2 deconvolutions
    return nn.Sequential(*_upsampler(2, channels), *_upsampler(2, channels))


class SRDenseNet(nn.Module):
    """SRDenseNet_All. Input ``(B, C, h, w)`` on the LR grid, output ``(B, C, scale*h, scale*w)``.

    Args:
        scale: up-sampling factor (2, 3 or 4).
        in_channels: image channels (1 for magnitude MR).
        low_level_channels: maps of the first 3x3 conv.
        growth: maps each dense layer adds.
        layers_per_block: dense layers per block.
        blocks: dense blocks.
        bottleneck_channels: maps after the 1x1 bottleneck (and through the upsampler).
        residual: add the ``grid``-aligned bicubic upsampling of the input to the output.
        grid: where LR pixels sit on the HR grid (``kspace`` or ``area``, the degradation's).
    """

    input_mode = "lr"
    supported_scales = (2, 3, 4)

    def __init__(
        self,
        scale: int = 2,
        in_channels: int = 1,
        low_level_channels: int = 16,
        growth: int = 16,
        layers_per_block: int = 8,
        blocks: int = 8,
        bottleneck_channels: int = 256,
        residual: bool = False,
        grid: str = "kspace",
    ) -> None:
        super().__init__()
        self.scale = check_scale(self, scale)
        if grid not in GRIDS:
            raise ValueError(f"model.grid={grid!r}; expected one of {GRIDS}")
        self.residual = bool(residual)
        self.grid = grid
        block_out = growth * layers_per_block
        self.low_level = nn.Conv2d(in_channels, low_level_channels, 3, padding=1)
        self.blocks = nn.ModuleList(
            DenseBlock(low_level_channels + block_out * b, growth, layers_per_block) for b in range(blocks)
        )
        self.bottleneck = nn.Conv2d(low_level_channels + block_out * blocks, bottleneck_channels, 1)
        self.upsample = _upsampler(scale, bottleneck_channels)
        self.reconstruction = nn.Conv2d(bottleneck_channels, in_channels, 3, padding=1)
        self._init_weights()

    def _init_weights(self) -> None:
        # The paper does not state the initialisation. Kaiming-normal with fan_in keeps activation
        # variance through the dense trunk (output std ~0.1 at init). fan_out, the usual choice for
        # plain conv stacks, explodes here (output ~1e7): dense layers read up to 1040 channels
        # but write 16, so fan_in is up to 65x larger than fan_out.
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
                nn.init.kaiming_normal_(module.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(module.bias)
        if self.residual:
            # start as the aligned bicubic baseline: the trunk learns only the correction
            nn.init.zeros_(self.reconstruction.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [torch.relu(self.low_level(x))]
        for block in self.blocks:
            features.append(block(torch.cat(features, dim=1)))
        y = torch.relu(self.bottleneck(torch.cat(features, dim=1)))
        out = self.reconstruction(self.upsample(y))
        if self.residual:
            out = out + upsample_lr(x, self.scale, self.grid).to(out.dtype)
        return out
