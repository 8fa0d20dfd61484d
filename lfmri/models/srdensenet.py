"""SRDenseNet as configured by de Leeuw den Bouter et al. (2022) for low-field MR.

Tong et al.'s "SRDenseNet_All": a 3x3 low-level conv (1 -> 16), 8 dense blocks of 8 convs
(16 maps each, growth 16), every block fed with the low-level features and all earlier block
outputs, a 1x1 bottleneck to 256 maps, a learned transposed-convolution upsampler and a 3x3
reconstruction conv. ReLU everywhere but the last layer, biases everywhere, no normalisation,
no global residual. With one channel at x2 this has exactly 1,910,689 parameters.

``residual=True`` (not in the paper, off by default) adds global residual learning: the network
predicts the correction to the LR upsampled bicubically on the degradation's ``grid``, and the
reconstruction conv starts at zero so that an untrained network is the aligned bicubic baseline.
On real brains this is what lets a CPU-sized training budget beat zero-filling (docs/training.md, ablation).

Upsamplers per scale (the trunk never changes; de Leeuw den Bouter et al. describe x2 only):
  x2: one 3x3 transposed conv, stride 2, padding 1, output_padding 1;
  x3: one 3x3 transposed conv, stride 3, padding 0 (same parameter count as x2);
  x4: two stacked x2 deconvs, each followed by ReLU, as Tong et al. did (2,500,769 parameters).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lfmri.geometry.grid import GRIDS, upsample_lr
from lfmri.contracts import check_scale, centre_slice, check_context_slices


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
        context_slices: neighbouring slices on each side read with every slice (2.5D): the input
            has ``(2 * context_slices + 1) * in_channels`` channels, the output is the centre
            slice's ``in_channels`` (and the residual upsamples the centre slice).
    """

    input_mode = "lr"
    supported_scales = (2, 3, 4)
    # False: inference takes the plain torch.cat / nn.Conv2d path too (benchmarks compare against it)
    fast_inference = True

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
        context_slices: int = 0,
    ) -> None:
        super().__init__()
        self.scale = check_scale(self, scale)
        self.context_slices = check_context_slices(context_slices, "SRDenseNet")
        self.image_channels = in_channels
        if grid not in GRIDS:
            raise ValueError(f"model.grid={grid!r}; expected one of {GRIDS}")
        self.residual = bool(residual)
        self.grid = grid
        block_out = growth * layers_per_block
        self.low_level = nn.Conv2d(in_channels * (2 * self.context_slices + 1), low_level_channels, 3, padding=1)
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
        # Inference takes the measured-faster paths (benchmarks/bench.py --section foundation); same
        # parameters, same outputs within float rounding. Training keeps the plain autograd graph.
        # Exporters and torch.compile get the plain graph (slice writes would become scatters there).
        inference = self.fast_inference and not (torch.is_grad_enabled() or torch.compiler.is_compiling() or torch.jit.is_tracing()
                         or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export())
        # the layout the weights were put in (a 1-channel input is both NCHW- and NHWC-contiguous)
        if inference and not x.is_complex() and not _channels_last(self.upsample[0].weight):
            features = self._dense_buffered(x)
        else:
            features = [torch.relu(self.low_level(x))]
            for block in self.blocks:
                features.append(block(torch.cat(features, dim=1)))
            features = torch.cat(features, dim=1)
        y = self.upsample(torch.relu(self.bottleneck(features)))
        if inference and _channels_last(y) and self.reconstruction.kernel_size == (3, 3):
            out = conv_by_taps(y, self.reconstruction.weight, self.reconstruction.bias)
        else:
            out = self.reconstruction(y)
        if self.residual:
            centre = centre_slice(x, self.context_slices, self.image_channels)
            out = out + upsample_lr(centre, self.scale, self.grid).to(out.dtype)
        return out

    def _dense_buffered(self, x: torch.Tensor) -> torch.Tensor:
        """The 1040 trunk maps written into one preallocated NCHW buffer, no per-layer ``torch.cat``.

        Every input a dense layer reads is a contiguous run of channels (the low-level maps and the
        earlier blocks for a block's first layer, the block's earlier layers for the others), so
        in NCHW it is a view, and each layer writes its 16 maps into its own slice. The eager path
        copies all earlier maps at every layer (73 concatenations per forward). Measured 1.1x
        faster in NCHW; in channels_last a channel slice is strided, oneDNN copies it, and the
        concatenations are faster, so channels_last keeps them.
        """
        b, _, h, w = x.shape
        buffer = x.new_empty(b, self.bottleneck.in_channels, h, w)
        start = self.low_level.out_channels
        buffer[:, :start] = torch.relu(self.low_level(x))
        for block in self.blocks:
            first = start
            for j, conv in enumerate(block.convs):
                inp = buffer[:, :first] if j == 0 else buffer[:, first:start]
                buffer[:, start : start + conv.out_channels] = torch.relu(conv(inp))
                start += conv.out_channels
        return buffer


def _channels_last(x: torch.Tensor) -> bool:
    return x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()


def conv_by_taps(y: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """A same-padded odd k x k convolution to few channels as one GEMM plus k^2 shifted sums.

    oneDNN's NHWC convolution with a single output channel runs at ~0.1 of its GEMM rate (no
    blocking over output channels). Here (B*H*W, C) @ (C, O*k*k) is one matrix product, and the
    k*k shifted (B, H, W, O) slices of its result are added: measured 1.35x faster for SRDenseNet's
    256 -> 1 reconstruction in float32 at one thread. ``y`` is NHWC (channels_last); returns NCHW
    values in channels_last layout.
    """
    b, c, h, w = y.shape
    o, _, k, _ = weight.shape
    p = k // 2
    taps = y.permute(0, 2, 3, 1).reshape(-1, c) @ weight.permute(1, 0, 2, 3).reshape(c, o * k * k).to(y.dtype)
    taps = F.pad(taps.reshape(b, h, w, o, k, k), (0, 0, 0, 0, 0, 0, p, p, p, p))
    out = taps.new_zeros(b, h, w, o) if bias is None else bias.to(taps.dtype).expand(b, h, w, o).clone()
    for i in range(k):
        for j in range(k):
            out += taps[:, i : i + h, j : j + w, :, i, j]
    return out.permute(0, 3, 1, 2)
