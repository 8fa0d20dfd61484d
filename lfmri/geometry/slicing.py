"""2D slices of 3D volumes: axis handling and the choice of slices that contain anatomy."""

from __future__ import annotations

import numpy as np
import torch

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


def context_indices(index: int, context: int, start: int, stop: int) -> list[int]:
    """Indices of the ``2 * context + 1`` slices centred on ``index``, kept inside ``[start, stop)``.

    At the edges of the volume (or of a split's slab) the missing neighbours repeat the nearest
    slice inside it, the very same LR slice (training degrades it once too). Why repeat rather than
    mirror or zero: a repeated slice is real anatomy nearest the right place, a mirror would show
    anatomy of the other side as if it were a new slice, zeros would be a contrast the network
    never sees elsewhere; predict can do exactly the same on a measured scan. Edge slices of a head
    are mostly background, so the choice matters little for scores. A slab never borrows slices
    of another split's slab.
    """
    if stop <= start:
        raise ValueError(f"empty slice range {start}:{stop}")
    return [min(max(int(index) + d, start), stop - 1) for d in range(-int(context), int(context) + 1)]


def context_stack(slices: torch.Tensor, indices, context: int) -> torch.Tensor:
    """(B, 2 * context + 1, H, W) for slice ``indices`` of ``slices`` (n, H, W): each slice with its
    neighbours as channels (:func:`context_indices` over the whole stack)."""
    rows = torch.as_tensor([context_indices(i, context, 0, len(slices)) for i in indices], dtype=torch.long)
    return slices[rows]
