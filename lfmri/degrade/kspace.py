"""Centred, orthonormal 2D Fourier transforms and k-space cropping/padding.

Conventions (shared by every k-space degradation, baseline and data-consistency step):
- ``fft2c`` = fftshift . fft2 . ifftshift over the last two axes, ``norm="ortho"``; the k-space
  origin of an axis of length N sits at index N // 2, the image origin at pixel N // 2.
- Cropping keeps indices ``[N//2 - M//2, N//2 - M//2 + M)``; padding is its exact inverse. Both
  keep the origin at index ``size // 2``, so LR pixel j of a centred crop sits on HR pixel
  ``N//2 + (N/M) * (j - M//2)`` (``grid.kspace_axis_map``).
- All FFT work runs in float32/complex64, outside autocast: half precision FFTs only support
  power-of-two sizes on CUDA and lose accuracy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch


def fft2c(image: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two dimensions (returns complex64)."""
    image = image.to(torch.complex64)
    with torch.autocast(device_type=image.device.type, enabled=False):
        shifted = torch.fft.ifftshift(image, dim=(-2, -1))
        return torch.fft.fftshift(torch.fft.fft2(shifted, norm="ortho"), dim=(-2, -1))


def ifft2c(kspace: torch.Tensor) -> torch.Tensor:
    """Inverse of :func:`fft2c` (returns complex64)."""
    kspace = kspace.to(torch.complex64)
    with torch.autocast(device_type=kspace.device.type, enabled=False):
        shifted = torch.fft.ifftshift(kspace, dim=(-2, -1))
        return torch.fft.fftshift(torch.fft.ifft2(shifted, norm="ortho"), dim=(-2, -1))


def _centred_slices(n: int, m: int) -> slice:
    start = n // 2 - m // 2
    return slice(start, start + m)


def center_crop_or_pad(kspace: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Centred crop or zero-pad of the last two dimensions to ``size`` (per axis independently).

    Works for k-space and images alike; the element at index ``n // 2`` stays at ``size // 2``.
    """
    out_h, out_w = int(size[0]), int(size[1])
    in_h, in_w = kspace.shape[-2:]
    # crop the axes that shrink
    kspace = kspace[..., _centred_slices(in_h, min(in_h, out_h)), _centred_slices(in_w, min(in_w, out_w))]
    if out_h <= in_h and out_w <= in_w:
        return kspace
    padded = kspace.new_zeros((*kspace.shape[:-2], out_h, out_w))
    cur_h, cur_w = kspace.shape[-2:]
    padded[..., _centred_slices(out_h, cur_h), _centred_slices(out_w, cur_w)] = kspace
    return padded


def intensity_factor(in_size: Sequence[int], out_size: Sequence[int]) -> float:
    """Factor that keeps image intensities when resizing by k-space crop/pad with ortho FFTs.

    An orthonormal DFT of a constant c on N points has a DC of c*sqrt(N); inverting on M points
    gives c*sqrt(N/M). Multiplying by sqrt(M/N) per axis keeps the mean intensity.
    """
    return math.sqrt((out_size[0] * out_size[1]) / (in_size[0] * in_size[1]))


def resize_complex(image: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Resize an image (real or complex) by centred k-space crop/zero-pad; intensities kept."""
    factor = intensity_factor(image.shape[-2:], size)
    return ifft2c(center_crop_or_pad(fft2c(image), size)) * factor
