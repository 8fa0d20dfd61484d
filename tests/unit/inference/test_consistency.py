"""``lfmri.inference.consistency``: data consistency keeps the measured central k-space."""

from __future__ import annotations

import torch

from lfmri.degrade.kspace import center_crop_or_pad, fft2c
from lfmri.inference import consistency


def test_data_consistency_keeps_exactly_the_measured_central_kspace(mni_slice):
    hr = mni_slice[None, None, 10:138, 20:148].float()
    lr = consistency.truncate(hr, (64, 64), 2)
    sr = torch.rand_like(hr)
    fixed = consistency.enforce(sr, lr, 2)
    expected = consistency.measured_kspace(lr, (128, 128), 2)
    assert torch.allclose(center_crop_or_pad(fft2c(fixed), (64, 64)), expected, atol=1e-5)
    # outside the centre the network's k-space is untouched
    outer = fft2c(fixed) - fft2c(sr)
    outer[..., 32:96, 32:96] = 0
    assert outer.abs().max() < 1e-4
    # the HR image itself is consistent with its own truncation; noise is not
    assert consistency.consistency_error(hr, lr, 2).max() < 1e-5
    assert consistency.consistency_error(sr, lr, 2).mean() > 0.05
