"""Per-volume percentile intensity normalisation to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lfmri.errors import ConfigError, DataError


@dataclass(frozen=True)
class Intensity:
    """The linear map that took a volume's window ``[low, high]`` to [0, 1]; ``restore`` undoes it.

    ``minimum`` and ``maximum`` are the volume's own extremes (``None`` when unknown): outputs are
    bounded by them (:meth:`restore_bounded`), never by the window, so values above ``high`` (an enhancing
    lesion, the brightest 0.5 % of a scan) keep their intensity.
    """

    low: float
    high: float
    minimum: float | None = None
    maximum: float | None = None

    def scale(self, data: np.ndarray) -> np.ndarray:
        """The linear map alone, unclipped: the window goes to [0, 1], everything else beyond it."""
        return ((np.asarray(data, dtype=np.float32) - self.low) / (self.high - self.low)).astype(np.float32)

    def apply(self, data: np.ndarray) -> np.ndarray:
        """The map clipped to [0, 1]: what networks read, in training and inference."""
        return np.clip(self.scale(data), 0.0, 1.0)

    def restore(self, data: np.ndarray) -> np.ndarray:
        return (np.asarray(data, dtype=np.float32) * (self.high - self.low) + self.low).astype(np.float32)

    def restore_bounded(self, data: np.ndarray) -> np.ndarray:
        """:meth:`restore`, clipped to the volume's own [minimum, maximum] (to the window [low, high]
        when those are unknown): values beyond the window, e.g. a lesion, keep their intensity."""
        low = self.low if self.minimum is None else min(self.minimum, self.low)
        high = self.high if self.maximum is None else max(self.maximum, self.high)
        return np.clip(self.restore(data), np.float32(low), np.float32(high)).astype(np.float32)


def percentile_intensity(data: np.ndarray, percentiles: Sequence[float], source: str) -> Intensity:
    """Intensity window from the ``percentiles`` (low, high) of all voxels of a volume."""
    low_p, high_p = (float(p) for p in percentiles)
    if not 0 <= low_p < high_p <= 100:
        raise ConfigError(f"data.percentiles={list(percentiles)}: normalisation percentiles must satisfy 0 <= low < high <= 100")
    low, high = np.percentile(data, [low_p, high_p])
    if not high > low:
        raise DataError(
            f"{source}: intensity percentiles {low_p:g} and {high_p:g} are equal ({low:g}); "
            "the volume is (nearly) constant and cannot be normalised; remove it from the data"
        )
    return Intensity(float(low), float(high), float(np.min(data)), float(np.max(data)))
