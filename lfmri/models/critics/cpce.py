"""The GAN-CPCE critic (Shan et al. 2018, official ``discriminator_model``; used by Lyu et al. 2018).

Six 3x3 convs with "same" padding, biases and Glorot-uniform initialisation, 64, 64, 128, 128,
256, 256 filters with strides 1, 2, 1, 2, 1, 2, each followed by LeakyReLU(0.2), no
normalisation; then flatten, FC 1024 + LeakyReLU(0.2), FC 1 (a Wasserstein critic: no sigmoid).
The flatten size is (P/8)^2 x 256 for P x P patches: 17,923,521 parameters at 64 x 64.
"""

from __future__ import annotations

from torch import nn

from lfmri.models.critics.base import PatchCritic

FILTERS = (64, 64, 128, 128, 256, 256)
STRIDES = (1, 2, 1, 2, 1, 2)


class CPCECritic(PatchCritic):
    def __init__(self, patch_size: int = 64, channels: int = 1, hidden: int = 1024) -> None:
        if patch_size < 8:
            raise ValueError(f"CPCECritic: patch_size={patch_size} is too small (three stride-2 convs need >= 8)")
        layers: list[nn.Module] = []
        for cin, cout, stride in zip((channels,) + FILTERS[:-1], FILTERS, STRIDES):
            layers += [nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
        super().__init__(nn.Sequential(*layers), patch_size, channels, hidden)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
