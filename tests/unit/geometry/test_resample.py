"""``lfmri.geometry.resample``: grids centred on each other; the model grids of paired-data checkpoints never crop a scan."""

from __future__ import annotations

import numpy as np
import pytest

from lfmri.degrade.lowfield import LowFieldDegradation
from lfmri.geometry.nifti import Volume, voxel_sizes
from lfmri.geometry.resample import (centred_on, covering_shape, resample_onto, scan_neighbours_on_model_grid,
                                     scan_on_model_grid, thick_slice_neighbours)

# a 20 x 24 x 30 mm training box (lowfield-sim's is 179 x 221 x 200 mm), 1 mm high-field grid
DATA = {"lf_shape": [10, 12, 6], "lf_spacing": [2.0, 2.0, 5.0], "hf_shape": [20, 24, 30], "hf_spacing": [1.0, 1.0, 1.0],
        "slice_axis": 0}


def world_box(affine: np.ndarray, shape) -> tuple[np.ndarray, np.ndarray]:
    """Lowest and highest world coordinates of a grid's field of view (voxel edges)."""
    corners = np.array([[i, j, k] for i in (-0.5, shape[0] - 0.5) for j in (-0.5, shape[1] - 0.5) for k in (-0.5, shape[2] - 0.5)])
    world = corners @ affine[:3, :3].T + affine[:3, 3]
    return world.min(0), world.max(0)


def test_covering_shape_grows_only_the_axes_that_do_not_cover():
    assert covering_shape([112, 138, 40], [1.6, 1.6, 5.0], [179.2, 220.8, 200.0]) == [112, 138, 40]
    assert covering_shape([179, 221, 200], 1.0, [179.2, 220.8, 200.0]) == [179, 221, 200]  # within half a voxel
    assert covering_shape([179, 221, 200], 1.0, [240.0, 240.0, 251.0], multiple=[1, 2, 2]) == [240, 240, 252]


@pytest.mark.parametrize("upsampled", [False, True])
def test_a_head_larger_than_the_training_box_keeps_its_extent_and_its_top(upsampled):
    """A scan 36 x 30 x 50 mm (beyond the 20 x 24 x 30 mm box on every axis) with a bright top slab:
    the model grid covers all of it, and the top of the head is still there."""
    data = np.full((18, 15, 10), 0.3, np.float32)  # 2 x 2 x 5 mm voxels
    data[:, :, -1] = 1.0  # the top of the head (canonical S end)
    affine = np.diag([2.0, 2.0, 5.0, 1.0])
    affine[:3, 3] = [-17.0, -14.0, -22.5]
    scan = Volume(data, affine, "big.nii.gz")
    out = scan_on_model_grid(scan, DATA, LowFieldDegradation(scale=2), upsampled=upsampled)
    low_in, high_in = world_box(scan.affine, data.shape)
    low_out, high_out = world_box(out.affine, out.data.shape)
    spacing = voxel_sizes(out.affine)
    assert np.all(low_out <= low_in + spacing / 2 + 1e-6) and np.all(high_out >= high_in - spacing / 2 - 1e-6)
    top = out.data[:, :, -3:]
    assert top.max() > 0.9  # the bright top slab survived the resampling


def test_a_scan_inside_the_box_gets_exactly_the_training_grid():
    data = np.full((10, 12, 6), 0.5, np.float32)
    scan = Volume(data, np.diag([2.0, 2.0, 5.0, 1.0]), "small.nii.gz")
    out = scan_on_model_grid(scan, DATA, LowFieldDegradation(scale=2), upsampled=True)
    assert out.data.shape == (20, 24, 30)


def test_centred_on_moves_a_grid_centre_onto_the_reference_centre_and_keeps_its_axes():
    affine = np.diag([1.6, 1.6, 5.0, 1.0])
    affine[:3, 3] = [-10.0, 4.0, 7.0]
    reference = np.array([[0.0, -1.0, 0.0, 30.0], [1.0, 0.0, 0.0, -2.0], [0.0, 0.0, 1.0, 5.0], [0.0, 0.0, 0.0, 1.0]])
    moved = centred_on(affine, (112, 138, 40), reference, (179, 221, 200))
    centre = lambda a, shape: (a @ np.r_[(np.asarray(shape) - 1) / 2, 1.0])[:3]  # noqa: E731
    np.testing.assert_allclose(centre(moved, (112, 138, 40)), centre(reference, (179, 221, 200)))
    np.testing.assert_array_equal(moved[:3, :3], affine[:3, :3])
    assert moved is not affine and affine[0, 3] == -10.0  # the input is left as it was


def test_thick_slice_neighbours_lie_a_low_field_slice_apart_and_repeat_the_edge():
    """A ramp along S (value = height in mm) on a 5 mm grid, read on a 1 mm grid: the neighbours of a
    slice are the ramp 5 mm below and above it, the centre is the plain resampling, beyond the
    volume the edge value is kept."""
    lf = np.broadcast_to(np.arange(8, dtype=np.float32) * 5.0, (4, 4, 8)).copy()  # 4 x 4 x 40 mm
    lf_affine = np.diag([1.0, 1.0, 5.0, 1.0])
    target_affine = np.diag([1.0, 1.0, 1.0, 1.0])
    stack = thick_slice_neighbours(lf, lf_affine, (4, 4, 36), target_affine, 2, 5.0, 1)
    assert stack.shape == (3, 4, 4, 36)
    assert np.allclose(stack[1], resample_onto(lf, lf_affine, (4, 4, 36), target_affine))
    # the neighbour above slice z is slice z + 5 of the 1 mm grid; the ramp rises 5 between them
    assert np.allclose(stack[2][..., :31], stack[1][..., 5:], atol=1e-5)
    assert np.allclose(stack[0][..., 5:], stack[1][..., :31], atol=1e-5)
    assert np.allclose(stack[2][..., 8:22] - stack[1][..., 8:22], 5.0, atol=0.2)
    assert np.allclose(stack[0][..., 0], 0.0, atol=1e-4)  # 5 mm below the first slice: the edge repeated
    with pytest.raises(ValueError, match="positive"):
        thick_slice_neighbours(lf, lf_affine, (4, 4, 36), target_affine, 2, 0.0, 1)


def test_scan_neighbours_are_centred_on_the_scan_on_its_model_grid():
    rng = np.random.default_rng(0)
    scan = Volume(rng.random((10, 12, 6)).astype(np.float32), np.diag([2.0, 2.0, 5.0, 1.0]), "scan.nii.gz")
    data = {**DATA, "slice_axis": 2}
    grid = scan_on_model_grid(scan, data, LowFieldDegradation(scale=2), upsampled=False)
    centre, stack = scan_neighbours_on_model_grid(scan, data, LowFieldDegradation(scale=2), upsampled=False, context=2)
    assert stack.shape == (5, *grid.data.shape) and np.allclose(stack[2], grid.data)
    assert np.array_equal(centre.data, stack[2]) and np.allclose(centre.affine, grid.affine)
    # the grid's own slices are 1 mm apart: the next neighbour is 5 of them away
    assert np.allclose(stack[3][..., 8:20], grid.data[..., 13:25], atol=1e-5)
