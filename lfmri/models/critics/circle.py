"""The GAN-CIRCLE critic (You et al. 2019, paper design; used for MRI SR by Lyu et al. 2018).

Four stages of two 3x3 convs (strides 1 then 2) with 64, 128, 256 and 512 filters, each conv with
a bias, instance normalisation (per sample, so it does not break the gradient penalty as batch
norm would) and LeakyReLU(0.2); then flatten, FC 1024 + LeakyReLU(0.2), FC 1, no sigmoid.
The official code's PatchGAN and its 4x4 kernels are not used (the paper describes this critic;
the kernel size is exposed). The flatten size is (P/16)^2 x 512: P must be a multiple of
16 and at least 32, so that instance norm never sees a single pixel.
"""

from __future__ import annotations

from torch import nn

from lfmri.models.critics.base import PatchCritic

FILTERS = (64, 128, 256, 512)


class CircleCritic(PatchCritic):
    def __init__(self, patch_size: int = 64, channels: int = 1, hidden: int = 1024, kernel_size: int = 3) -> None:
        if patch_size < 32 or patch_size % 16:
            raise ValueError(f"CircleCritic: patch_size={patch_size} must be a multiple of 16 and at least 32")
        if kernel_size % 2 == 0:
            raise ValueError(f"CircleCritic: kernel_size={kernel_size} must be odd (same padding)")
        layers: list[nn.Module] = []
        cin = channels
        for cout in FILTERS:
            for stride in (1, 2):
                layers += [
                    nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=(kernel_size - 1) // 2),
                    nn.InstanceNorm2d(cout, affine=True),
                    nn.LeakyReLU(0.2),
                ]
                cin = cout
        super().__init__(nn.Sequential(*layers), patch_size, channels, hidden)
