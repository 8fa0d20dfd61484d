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


MIN_IN_PLANE = 8  # pixels along each in-plane axis below which a network's output is not an image


def plane_problem(shape: tuple[int, ...], axis: int, minimum: int = MIN_IN_PLANE) -> str | None:
    """Why slices along ``axis`` of a volume of ``shape`` cannot be super-resolved, or ``None``.

    The plane is the network's (the recipe's ``slice_axis``), never guessed from the volume's
    smallest dimension: a single coronal slice given to an axially trained network would otherwise
    be cut into 1-pixel-wide strips and super-resolved in the wrong plane.
    """
    names = "xyz"
    thin = [a for a in in_plane_axes(axis) if int(shape[a]) < minimum]
    if not thin:
        return None
    sizes = ", ".join(f"{int(shape[a])} along {names[a]}" for a in thin)
    return (f"has shape {tuple(int(n) for n in shape)}: {sizes} in the plane the network works in (slices along "
            f"{names[axis]}, the checkpoint's slice_axis={axis}); it needs at least {minimum} pixels each way "
            "(a single slice must be acquired in that plane)")


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
