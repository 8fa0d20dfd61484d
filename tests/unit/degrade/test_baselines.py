"""``lfmri.degrade.baselines``: zero-filling and bicubic give HR-sized outputs without parameters."""

from __future__ import annotations

import pytest
import torch

from lfmri.degrade.baselines import Bicubic, ZeroFill
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation, KSpaceZeroFillDegradation
from lfmri.inference.network import predict


@pytest.mark.parametrize("deg", [KSpaceDegradation(), BicubicDegradation(), KSpaceZeroFillDegradation()])
def test_baselines_produce_hr_sized_outputs(deg):
    hr = torch.rand(2, 1, 32, 48)
    lr, lr_complex = deg.degrade(hr, torch.Generator().manual_seed(0))
    for net, x in [(ZeroFill(deg), lr_complex), (Bicubic(deg), lr)]:
        assert predict(net, x).shape == hr.shape
        assert not list(net.parameters())
