"""Cubic resampling of volumes onto grids given by shape and voxel size, in world coordinates.

A target grid keeps the source's axis directions and world centre and takes the requested shape
and spacing (``centred_grid``); data move onto it with cubic B-splines (``scipy.ndimage``), the
map from target to source voxels coming from the two affines. For two volumes that span the same
field of view this is a zoom by the shape ratio per axis.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from lfmri.geometry.grid import map_affine
from lfmri.geometry.nifti import Volume, voxel_sizes
from lfmri.geometry.slicing import in_plane_axes


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


def centred_on(affine: np.ndarray, shape: Sequence[int], reference_affine: np.ndarray, reference_shape: Sequence[int]) -> np.ndarray:
    """``affine`` moved (directions and spacing kept) so that the centre of its ``shape`` grid falls on
    the centre of the ``reference_shape`` grid of ``reference_affine``: two scans of one field of view."""
    out = np.array(affine, dtype=np.float64)
    centre = np.asarray(reference_affine, dtype=np.float64) @ np.r_[(np.asarray(reference_shape) - 1) / 2, 1.0]
    own_centre = out @ np.r_[(np.asarray(shape) - 1) / 2, 1.0]
    out[:3, 3] += (centre - own_centre)[:3]
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


def thick_slice_neighbours(
    data: np.ndarray, affine: np.ndarray, target_shape: Sequence[int], target_affine: np.ndarray, slice_axis: int,
    spacing_mm: float, context: int,
) -> np.ndarray:
    """(2 * context + 1, *target_shape): ``data`` resampled onto the target grid moved by ``k * spacing_mm``
    along the target's ``slice_axis``, k = -context .. context (channel ``context`` is the grid itself).

    Why not the target grid's own neighbouring slices: on a grid finer than the acquisition (1 mm slices
    cut from a 5 mm low-field volume) the next slice is interpolated from the same thick slices and
    brings nothing new; a thick slice away lies the neighbouring measurement. Beyond the volume the
    edge is repeated (``resample_onto``'s ``nearest`` mode), as the 2D neighbours repeat the last slice.
    """
    if spacing_mm <= 0:
        raise ValueError(f"the neighbours' spacing must be positive, got {spacing_mm} mm")
    target_affine = np.asarray(target_affine, dtype=np.float64)
    direction = target_affine[:3, slice_axis] / np.linalg.norm(target_affine[:3, slice_axis])
    stack = []
    for k in range(-int(context), int(context) + 1):
        moved = target_affine.copy()
        moved[:3, 3] += direction * k * float(spacing_mm)
        stack.append(resample_onto(data, affine, target_shape, moved))
    return np.stack(stack)


def resample_volume(volume: Volume, shape: Sequence[int], spacing: float | Sequence[float], order: int = 3) -> Volume:
    """``volume`` on a centred grid of ``shape`` and voxel sizes ``spacing`` (mm)."""
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"target shape must be three positive integers, got {list(shape)}")
    affine = centred_grid(volume.affine, volume.data.shape, shape, spacing)
    if shape == volume.data.shape and np.allclose(affine, volume.affine, atol=1e-6):
        return volume
    data = resample_onto(volume.data, volume.affine, shape, affine, order)
    return Volume(data=data, affine=affine, source=volume.source, axcodes=volume.axcodes, label=volume.label,
                  space_code=volume.space_code)


def hr_grid_shape(hf_shape: Sequence[int], slice_axis: int, step: int) -> list[int]:
    """The high-field grid the network predicts: in-plane sizes trimmed to a multiple of ``step``."""
    shape = [int(n) for n in hf_shape]
    for a in in_plane_axes(slice_axis):
        shape[a] -= shape[a] % step
        if shape[a] < step:
            raise ValueError(f"data.hf_shape={list(hf_shape)} is smaller than the scale x{step} in-plane")
    return shape


def lr_grid(hr_shape: Sequence[int], hr_affine: np.ndarray, slice_axis: int, degradation) -> tuple[list[int], np.ndarray]:
    """Shape and affine of the network's LR input grid: in-plane ``grid_scale`` x coarser, pixels
    where the degradation's ``lr_maps`` put them."""
    axes = in_plane_axes(slice_axis)
    step = degradation.grid_scale
    maps = degradation.lr_maps([hr_shape[a] for a in axes])
    lr_shape = [n // step if a in axes else n for a, n in enumerate(hr_shape)]
    return lr_shape, map_affine(hr_affine, dict(zip(axes, maps)))


def covering_shape(shape: Sequence[int], spacing: float | Sequence[float], extent_mm: Sequence[float], multiple: Sequence[int] = (1, 1, 1)) -> list[int]:
    """``shape`` grown, axis by axis, until ``shape * spacing`` covers ``extent_mm`` to within half a
    voxel; a grown axis is rounded up to its ``multiple``, an axis that already covers keeps its size
    (the 179 mm of ``lowfield-sim``'s 1 mm box covers the 179.2 mm of its 112 x 1.6 mm low-field box)."""
    out = []
    for n, step, length, m in zip(shape, _triple(spacing, "spacing"), extent_mm, multiple):
        need = int(np.ceil(float(length) / float(step) - 0.5))
        out.append(int(n) if need <= int(n) else int(np.ceil(need / int(m)) * int(m)))
    return out


def scan_on_model_grid(scan: Volume, data_cfg: Mapping, degradation, upsampled: bool) -> Volume:
    """A real low-field scan on the grid a network trained on paired data reads (for ``lfmri.cli.predict``).

    The same steps as training: cubic resampling to ``data.lf_shape``/``lf_spacing``, then onto the
    LR grid of a high-field grid (``data.hf_shape``/``hf_spacing``) centred on the scan, or onto
    that high-field grid itself for pre-upsampled networks.

    Those boxes (179 x 221 x 200 mm for ``lowfield-sim``) are the training field of view, not a
    limit of the network (it runs on slices of any size): a scan that reaches beyond them would
    lose the top of the head. Each box therefore grows, axis by axis, until it covers the scan's
    extent (:func:`covering_shape`); a scan inside them gets exactly the training grids.
    """
    lf, target_shape, target_affine = _scan_grids(scan, data_cfg, degradation, upsampled)
    data = resample_onto(lf.data, lf.affine, target_shape, target_affine)
    return Volume(data=data, affine=target_affine, source=scan.source, axcodes=scan.axcodes, label=scan.label,
                  space_code=scan.space_code)


def scan_neighbours_on_model_grid(scan: Volume, data_cfg: Mapping, degradation, upsampled: bool,
                                  context: int) -> tuple[Volume, np.ndarray]:
    """:func:`scan_on_model_grid`'s volume, and (2 * context + 1, *grid): that grid moved by whole
    low-field slices along the slice axis (channel ``context`` is the volume itself), the neighbours a
    multi-slice network trained on paired data reads (:func:`thick_slice_neighbours`, ``data.lf_spacing`` apart)."""
    lf, target_shape, target_affine = _scan_grids(scan, data_cfg, degradation, upsampled)
    slice_axis = int(data_cfg["slice_axis"])
    stack = thick_slice_neighbours(lf.data, lf.affine, target_shape, target_affine, slice_axis,
                                   float(data_cfg["lf_spacing"][slice_axis]), context)
    centre = Volume(data=stack[int(context)], affine=target_affine, source=scan.source, axcodes=scan.axcodes, label=scan.label,
                    space_code=scan.space_code)
    return centre, stack


def _scan_grids(scan: Volume, data_cfg: Mapping, degradation, upsampled: bool) -> tuple[Volume, list[int], np.ndarray]:
    """The scan on the low-field grid, and the shape and affine of the grid the network reads."""
    extent = np.asarray(scan.data.shape[:3], dtype=np.float64) * voxel_sizes(scan.affine)
    lf_shape = covering_shape(data_cfg["lf_shape"], data_cfg["lf_spacing"], extent)
    lf = resample_volume(scan, lf_shape, data_cfg["lf_spacing"])
    slice_axis, step = int(data_cfg["slice_axis"]), degradation.grid_scale
    multiple = [1 if a == slice_axis else step for a in range(3)]
    hf_shape = covering_shape(data_cfg["hf_shape"], data_cfg["hf_spacing"], extent, multiple)
    hf_affine = centred_grid(lf.affine, lf.data.shape, hf_shape, data_cfg["hf_spacing"])
    shape = hr_grid_shape(hf_shape, slice_axis, step)
    target_shape, target_affine = (shape, hf_affine) if upsampled else lr_grid(shape, hf_affine, slice_axis, degradation)
    return lf, target_shape, target_affine
