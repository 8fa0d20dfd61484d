"""Cubic resampling of volumes onto grids given by shape and voxel size, in world coordinates.

A target grid keeps the source's axis directions and world centre and takes the requested shape
and spacing (``centred_grid``); data move onto it with cubic B-splines (``scipy.ndimage``), the
map from target to source voxels coming from the two affines. For two volumes that span the same
field of view this is a zoom by the shape ratio per axis.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from lfmri.data.io import Volume, voxel_sizes


def _triple(value: float | Sequence[float], name: str) -> np.ndarray:
    values = np.broadcast_to(np.asarray(value, dtype=np.float64), (3,)).copy()
    if not np.all(values > 0):
        raise ValueError(f"{name} must be positive (one value or three), got {value!r}")
    return values


def centred_grid(affine: np.ndarray, shape: Sequence[int], target_shape: Sequence[int], spacing: Sequence[float]) -> np.ndarray:
    """Affine of a ``target_shape`` grid with voxel sizes ``spacing``, same directions and centre."""
    affine = np.asarray(affine, dtype=np.float64)
    directions = affine[:3, :3] / voxel_sizes(affine)
    out = np.eye(4)
    out[:3, :3] = directions * _triple(spacing, "spacing")
    centre = affine @ np.r_[(np.asarray(shape, dtype=np.float64) - 1) / 2, 1.0]
    out[:3, 3] = centre[:3] - out[:3, :3] @ ((np.asarray(target_shape, dtype=np.float64) - 1) / 2)
    return out


def resample_onto(
    data: np.ndarray, affine: np.ndarray, target_shape: Sequence[int], target_affine: np.ndarray, order: int = 3
) -> np.ndarray:
    """Values of ``data`` (grid ``affine``) at the voxels of the ``target_shape``/``target_affine`` grid."""
    to_source = np.linalg.solve(np.asarray(affine, dtype=np.float64), np.asarray(target_affine, dtype=np.float64))
    matrix, offset = to_source[:3, :3], to_source[:3, 3]
    if np.allclose(matrix, np.diag(np.diag(matrix)), atol=1e-9):
        matrix = np.diag(matrix)  # axis-aligned: scipy's faster separable path
    out = ndimage.affine_transform(
        np.asarray(data, dtype=np.float32),
        matrix,
        offset=offset,
        output_shape=tuple(int(n) for n in target_shape),
        order=order,
        mode="nearest",
    )
    return out.astype(np.float32, copy=False)


def resample_volume(volume: Volume, shape: Sequence[int], spacing: float | Sequence[float], order: int = 3) -> Volume:
    """``volume`` on a centred grid of ``shape`` and voxel sizes ``spacing`` (mm)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target shape must be three positive integers, got {list(shape)}")
    affine = centred_grid(volume.affine, volume.data.shape, shape, spacing)
    if shape == volume.data.shape and np.allclose(affine, volume.affine, atol=1e-6):
        return volume
    data = resample_onto(volume.data, volume.affine, shape, affine, order)
    return Volume(data=data, affine=affine, source=volume.source, axcodes=volume.axcodes)
