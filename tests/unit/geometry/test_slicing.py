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


def test_context_indices_repeat_the_edge_slice_and_stay_inside_the_slab():
    from lfmri.geometry.slicing import context_indices

    assert context_indices(5, 0, 0, 10) == [5]
    assert context_indices(5, 2, 0, 10) == [3, 4, 5, 6, 7]
    assert context_indices(0, 2, 0, 10) == [0, 0, 0, 1, 2]
    assert context_indices(9, 1, 0, 10) == [8, 9, 9]
    assert context_indices(4, 2, 4, 6) == [4, 4, 4, 5, 5]  # a slab never borrows another slab's slices


def test_context_stack_of_zero_neighbours_is_the_plain_slice_batch():
    import torch

    from lfmri.geometry.slicing import context_stack

    slices = torch.rand(7, 5, 6)
    assert torch.equal(context_stack(slices, [0, 3, 6], 0), slices[[0, 3, 6], None])
    stack = context_stack(slices, [0, 6], 1)
    assert stack.shape == (2, 3, 5, 6)
    assert torch.equal(stack[0], slices[[0, 0, 1]]) and torch.equal(stack[1], slices[[5, 6, 6]])
