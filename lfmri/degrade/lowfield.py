"""The low-field (64 mT) simulation: high-field volume -> synthetic low-field volume.

Steps (after the 64 mT simulations of Laguna et al. 2022 and Lau et al. 2023), parameters drawn per subject from the configured
ranges by a seeded generator:

1. Gaussian blur with standard deviation ``blur_sigma`` low-field voxels on every axis (the
   acquisition PSF, applied on the fine grid before sampling so that it also anti-aliases);
2. cubic resampling onto the low-field grid (``lf_shape`` voxels of ``lf_spacing`` mm, same
   centre and axis directions as the input);
3. gamma darkening ``x ** gamma`` on [0, 1] (lower grey/white contrast at low field);
4. background-weighted noise: ``x + sigma * w * n`` with ``w = alpha + (1 - alpha) (1 - x_s)``,
   ``x_s`` the image smoothed over 2 voxels, so that the background gets the full ``sigma`` and
   bright tissue ``alpha * sigma``; ``rician=true`` takes the magnitude of complex noise instead
   (``|x + sigma w (n1 + i n2)|``, what magnitude MR images have);
5. clip to [0, 1].

Noise is set by its signal-to-noise ratio, ``snr = mean foreground signal / sigma`` (foreground:
noise-free voxels above ``foreground_threshold``; sigma: the standard deviation of the noise in
the background, per real channel), which :func:`measure_snr` measures back on an output.

:class:`LowFieldDegradation` is also a slice degradation (``degradation=lowfield`` with any data
module): the same steps in-plane on one HR slice, its LR on the ``scale`` x coarser area grid.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from lfmri.degrade.degradations import BicubicDegradation, _as_range, draw_uniform
from lfmri.geometry.nifti import voxel_sizes
from lfmri.geometry.resample import centred_grid, resample_onto

WEIGHT_SMOOTHING = 2.0  # voxels: the noise weight follows anatomy, not single voxels


@dataclass(frozen=True)
class LowFieldParams:
    """One subject's draw: PSF sigma (low-field voxels), gamma, SNR."""

    blur_sigma: float
    gamma: float
    snr: float


def noise_weight(clean: np.ndarray, alpha: float) -> np.ndarray:
    smooth = np.clip(ndimage.gaussian_filter(clean, WEIGHT_SMOOTHING, mode="nearest"), 0.0, 1.0)
    return (alpha + (1.0 - alpha) * (1.0 - smooth)).astype(np.float32)


def background_sigma(values: np.ndarray, rician: bool) -> float:
    """Noise sigma from zero-signal voxels: Rayleigh (rician) or Gaussian clipped at 0 (half of it is 0)."""
    mean_square = float(np.mean(np.square(values, dtype=np.float64)))
    return float(np.sqrt(mean_square / 2.0) if rician else np.sqrt(2.0 * mean_square))


def measure_snr(image: np.ndarray, foreground: np.ndarray, background: np.ndarray, rician: bool) -> float:
    """Mean foreground signal over the background noise sigma (``foreground``/``background``: masks)."""
    return float(np.mean(image[foreground])) / background_sigma(image[background], rician)


class LowFieldDegradation(BicubicDegradation):
    def __init__(
        self,
        scale: int = 2,
        hr_size: int | Sequence[int] | None = None,
        lf_shape: Sequence[int] = (112, 138, 40),
        lf_spacing: Sequence[float] = (1.6, 1.6, 5.0),
        blur_sigma: float | Sequence[float] = (0.4, 0.6),
        gamma: float | Sequence[float] = (1.1, 1.6),
        snr: float | Sequence[float] = (8.0, 20.0),
        background_alpha: float = 0.4,
        rician: bool = False,
        foreground_threshold: float = 0.1,
        seed: int = 0,
        grid: str | None = None,
    ) -> None:
        super().__init__(scale, hr_size, (0.0, 0.0), grid)
        self.lf_shape = tuple(int(n) for n in lf_shape)
        self.lf_spacing = tuple(float(s) for s in lf_spacing)
        if len(self.lf_shape) != 3 or len(self.lf_spacing) != 3 or min(self.lf_shape) < 1 or min(self.lf_spacing) <= 0:
            raise ValueError(f"degradation.lf_shape/lf_spacing must be three positive numbers, got {lf_shape}, {lf_spacing}")
        self.blur_sigma = _as_range(blur_sigma, "blur_sigma")
        self.gamma = _as_range(gamma, "gamma")
        self.snr = _as_range(snr, "snr")
        if self.snr[0] <= 0 or self.gamma[0] <= 0:
            raise ValueError(f"degradation.snr and degradation.gamma must be positive, got {snr}, {gamma}")
        if not 0 <= background_alpha <= 1:
            raise ValueError(f"degradation.background_alpha must be in [0, 1], got {background_alpha}")
        self.background_alpha = float(background_alpha)
        self.rician = bool(rician)
        self.foreground_threshold = float(foreground_threshold)
        self.seed = int(seed)

    # --- per-subject volumes ---------------------------------------------------------------------
    def draw_params(self, rng: np.random.Generator) -> LowFieldParams:
        return LowFieldParams(*(float(rng.uniform(*bounds)) for bounds in (self.blur_sigma, self.gamma, self.snr)))

    def clean_volume(self, data: np.ndarray, affine: np.ndarray, params: LowFieldParams,
                     grid: tuple[Sequence[int], Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Steps 1-3 (blur, resample, gamma): the noise-free low-field volume and its affine.

        ``grid``: (shape, spacing) of the low-field grid, when not ``lf_shape``/``lf_spacing``
        (paired data simulate onto the grid their real low-field volumes are resampled to).
        """
        shape, spacing = grid or (self.lf_shape, self.lf_spacing)
        sigma_voxels = params.blur_sigma * np.asarray(spacing, dtype=np.float64) / voxel_sizes(affine)
        blurred = ndimage.gaussian_filter(np.asarray(data, dtype=np.float32), sigma_voxels, mode="nearest")
        lf_affine = centred_grid(affine, data.shape, shape, spacing)
        lf = resample_onto(blurred, affine, shape, lf_affine)
        return np.clip(lf, 0.0, 1.0) ** params.gamma, lf_affine

    def noise_sigma(self, clean: np.ndarray, params: LowFieldParams) -> float:
        foreground = clean > self.foreground_threshold
        if not foreground.any():
            raise ValueError(
                f"the simulated low-field volume has no voxel above degradation.foreground_threshold="
                f"{self.foreground_threshold}; is the input normalised to [0, 1]?"
            )
        return float(clean[foreground].mean()) / params.snr

    def add_noise(self, clean: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
        """Steps 4-5: background-weighted Gaussian (or Rician) noise, clip to [0, 1]."""
        scaled = sigma * noise_weight(clean, self.background_alpha)
        noisy = clean + scaled * rng.standard_normal(clean.shape, dtype=np.float32)
        if self.rician:
            noisy = np.hypot(noisy, scaled * rng.standard_normal(clean.shape, dtype=np.float32))
        return np.clip(noisy, 0.0, 1.0).astype(np.float32)

    def simulate_volume(self, data: np.ndarray, affine: np.ndarray, seed: int,
                        grid: tuple[Sequence[int], Sequence[float]] | None = None) -> tuple[np.ndarray, np.ndarray, LowFieldParams]:
        """A normalised HR volume -> (low-field volume, its affine, the parameters drawn)."""
        rng = np.random.default_rng(seed)
        params = self.draw_params(rng)
        clean, lf_affine = self.clean_volume(data, affine, params, grid)
        return self.add_noise(clean, self.noise_sigma(clean, params), rng), lf_affine, params

    # --- slices (the Degradation interface) ------------------------------------------------------
    def degrade(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """In-plane version on HR slices ``(..., H, W)``: parameters drawn per slice."""
        self._check_divisible(hr)
        lead = hr.shape[:-2]
        flat = hr.float().reshape(-1, 1, *hr.shape[-2:])
        out = []
        for image in flat:
            sigma, gamma, snr = (float(draw_uniform(b, (), generator)) for b in (self.blur_sigma, self.gamma, self.snr))
            blurred = _gaussian_blur(image[None], sigma * self.scale)
            lr = F.interpolate(blurred, size=self.lr_shape(hr.shape), mode="bicubic", antialias=True, align_corners=False)
            clean = lr.clamp(0.0, 1.0) ** gamma
            foreground = clean > self.foreground_threshold
            signal = clean[foreground].mean() if foreground.any() else clean.mean()
            smooth = _gaussian_blur(clean, WEIGHT_SMOOTHING).clamp(0.0, 1.0)
            scaled = (signal / snr) * (self.background_alpha + (1.0 - self.background_alpha) * (1.0 - smooth))
            noisy = clean + scaled * torch.randn(clean.shape, generator=generator)
            if self.rician:
                noisy = torch.hypot(noisy, scaled * torch.randn(clean.shape, generator=generator))
            out.append(noisy.clamp(0.0, 1.0)[0])
        lr = torch.stack(out).reshape(*lead, *out[0].shape[-2:])
        return lr, lr.to(torch.complex64)

    def __repr__(self) -> str:
        fields = {"scale": self.scale, "lf_shape": self.lf_shape, "lf_spacing": self.lf_spacing, "blur_sigma": self.blur_sigma,
                  "gamma": self.gamma, "snr": self.snr, "rician": self.rician}
        return f"LowFieldDegradation({', '.join(f'{k}={v}' for k, v in fields.items())})"


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of (B, 1, H, W) with replicated borders."""
    if sigma <= 0:
        return image
    radius = max(1, int(np.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = F.pad(image, (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(padded, kernel.view(1, 1, -1, 1))
    return F.conv2d(out, kernel.view(1, 1, 1, -1))

