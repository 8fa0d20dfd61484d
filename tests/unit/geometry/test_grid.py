"""``lfmri.geometry.grid``: axis maps compose, invert and move affines; identity interpolation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfmri.geometry.grid import AxisMap, area_axis_map, interpolate_to_grid, kspace_axis_map, map_affine


def test_axis_maps_compose_invert_and_move_affines():
    m = kspace_axis_map(128, 64)
    assert (m.step, m.offset) == (2.0, 0.0)
    assert kspace_axis_map(129, 43) == AxisMap(3.0, 1.0)
    assert area_axis_map(2) == AxisMap(2.0, 0.5)
    inner = AxisMap(1.5, 2.0)
    both = m.then(inner)
    for k in range(5):
        assert both.offset + both.step * k == pytest.approx(inner.offset + inner.step * (m.offset + m.step * k))
    inv = inner.inverse()
    assert inv.then(inner) == AxisMap(1.0, 0.0)
    affine = np.diag([1.0, 2.0, 3.0, 1.0])
    affine[:3, 3] = [5, 6, 7]
    moved = map_affine(affine, {0: AxisMap(2.0, 0.5), 2: AxisMap(1.0, 4.0)})
    for idx in [(0, 0, 0), (3, 1, 2)]:
        old_idx = np.array([0.5 + 2 * idx[0], idx[1], 4 + idx[2]])
        np.testing.assert_allclose(moved @ np.r_[idx, 1], affine @ np.r_[old_idx, 1])


def test_interpolation_on_identity_grid_is_exact():
    x = torch.rand(2, 1, 9, 11)
    out = interpolate_to_grid(x, (9, 11), (AxisMap(1.0), AxisMap(1.0)))
    assert torch.allclose(out, x, atol=1e-5)


def test_flip_shift_is_zero_on_symmetric_grids_and_one_pixel_on_even_kspace_grids():
    import pytest

    from lfmri.geometry.grid import AxisMap, area_axis_map, flip_shift, kspace_axis_map

    assert flip_shift(area_axis_map(2), 32, 64) == 0
    assert flip_shift(area_axis_map(3), 11, 33) == 0
    assert flip_shift(kspace_axis_map(64, 32), 32, 64) == -1
    assert flip_shift(kspace_axis_map(62, 31), 31, 62) == 1
    assert flip_shift(kspace_axis_map(96, 32), 32, 96) == -2
    assert flip_shift(AxisMap(1.0), 40, 40) == 0
    with pytest.raises(ValueError, match="not whole"):
        flip_shift(AxisMap(2.0, 0.25), 8, 16)
