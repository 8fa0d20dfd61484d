"""2D slices of 3D volumes: axis handling and the choice of slices that contain anatomy."""

from __future__ import annotations

import numpy as np

AXIS_NAMES = {0: "sagittal", 1: "coronal", 2: "axial"}  # for canonical RAS+ volumes


def check_axis(axis: int) -> int:
    if axis not in AXIS_NAMES:
        raise ValueError(f"data.slice_axis must be 0 (sagittal), 1 (coronal) or 2 (axial), got {axis!r}")
    return axis


def in_plane_axes(axis: int) -> tuple[int, int]:
    """Volume axes that become the (height, width) of a slice taken along ``axis``."""
    return tuple(a for a in range(3) if a != axis)  # type: ignore[return-value]


def take_slices(data: np.ndarray, axis: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Slices ``start:stop`` along ``axis`` as an (n, H, W) array."""
    return np.moveaxis(data, axis, 0)[start:stop]


def put_slices(slices: np.ndarray, axis: int) -> np.ndarray:
    """Inverse of :func:`take_slices`: stack (n, H, W) slices back into a volume."""
    return np.moveaxis(slices, 0, axis)


def foreground_fraction(data: np.ndarray, axis: int, threshold: float) -> np.ndarray:
    """Fraction of voxels above ``threshold`` in every slice along ``axis``."""
    other = in_plane_axes(axis)
    return (data > threshold).mean(axis=other)
