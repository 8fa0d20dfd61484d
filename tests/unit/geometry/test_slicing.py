"""``lfmri.geometry.slicing``: slices out and back, and the foreground rule."""

from __future__ import annotations

import numpy as np

from lfmri.geometry.slicing import foreground_fraction, put_slices, take_slices


def test_slicing_round_trip_and_selection():
    data = np.zeros((4, 5, 6), np.float32)
    data[:, :, 2:4] = 1.0
    data[0, 0, 5] = 1.0  # a speck: below the minimum fraction
    for axis in range(3):
        assert np.array_equal(put_slices(take_slices(data, axis), axis), data)
    assert take_slices(data, 2).shape == (6, 4, 5)
    # the rule SliceDataModule.selected_slices applies (min_foreground_fraction)
    assert list(np.flatnonzero(foreground_fraction(data, 2, threshold=0.5) >= 0.1)) == [2, 3]
