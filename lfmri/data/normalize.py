"""Per-volume percentile intensity normalisation to [0, 1]."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lfmri.errors import ConfigError, DataError


@dataclass(frozen=True)
class Intensity:
    """The linear map that took a volume to [0, 1]; ``restore`` undoes it (inside the clip range)."""

    low: float
    high: float

    def apply(self, data: np.ndarray) -> np.ndarray:
        return np.clip((data - self.low) / (self.high - self.low), 0.0, 1.0).astype(np.float32)

    def restore(self, data: np.ndarray) -> np.ndarray:
        return (np.asarray(data, dtype=np.float32) * (self.high - self.low) + self.low).astype(np.float32)


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
    return Intensity(float(low), float(high))
