"""On-the-fly, seeded augmentation of 2D training slices.

Every draw comes from the training patch's own generator (seeded by seed, epoch and index, see
:mod:`lfmri.data.datasets`), so augmentation is reproducible, independent of the number of
workers and exact across a resumed run.

Two ways of applying it, chosen by the dataset:

- synthetic degradations (``data=folder``, ``ixi``, ``mni152``): the HR slice is transformed
  *before* it is degraded (:meth:`SliceAugmentation.hr`), so the LR is always the degradation of
  the HR and the pair is consistent by construction, whatever grid the degradation uses. (A flip
  of an already degraded k-space pair would move the LR grid by one HR pixel: after a centred
  k-space crop LR pixel ``j`` sits on HR pixel ``2j``, which a flip maps to ``N - 1 - 2j``.)
- precomputed pairs (``data=paired_lowfield``): the same transform is applied to every view of the
  patch (:meth:`SliceAugmentation.pair`), which is exact on the pixel-area grid those pairs use.

The cost is a few element-wise operations on one slice per patch: negligible next to the
degradation's FFTs (measured in ``benchmarks/bench.py --section data``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence

import torch

from lfmri.degrade.degradations import Degradation, _as_range, draw_uniform


def _range(value: float | Sequence[float] | None, name: str, default: float) -> tuple[float, float]:
    if value is None:
        return default, default
    low, high = _as_range(value, f"augment.{name}")
    if low <= 0:
        raise ValueError(f"data.augment.{name} must be positive, got {list(value) if not isinstance(value, (int, float)) else value}")
    return low, high


class SliceAugmentation:
    """Random dihedral transforms and intensity changes of a training slice.

    Args:
        flips: mirror left-right and/or up-down, each with probability 1/2.
        rot90: rotate by a random multiple of 90 degrees (square slices only; others keep their
            orientation so that every patch keeps the slice's shape).
        scale: range of a global intensity factor (e.g. ``[0.8, 1.1]``); ``null`` = 1.
        gamma: range of an exponent ``x ** gamma`` (contrast variety between scanners and
            sequences, e.g. ``[0.7, 1.4]``); ``null`` = 1.
        contrast: range of a factor ``c`` stretching intensities about the mean foreground
            value ``m``: ``m + c (x - m)``; ``null`` = 1.
        noise_std: training-only noise range that replaces the degradation's ``noise_std`` (for
            example wider than the evaluation range, so the network meets cleaner and noisier
            scans than it is scored on); ``null`` keeps the degradation's.
        foreground_threshold: intensity above which voxels count for the contrast mean.

    Intensities are clipped to [0, 1] after the intensity changes, as normalised data is.
    """

    def __init__(
        self,
        flips: bool = True,
        rot90: bool = True,
        scale: float | Sequence[float] | None = None,
        gamma: float | Sequence[float] | None = None,
        contrast: float | Sequence[float] | None = None,
        noise_std: float | Sequence[float] | None = None,
        foreground_threshold: float = 0.05,
    ) -> None:
        self.flips = bool(flips)
        self.rot90 = bool(rot90)
        self.scale = _range(scale, "scale", 1.0)
        self.gamma = _range(gamma, "gamma", 1.0)
        self.contrast = _range(contrast, "contrast", 1.0)
        self.noise_std = None if noise_std is None else _as_range(noise_std, "augment.noise_std")
        self.foreground_threshold = float(foreground_threshold)

    @property
    def changes_intensity(self) -> bool:
        return any(r != (1.0, 1.0) for r in (self.scale, self.gamma, self.contrast))

    def training_degradation(self, degradation: Degradation) -> Degradation:
        """The degradation training patches use: ``degradation`` with the training noise range."""
        if self.noise_std is None:
            return degradation
        if not hasattr(degradation, "noise_std"):
            raise ValueError(
                f"data.augment.noise_std is set but {type(degradation).__name__} has no noise_std "
                "(set its own noise options instead)"
            )
        train = copy.copy(degradation)
        train.noise_std = self.noise_std
        return train

    # --- draws --------------------------------------------------------------------------------
    def draw_geometry(self, generator: torch.Generator, square: bool) -> tuple[int, bool, bool]:
        """(quarter turns, flip left-right, flip up-down)."""
        bits = torch.randint(2, (2,), generator=generator).tolist() if self.flips else [0, 0]
        turns = int(torch.randint(4, (1,), generator=generator)) if self.rot90 else 0
        return (turns if square else 0), bool(bits[0]), bool(bits[1])

    def draw_intensity(self, generator: torch.Generator) -> tuple[float, float, float]:
        if not self.changes_intensity:
            return 1.0, 1.0, 1.0
        values = [draw_uniform(r, (), generator) for r in (self.scale, self.gamma, self.contrast)]
        return tuple(float(v) for v in values)  # type: ignore[return-value]

    # --- transforms ---------------------------------------------------------------------------
    @staticmethod
    def geometry(x: torch.Tensor, transform: tuple[int, bool, bool]) -> torch.Tensor:
        turns, flip_lr, flip_ud = transform
        if flip_lr:
            x = x.flip(-1)
        if flip_ud:
            x = x.flip(-2)
        return torch.rot90(x, turns, dims=(-2, -1)) if turns else x

    def intensity(self, x: torch.Tensor, values: tuple[float, float, float], mean: float | None = None) -> torch.Tensor:
        """Apply (scale, gamma, contrast); ``mean`` is the foreground mean the contrast pivots on."""
        scale, gamma, contrast = values
        if (scale, gamma, contrast) == (1.0, 1.0, 1.0):
            return x
        x = x.clamp(0, 1)
        if gamma != 1.0:
            x = x.pow(gamma)
        if scale != 1.0:
            x = x * scale
        if contrast != 1.0:
            pivot = self.foreground_mean(x) if mean is None else mean * scale
            x = pivot + contrast * (x - pivot)
        return x.clamp(0, 1)

    def foreground_mean(self, x: torch.Tensor) -> float:
        inside = (x > self.foreground_threshold).to(x.dtype)
        count = float(inside.sum())
        return float((x * inside).sum()) / count if count else float(x.mean())

    def hr(self, hr: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Augment one HR slice ``(..., H, W)`` before it is degraded."""
        transform = self.draw_geometry(generator, hr.shape[-1] == hr.shape[-2])
        values = self.draw_intensity(generator)
        return self.intensity(self.geometry(hr, transform), values).contiguous()

    def pair(self, views: Mapping[str, torch.Tensor], generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Augment all image views of one precomputed patch with the same transform.

        Exact for views on the pixel-area grid (a flip of the pair is the pair of the flip); the
        contrast pivot is the HR foreground mean, applied to every view.
        """
        images = {k: v for k, v in views.items() if v.dim() >= 2}
        square = all(v.shape[-1] == v.shape[-2] for v in images.values())
        transform = self.draw_geometry(generator, square)
        values = self.draw_intensity(generator)
        hr_mean = self.foreground_mean(images["hr"] ** values[1]) if "hr" in images and values[2] != 1.0 else None
        out = dict(views)
        for name, image in images.items():
            out[name] = self.intensity(self.geometry(image, transform), values, hr_mean).contiguous()
        return out
