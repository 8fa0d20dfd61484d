"""``lfmri.geometry.resample``: grids centred on each other."""

from __future__ import annotations

import numpy as np

from lfmri.geometry.resample import centred_on


def test_centred_on_moves_a_grid_centre_onto_the_reference_centre_and_keeps_its_axes():
    affine = np.diag([1.6, 1.6, 5.0, 1.0])
    affine[:3, 3] = [-10.0, 4.0, 7.0]
    reference = np.array([[0.0, -1.0, 0.0, 30.0], [1.0, 0.0, 0.0, -2.0], [0.0, 0.0, 1.0, 5.0], [0.0, 0.0, 0.0, 1.0]])
    moved = centred_on(affine, (112, 138, 40), reference, (179, 221, 200))
    centre = lambda a, shape: (a @ np.r_[(np.asarray(shape) - 1) / 2, 1.0])[:3]  # noqa: E731
    np.testing.assert_allclose(centre(moved, (112, 138, 40)), centre(reference, (179, 221, 200)))
    np.testing.assert_array_equal(moved[:3, :3], affine[:3, :3])
    assert moved is not affine and affine[0, 3] == -10.0  # the input is left as it was
