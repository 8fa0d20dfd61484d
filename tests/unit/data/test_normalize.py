"""``lfmri.data.normalize``: percentile normalisation and its inverse."""

from __future__ import annotations

import numpy as np
import pytest

from lfmri.data.normalize import percentile_intensity


def test_percentile_normalisation_maps_to_unit_range_and_restores():
    data = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    intensity = percentile_intensity(data, (1, 99), "vol")
    norm = intensity.apply(data)
    assert norm.min() == 0 and norm.max() == 1
    assert (norm == 1).sum() == pytest.approx(10, abs=1)
    inside = (norm > 0) & (norm < 1)
    np.testing.assert_allclose(intensity.restore(norm)[inside], data[inside], rtol=1e-5)
    with pytest.raises(ValueError, match="vol: intensity percentiles"):
        percentile_intensity(np.ones((3, 3, 3)), (1, 99), "vol")
    with pytest.raises(ValueError, match="percentiles"):
        percentile_intensity(data, (99, 1), "vol")
