"""``lfmri.inference.uncertainty``: TTA spread, MC dropout, error correlation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfmri.inference.uncertainty import (
    DIHEDRAL,
    IDENTITY,
    apply,
    error_correlation,
    invert,
    mc_dropout,
    mirror_shifts,
    predictive_spread,
)


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


def _zero_insertion(x: torch.Tensor, offset: int) -> torch.Tensor:
    """x2 'upsampling' that puts LR pixel j on HR pixel 2j + offset: the centred k-space grid's
    correspondence (offset 0 for even LR sizes, 1 for odd), and exactly equivariant under its mirrors."""
    out = x.new_zeros((*x.shape[:-2], 2 * x.shape[-2], 2 * x.shape[-1]))
    out[..., offset::2, offset::2] = x
    return out


@pytest.mark.parametrize("size", [(8, 8), (7, 7), (6, 10)])
def test_tta_on_the_kspace_grid_puts_every_orientation_back_in_place(size):
    """A network that respects the k-space grid's geometry has zero TTA spread and its own output as
    the TTA mean; plain flips (the earlier inverse) leave the orientations one HR pixel apart."""
    from lfmri.degrade.degradations import KSpaceDegradation

    degradation = KSpaceDegradation(scale=2, hr_size=None)
    x = torch.rand(2, 1, *size)
    offset = size[0] % 2  # kspace_axis_map(2M, M): LR j at HR 2j + (M - 2 (M // 2))
    net = lambda t: _zero_insertion(t, offset)  # noqa: E731
    out = net(x)
    shifts = mirror_shifts(degradation, x.shape, out.shape)
    assert shifts == ((-1, -1) if offset == 0 else (1, 1))
    transforms = DIHEDRAL if size[0] == size[1] else ((0, False), (2, False), (0, True), (2, True))
    mean, std = predictive_spread(net, x, transforms, shifts=shifts)
    assert std.max() < 1e-6 and torch.allclose(mean, out, atol=1e-6)
    _, misplaced = predictive_spread(net, x, transforms)
    assert misplaced.max() > 0.1


def test_tta_on_the_pixel_area_grid_needs_no_shift():
    from lfmri.degrade.degradations import BicubicDegradation

    x = torch.rand(1, 1, 6, 6)
    net = lambda t: torch.nn.functional.interpolate(t, scale_factor=2, mode="nearest")  # noqa: E731
    shifts = mirror_shifts(BicubicDegradation(scale=2), x.shape, (12, 12))
    assert shifts == (0, 0)
    mean, std = predictive_spread(net, x, DIHEDRAL, shifts=shifts)
    assert std.max() < 1e-6 and torch.allclose(mean, net(x))


def test_plain_inverse_undoes_apply_for_every_orientation():
    x = torch.rand(1, 1, 5, 7)
    for t in DIHEDRAL:
        assert torch.equal(invert(apply(x, t), t), x)


class _ZeroInsertion(torch.nn.Module):
    """A 'network' exactly equivariant under the k-space grid's mirrors (see :func:`_zero_insertion`)."""

    scale = 2
    input_mode = "lr"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _zero_insertion(x, x.shape[-2] % 2)


def test_self_ensemble_is_the_grid_aligned_mean_of_the_eight_orientations():
    from lfmri.degrade.degradations import KSpaceDegradation
    from lfmri.inference.volume import NetworkRunner

    degradation = KSpaceDegradation(scale=2, hr_size=None)
    x = torch.rand(2, 1, 8, 8)
    exact = NetworkRunner(_ZeroInsertion(), self_ensemble=True, degradation=degradation)
    assert torch.allclose(exact(x), exact.single(x), atol=1e-6)  # nothing to average away

    torch.manual_seed(0)
    learned = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.PixelShuffle(2)).eval()
    learned.scale, learned.input_mode = 2, "lr"
    plain = NetworkRunner(learned, degradation=degradation)
    ensemble = NetworkRunner(learned, self_ensemble=True, degradation=degradation)
    with torch.no_grad():
        one, mean = plain(x), ensemble(x)
        by_hand = sum(invert(learned(apply(x, t)), t, (-1, -1)) for t in DIHEDRAL) / 8
    assert not torch.allclose(one, mean, atol=1e-3)
    assert torch.allclose(mean, by_hand, atol=1e-5)
    with pytest.raises(ValueError, match="degradation"):
        NetworkRunner(learned, self_ensemble=True)
