"""Where the voxels of every volume lfmri writes sit: one function for evaluate, predict and training.

A degradation describes its grids with :class:`~lfmri.geometry.grid.AxisMap` s (``hr_maps``: the
prepared HR target on the input volume; ``lr_maps``: the LR view on the HR target; ``scan_maps``: a
measured scan on the HR grid the network outputs). :func:`output_affines` turns those maps into
NIfTI affines for a volume cut into slices along ``slice_axis``, so a new degradation that states
its maps gets correct, identical affines from ``evaluate.py`` (which starts from the HR volume) and
``lfmri-predict`` (which starts from the scan): predict inverts exactly the map evaluate applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from lfmri.geometry.grid import AxisMap, map_affine
from lfmri.geometry.slicing import in_plane_axes

Given = Literal["hr", "scan", "output"]


def output_affines(
    affine: np.ndarray,
    shape: Sequence[int],
    slice_axis: int,
    degradation,
    given: Given = "hr",
    start: int = 0,
) -> dict[str, np.ndarray]:
    """Affines ``{"hr": ..., "lr": ...}`` of the grids a degradation puts a volume's slices on.

    Args:
        affine: the volume's voxel-to-world affine (canonical orientation, as lfmri reads it).
        shape: the volume's shape (3 axes).
        slice_axis: the axis the volume is cut along (slices keep this axis' spacing).
        degradation: an :class:`lfmri.degrade.degradations.Degradation` (its ``hr_maps``,
            ``lr_maps``, ``scan_maps``, ``hr_shape`` and ``scale`` are read).
        given: what the volume is. ``"hr"``: a reference volume that is degraded (evaluate):
            ``hr`` is the prepared HR target's grid and ``lr`` the LR view's. ``"scan"``: a measured
            low-resolution scan (predict): ``lr`` is the scan's own grid and ``hr`` the grid the
            network outputs, ``scale`` x finer in-plane. ``"output"``: the volume already lies on the
            output grid (a scan resampled for a network trained on real pairs): both are its own.
        start: index of the first slice written (a slab ``start:stop`` of the volume).
    """
    axes = in_plane_axes(slice_axis)
    slab = {slice_axis: AxisMap(1.0, float(start))}
    plane = [int(shape[a]) for a in axes]
    if given == "output":
        own = map_affine(affine, slab)
        return {"hr": own, "lr": own}
    if given == "scan":
        hr_shape = [n * int(degradation.scale) for n in plane]
        to_hr = [m.inverse() for m in degradation.scan_maps(hr_shape)]
        return {"hr": map_affine(affine, {**slab, **dict(zip(axes, to_hr))}), "lr": map_affine(affine, slab)}
    if given != "hr":
        raise ValueError(f"given={given!r}; expected 'hr', 'scan' or 'output'")
    hr_maps = degradation.hr_maps(plane)
    lr_maps = [lr.then(hr) for lr, hr in zip(degradation.lr_maps(degradation.hr_shape(plane)), hr_maps)]
    return {
        "hr": map_affine(affine, {**slab, **dict(zip(axes, hr_maps))}),
        "lr": map_affine(affine, {**slab, **dict(zip(axes, lr_maps))}),
    }


def slab_affine(affine: np.ndarray, slice_axis: int, start: int) -> np.ndarray:
    """The affine of slices ``start:`` of a volume (its first written slice is ``start``)."""
    return map_affine(affine, {slice_axis: AxisMap(1.0, float(start))})
