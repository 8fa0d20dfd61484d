"""Data consistency for k-space-trained networks: keep what the scanner measured.

A low-field acquisition measures the central ``1/scale`` of the high-field k-space (the premise of
the ``kspace`` degradation). Whatever the network predicts there is replaced by the measurement;
only the high frequencies it adds survive. The consistency error |D(SR) - LR|, with D the
noise-free k-space truncation of the degradation, shows where the network's output disagrees with
the data it was given: large values flag structure that the measurement does not support.

The measurement here is the LR magnitude image of a NIfTI file (its phase is not stored), so its
k-space is that of the magnitude: exact for the simulated pairs, an approximation for real scans.
"""

from __future__ import annotations

import torch

from lfmri.degrade.kspace import center_crop_or_pad, fft2c, ifft2c, intensity_factor


def measured_block(shape: tuple[int, int], scale: int) -> tuple[int, int]:
    return shape[0] // scale, shape[1] // scale


def measured_kspace(measured: torch.Tensor, hr_shape: tuple[int, int], scale: int) -> torch.Tensor:
    """Central k-space block of the HR grid that ``measured`` (on the LR grid, or zero-filled on the
    HR grid) holds, in the HR image's k-space units."""
    block = measured_block(hr_shape, scale)
    factor = intensity_factor(hr_shape, measured.shape[-2:])
    return center_crop_or_pad(fft2c(measured), block) / factor


def enforce(sr: torch.Tensor, measured: torch.Tensor, scale: int) -> torch.Tensor:
    """Complex image whose central k-space is exactly ``measured``'s and the rest ``sr``'s."""
    hr_shape = tuple(sr.shape[-2:])
    kspace = fft2c(sr)
    block = measured_block(hr_shape, scale)
    start = [n // 2 - m // 2 for n, m in zip(hr_shape, block)]
    rows, cols = slice(start[0], start[0] + block[0]), slice(start[1], start[1] + block[1])
    kspace[..., rows, cols] = measured_kspace(measured, hr_shape, scale)
    return ifft2c(kspace)


def truncate(sr: torch.Tensor, measured_shape: tuple[int, int], scale: int) -> torch.Tensor:
    """The noise-free degradation of ``sr`` onto the measurement's grid (magnitude)."""
    hr_shape = tuple(sr.shape[-2:])
    kspace = center_crop_or_pad(fft2c(sr), measured_block(hr_shape, scale))
    return (ifft2c(center_crop_or_pad(kspace, measured_shape)) * intensity_factor(hr_shape, measured_shape)).abs()


def consistency_error(sr: torch.Tensor, measured: torch.Tensor, scale: int) -> torch.Tensor:
    """|D(SR) - LR| on the measurement's grid."""
    return (truncate(sr, tuple(measured.shape[-2:]), scale) - measured.abs()).abs()
