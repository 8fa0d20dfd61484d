"""``lfmri.inference.uncertainty``: TTA spread, MC dropout, error correlation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfmri.inference.uncertainty import DIHEDRAL, IDENTITY, error_correlation, mc_dropout, predictive_spread


def test_uncertainty_is_zero_for_a_deterministic_model_without_augmentation():
    net = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    x = torch.rand(2, 1, 12, 10)
    with torch.no_grad():
        mean, std = predictive_spread(net, x, IDENTITY, repeats=4)
        assert torch.equal(std, torch.zeros_like(std)) and torch.allclose(mean, net(x), atol=1e-6)
        # a kernel without the symmetries of the square sees the 8 orientations differently
        _, tta_std = predictive_spread(net, x, DIHEDRAL)
        assert tta_std.mean() > 1e-3
        # an equivariant operation gives zero spread under the same augmentation
        _, identity_std = predictive_spread(lambda t: 2 * t, x, DIHEDRAL)
        assert identity_std.max() < 1e-6


def test_mc_dropout_needs_dropout_and_varies_with_it():
    plain = torch.nn.Conv2d(1, 1, 3, padding=1).eval()
    with pytest.raises(ValueError, match="has none"), mc_dropout(plain, True):
        pass
    with_dropout = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.Dropout(0.5), torch.nn.Conv2d(8, 1, 1)).eval()
    x = torch.rand(1, 1, 8, 8)
    with torch.no_grad(), mc_dropout(with_dropout, True):
        _, std = predictive_spread(with_dropout, x, IDENTITY, repeats=8)
    assert std.mean() > 1e-3 and not with_dropout[1].training


def test_error_correlation_is_spearman_inside_the_mask():
    error = torch.arange(16.0).reshape(1, 1, 4, 4)
    mask = torch.ones_like(error)
    assert error_correlation(error ** 3, error, mask)[0] == pytest.approx(1.0)
    assert error_correlation(-error, error, mask)[0] == pytest.approx(-1.0)
    assert np.isnan(error_correlation(torch.ones_like(error), error, mask)[0])
