"""``lfmri.degrade.kspace``: the centred FFT pair and k-space crop/pad."""

from __future__ import annotations

import torch

from lfmri.degrade.kspace import center_crop_or_pad, fft2c, ifft2c


def test_fft_pair_is_orthonormal_and_inverse():
    x = torch.rand(3, 17, 20)
    k = fft2c(x)
    assert torch.allclose(ifft2c(k).real, x, atol=1e-5)
    assert torch.allclose((k.abs() ** 2).sum(), (x**2).sum(), rtol=1e-4)


def test_crop_and_pad_are_inverse_and_keep_the_origin():
    k = torch.zeros(9, 10, dtype=torch.complex64)
    k[9 // 2, 10 // 2] = 1
    small = center_crop_or_pad(k, (5, 4))
    assert small[5 // 2, 4 // 2] == 1
    assert torch.equal(center_crop_or_pad(small, (9, 10)), k)
