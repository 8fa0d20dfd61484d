"""A degradation that is not one of lfmri's, added the way a user adds one: one class + one YAML
(``tests/helpers/conf/degradation/decimate.yaml``), to check that evaluate and predict place its
grids identically (tests/e2e/test_new_degradation.py)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from lfmri.degrade.degradations import BicubicDegradation, draw_uniform
from lfmri.geometry.grid import AxisMap


class DecimateDegradation(BicubicDegradation):
    """Plain decimation: LR pixel j is HR pixel ``scale * j`` (no anti-aliasing), plus white noise.

    Its LR grid starts on the first HR pixel, not at the centre of a pixel block as the area grid
    of :class:`BicubicDegradation` does, so its ``lr_maps`` differ from every stock degradation.
    """

    def lr_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        return AxisMap(float(self.scale), 0.0), AxisMap(float(self.scale), 0.0)

    def degrade(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_divisible(hr)
        lr = hr.float()[..., :: self.scale, :: self.scale]
        sigma = draw_uniform(self.noise_std, (*lr.shape[:-2], 1, 1), generator)
        lr = lr + sigma * torch.randn(lr.shape, generator=generator)
        return lr, lr.to(torch.complex64)
