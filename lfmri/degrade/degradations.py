"""Synthetic degradations: pure, seeded maps from a normalised HR slice to its LR counterpart.

Each degradation is a small config object (built by Hydra from ``conf/degradation/*.yaml``) with

- ``prepare_hr(image)``: deterministic preparation of the HR target from a normalised slice
  (k-space resize to ``hr_size`` for the MRI degradations, centred crop for bicubic);
- ``degrade(hr, generator)``: the LR magnitude image and the complex LR image it came from;
  all randomness comes from ``generator``, so (seed, slice) reproduces a pair exactly;
- ``hr_maps`` / ``lr_maps``: where the prepared HR and the LR pixels sit (``lfmri.geometry.grid``),
  used for affines, patch extraction, and degradation-aligned interpolation (``upsample``).

Attributes: ``scale`` (resolution factor), ``grid_scale`` (LR grid step in HR pixels; 1 when the
LR comes back on the HR grid), ``has_phase`` (the complex LR carries real phase information).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from lfmri.errors import ConfigError
from lfmri.geometry.grid import AxisMap, interpolate_to_grid, kspace_axis_map, lr_axis_map
from lfmri.degrade.kspace import center_crop_or_pad, fft2c, ifft2c, intensity_factor, resize_complex

Size = tuple[int, int]


def _as_size(value: int | Sequence[int] | None, name: str) -> Size | None:
    if value is None:
        return None
    if isinstance(value, int):
        value = (value, value)
    size = tuple(int(v) for v in value)
    if len(size) != 2 or min(size) < 1:
        raise ValueError(f"degradation.{name} must be a positive int or [height, width], got {value!r}")
    return size  # type: ignore[return-value]


def _as_range(value: float | Sequence[float], name: str) -> tuple[float, float]:
    low, high = (float(value), float(value)) if isinstance(value, (int, float)) else tuple(map(float, value))
    if not 0 <= low <= high:
        raise ValueError(f"degradation.{name} must be [low, high] with 0 <= low <= high, got {value!r}")
    return low, high


def draw_uniform(bounds: tuple[float, float], shape: Sequence[int], generator: torch.Generator) -> torch.Tensor:
    """One value per leading index, uniform in ``bounds``, from ``generator`` (on its device)."""
    low, high = bounds
    return low + (high - low) * torch.rand(tuple(shape), generator=generator, device=generator.device)


def complex_gaussian(shape: Sequence[int], std: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Complex white Gaussian noise with per-channel (real and imaginary) standard deviation ``std``."""
    real = torch.randn(tuple(shape), generator=generator, device=generator.device)
    imag = torch.randn(tuple(shape), generator=generator, device=generator.device)
    return torch.complex(real, imag) * std


class Degradation:
    scale: int
    grid_scale: int
    has_phase: bool

    grid: str  # "kspace" or "area": where LR pixels sit (``lfmri.geometry.grid.lr_axis_map``)

    def __init__(
        self,
        scale: int,
        hr_size: int | Sequence[int] | None,
        noise_std: float | Sequence[float],
        grid: str | None = None,
    ):
        # ``grid`` is fixed by the class; configs state it so that models can interpolate it
        if grid is not None and grid != self.grid:
            raise ValueError(f"degradation.grid={grid!r} but {type(self).__name__} uses the {self.grid!r} grid")
        if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
            raise ValueError(f"degradation.scale must be a positive integer, got {scale!r}")
        self.scale = scale
        self.hr_size = _as_size(hr_size, "hr_size")
        if self.hr_size is not None and any(n % scale for n in self.hr_size):
            raise ConfigError(
                f"degradation.hr_size={list(self.hr_size)} is not divisible by scale x{scale}; "
                f"pass degradation.hr_size=${{lfmri.multiple:128,${{scale}}}} (the default) or a multiple of {scale}"
            )
        self.noise_std = _as_range(noise_std, "noise_std")

    # --- geometry -----------------------------------------------------------------------------
    def hr_shape(self, in_shape: Sequence[int]) -> Size:
        """Shape of the prepared HR slice for an input slice of ``in_shape``."""
        if self.hr_size is not None:
            return self.hr_size
        return tuple(max(self.scale, (n // self.scale) * self.scale) for n in in_shape[-2:])  # type: ignore[return-value]

    def lr_shape(self, hr_shape: Sequence[int]) -> Size:
        return tuple(n // self.grid_scale for n in hr_shape[-2:])  # type: ignore[return-value]

    def hr_maps(self, in_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        raise NotImplementedError

    def lr_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        """Where the LR view's pixels sit on the HR grid of ``hr_shape``."""
        raise NotImplementedError

    def scan_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        """Where the pixels of a measured scan (``scale`` x coarser) sit on the HR grid the network
        outputs; ``lfmri-predict`` inverts these to place its output. The LR view's maps, unless
        the LR view is not the measurement itself (zero-filled onto the HR grid)."""
        return self.lr_maps(hr_shape)

    # --- data ---------------------------------------------------------------------------------
    def prepare_hr(self, image: torch.Tensor, clip: bool = True) -> torch.Tensor:
        """``image`` resized or cropped to the HR shape, clipped to [0, 1] (``clip=False``: not clipped,
        for the intensities beyond the window that evaluation carries past the networks)."""
        raise NotImplementedError

    def degrade(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(lr_magnitude, lr_complex)`` for an HR tensor ``(..., H, W)``."""
        raise NotImplementedError

    def measurement(self, lr_view: torch.Tensor) -> torch.Tensor:
        """The measured image behind LR views ``(..., h, w)`` (complex or real): where the noise is white.

        The view itself, unless the LR view is not the measurement (its ``lr_maps`` differ from its
        ``scan_maps``): a view zero-filled onto a finer grid (``kspace_zerofill``) has no noise in
        the k-space it padded, so its finest image-domain band holds none; cropping its k-space back
        to the measured block (the scan's grid, ``resize_complex``: the intensity factors of pad and
        crop cancel) returns the measurement sample for sample, with white noise of the same
        per-pixel std as the view. Derived from the maps, not from the class: any degradation whose
        LR view zero-fills its scan onto a finer k-space grid gets the same treatment.
        """
        view_shape = tuple(lr_view.shape[-2:])
        hr_shape = tuple(n * self.grid_scale for n in view_shape)
        view_maps, scan_maps = self.lr_maps(hr_shape), self.scan_maps(hr_shape)
        if all(abs(v.step - s.step) < 1e-9 for v, s in zip(view_maps, scan_maps)):
            return lr_view
        if self.grid != "kspace":
            raise NotImplementedError(f"{type(self).__name__}: an LR view on another grid than its scan is only "
                                      "known for k-space zero-filling")
        size = tuple(round(n * v.step / s.step) for n, v, s in zip(view_shape, view_maps, scan_maps))
        return resize_complex(lr_view, size)

    def upsample(self, lr: torch.Tensor, hr_shape: Sequence[int]) -> torch.Tensor:
        """Bicubic interpolation of ``lr`` (B, C, h, w) onto the HR grid this degradation implies."""
        return interpolate_to_grid(lr, hr_shape[-2:], self.lr_maps(hr_shape))

    def _check_divisible(self, hr: torch.Tensor) -> None:
        if any(n % self.scale for n in hr.shape[-2:]):
            raise ValueError(
                f"HR slice of shape {tuple(hr.shape[-2:])} is not divisible by scale x{self.scale}; "
                "prepare it with degradation.prepare_hr first"
            )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(scale={self.scale}, hr_size={self.hr_size}, noise_std={list(self.noise_std)})"
        )


class KSpaceDegradation(Degradation):
    """De Leeuw den Bouter et al. (2022), Eq. 1: LR = |F_LR^-1 (D F_HR x + eps)|.

    - HR target: the normalised slice resized to ``hr_size`` by centred k-space crop/zero-pad
      (magnitude, clipped to [0, 1]); ``hr_size=None`` keeps the size, trimmed to a multiple of
      ``scale``.
    - LR: the central ``hr_size / scale`` block of the HR k-space, inverted on the LR grid and
      scaled by M/N so that LR and HR have the same mean intensity.
    - Noise: complex white Gaussian noise added in k-space. ``noise_std`` is the standard
      deviation of each of the real and imaginary channels in the image domain, in units of the
      normalised HR intensity range [0, 1] (after the M/N scaling), drawn per slice uniformly from
      the range. The default [0.01, 0.05] puts white matter (~0.7) at an SNR of ~14-70: the
      upper end matches the noisiest simulated low-field data in the literature (Laguna et al.
      2022: std up to 0.05 on [0, 1]), the lower end a clean high-field scan.
    - The magnitude makes background noise Rician, as in real magnitude MR images.
    """

    grid = "kspace"
    has_phase = True

    def __init__(
        self,
        scale: int = 2,
        hr_size: int | Sequence[int] | None = 128,
        noise_std: float | Sequence[float] = (0.01, 0.05),
        grid: str | None = None,
    ) -> None:
        super().__init__(scale, hr_size, noise_std, grid)
        self.grid_scale = scale

    def hr_maps(self, in_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        hr = self.hr_shape(in_shape)
        return kspace_axis_map(in_shape[-2], hr[0]), kspace_axis_map(in_shape[-1], hr[1])

    def lr_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        return tuple(lr_axis_map("kspace", self.scale, m) for m in self.lr_shape(hr_shape))  # type: ignore[return-value]

    def prepare_hr(self, image: torch.Tensor, clip: bool = True) -> torch.Tensor:
        size = self.hr_shape(image.shape)
        low, high = (0.0, 1.0) if clip else (None, None)
        if tuple(image.shape[-2:]) == size:
            return image.float().clamp(low, high) if clip else image.float()
        resized = resize_complex(image.float(), size).abs()
        return resized.clamp_(low, high) if clip else resized

    def measure(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """The noisy complex LR image: central k-space block plus noise, inverted on the LR grid."""
        self._check_divisible(hr)
        lr_size = tuple(n // self.scale for n in hr.shape[-2:])
        factor = intensity_factor(hr.shape[-2:], lr_size)
        kspace = center_crop_or_pad(fft2c(hr.float()), lr_size)
        sigma = draw_uniform(self.noise_std, (*hr.shape[:-2], 1, 1), generator)
        # image-domain std sigma after the factor scaling <=> k-space std sigma / factor
        kspace = kspace + complex_gaussian(kspace.shape, sigma / factor, generator)
        return ifft2c(kspace) * factor

    def degrade(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        lr_complex = self.measure(hr, generator)
        return lr_complex.abs(), lr_complex


class KSpaceZeroFillDegradation(KSpaceDegradation):
    """Central k-space block kept, the rest zero-filled, output on the HR grid (Lyu et al. 2018).

    At ``scale=2`` this keeps the central 25 % of k-space samples (half the extent per axis), the
    area reading of Lyu et al.'s "central 25 %". Noise follows :class:`KSpaceDegradation` (same
    units), so this equals zero-filling the ``kspace`` degradation's complex LR, sample for sample.
    The output has the same size as the HR target: use it with pre-upsampled models.
    """

    def __init__(
        self,
        scale: int = 2,
        hr_size: int | Sequence[int] | None = 128,
        noise_std: float | Sequence[float] = (0.0, 0.0),
        grid: str | None = None,
    ) -> None:
        super().__init__(scale, hr_size, noise_std, grid)
        self.grid_scale = 1

    def lr_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        return AxisMap(1.0), AxisMap(1.0)

    def scan_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        # a scan is the measured central k-space block (zero-filled only by the network's input step)
        return tuple(lr_axis_map("kspace", self.scale, n // self.scale) for n in hr_shape[-2:])  # type: ignore[return-value]

    def degrade(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        # zero-padding back to the HR grid: the intensity factors of crop and pad cancel
        zero_filled = resize_complex(self.measure(hr, generator), hr.shape[-2:])
        return zero_filled.abs(), zero_filled


class BicubicDegradation(Degradation):
    """Anti-aliased bicubic downsampling (pixel-area grid), optional white Gaussian noise.

    The HR target is the normalised slice centre-cropped (or zero-padded) to ``hr_size``, or,
    with ``hr_size=None``, trimmed to a multiple of ``scale``. ``noise_std`` is the standard
    deviation of real image-domain noise on [0, 1] intensities (default: none).
    """

    grid = "area"
    has_phase = False

    def __init__(
        self,
        scale: int = 2,
        hr_size: int | Sequence[int] | None = None,
        noise_std: float | Sequence[float] = (0.0, 0.0),
        grid: str | None = None,
    ) -> None:
        super().__init__(scale, hr_size, noise_std, grid)
        self.grid_scale = scale

    def hr_maps(self, in_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        hr = self.hr_shape(in_shape)
        return tuple(AxisMap(1.0, float(n // 2 - m // 2)) for n, m in zip(in_shape[-2:], hr))  # type: ignore[return-value]

    def lr_maps(self, hr_shape: Sequence[int]) -> tuple[AxisMap, AxisMap]:
        return lr_axis_map("area", self.scale, 0), lr_axis_map("area", self.scale, 0)

    def prepare_hr(self, image: torch.Tensor, clip: bool = True) -> torch.Tensor:
        prepared = center_crop_or_pad(image.float(), self.hr_shape(image.shape))
        return prepared.clamp(0.0, 1.0) if clip else prepared

    def degrade(self, hr: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        self._check_divisible(hr)
        lead = hr.shape[:-2]
        flat = hr.float().reshape(-1, 1, *hr.shape[-2:])
        lr = F.interpolate(flat, size=self.lr_shape(hr.shape), mode="bicubic", antialias=True, align_corners=False)
        lr = lr.reshape(*lead, *lr.shape[-2:])
        sigma = draw_uniform(self.noise_std, (*lead, 1, 1), generator)
        lr = lr + sigma * torch.randn(lr.shape, generator=generator, device=generator.device)
        return lr, lr.to(torch.complex64)
