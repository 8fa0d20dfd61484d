"""``lfmri.degrade.degradations``: intensities, noise, seeding and LR grids of the k-space and bicubic degradations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lfmri.degrade.baselines import Bicubic, ZeroFill
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation, KSpaceZeroFillDegradation
from lfmri.degrade.kspace import fft2c, resize_complex
from tests.helpers.volumes import phantom


def brain_slice(size=128) -> torch.Tensor:
    vol = phantom((size, size, 8))
    return torch.from_numpy(vol[:, :, 4] / vol.max())


def smooth_image(n=128) -> torch.Tensor:
    """A band-limited image (few low frequencies): interpolation errors come from the grid only."""
    r = torch.arange(n, dtype=torch.float64)
    y, x = torch.meshgrid(r, r, indexing="ij")
    img = 0.5 + 0.2 * torch.cos(2 * math.pi * 3 * x / n) * torch.sin(2 * math.pi * 5 * y / n + 0.3)
    return img.float()


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_kspace_lr_and_hr_have_the_same_mean_intensity(scale, mni_slice):
    deg = KSpaceDegradation(scale=scale, hr_size=120, noise_std=0.0)
    hr = deg.prepare_hr(mni_slice)
    lr, lr_complex = deg.degrade(hr, gen())
    assert lr.shape == (120 // scale, 120 // scale)
    # the DC coefficient is kept exactly: the complex image has exactly the HR mean
    assert lr_complex.real.mean() / hr.mean() == pytest.approx(1.0, abs=1e-3)
    # the magnitude folds negative Gibbs ringing upwards, so it sits slightly above (more ringing
    # at coarser LR grids: 30 pixels across a head at x4)
    assert lr.mean() / hr.mean() == pytest.approx(1.0, abs=0.02 if scale == 2 else 0.05)


def test_kspace_hr_resize_keeps_mean_intensity_and_range(mni_slice):
    deg = KSpaceDegradation(hr_size=(64, 96))
    image = mni_slice
    hr = deg.prepare_hr(image)
    assert hr.shape == (64, 96)
    assert 0 <= hr.min() and hr.max() <= 1
    assert hr.mean() / image.mean() == pytest.approx(1.0, abs=0.02)


@pytest.mark.parametrize("sigma", [0.01, 0.05])
def test_kspace_noise_has_the_configured_image_domain_std(sigma):
    deg = KSpaceDegradation(noise_std=(sigma, sigma))
    clean = KSpaceDegradation(noise_std=0.0)
    hr = torch.full((128, 128), 0.6)
    _, noisy = deg.degrade(hr, gen(1))
    _, ref = clean.degrade(hr, gen(1))
    noise = noisy - ref
    assert noise.real.std() == pytest.approx(sigma, rel=0.05)
    assert noise.imag.std() == pytest.approx(sigma, rel=0.05)
    # in a bright region the magnitude noise is nearly Gaussian with the same std
    lr, _ = deg.degrade(hr, gen(2))
    assert lr.std() == pytest.approx(sigma, rel=0.1)


def test_noise_level_is_drawn_per_slice_within_the_range():
    deg = KSpaceDegradation(noise_std=(0.01, 0.05))
    clean = KSpaceDegradation(noise_std=0.0)
    hr = torch.full((16, 128, 128), 0.5)
    _, noisy = deg.degrade(hr, gen(3))
    _, ref = clean.degrade(hr, gen(3))
    stds = (noisy - ref).real.flatten(1).std(dim=1)
    assert stds.min() > 0.009 and stds.max() < 0.052
    assert stds.max() - stds.min() > 0.01  # not one level for all slices


def test_degradations_are_pure_and_seeded():
    hr = KSpaceDegradation().prepare_hr(brain_slice())
    deg = KSpaceDegradation()
    a, _ = deg.degrade(hr, gen(5))
    b, _ = deg.degrade(hr, gen(5))
    c, _ = deg.degrade(hr, gen(6))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(hr, KSpaceDegradation().prepare_hr(brain_slice()))  # input untouched


def test_kspace_zerofill_equals_zero_filling_the_kspace_lr():
    hr = KSpaceDegradation().prepare_hr(brain_slice())
    lr, lr_complex = KSpaceDegradation(noise_std=0.03).degrade(hr, gen(4))
    zf, _ = KSpaceZeroFillDegradation(noise_std=0.03).degrade(hr, gen(4))
    assert zf.shape == hr.shape
    baseline = ZeroFill(KSpaceDegradation())(lr_complex[None, None])[0, 0]
    assert torch.allclose(zf, baseline, atol=1e-5)
    # 25 % of k-space at x2: exactly the central 64x64 block is non-zero
    k = fft2c(KSpaceZeroFillDegradation().degrade(hr, gen())[1])
    assert (k.abs() > 1e-4).sum() <= 64 * 64
    assert k[:32].abs().max() < 1e-4


def test_the_measurement_of_a_zero_filled_view_is_the_kspace_lr_it_came_from():
    """``measurement`` crops a zero-filled view back to its measured k-space block: sample for sample
    the ``kspace`` degradation's complex LR (white noise of the drawn std, where the view's finest
    band has none); views that are the measurement come back unchanged."""
    hr = KSpaceDegradation().prepare_hr(brain_slice())
    _, lr_complex = KSpaceDegradation(noise_std=0.03).degrade(hr, gen(4))
    zero_filling = KSpaceZeroFillDegradation(noise_std=0.03)
    _, view = zero_filling.degrade(hr, gen(4))
    measured = zero_filling.measurement(view[None])[0]
    assert measured.shape == lr_complex.shape == (64, 64)
    assert torch.allclose(measured, lr_complex, atol=1e-5)
    assert KSpaceDegradation().measurement(lr_complex) is lr_complex
    lr, _ = BicubicDegradation().degrade(hr, gen())
    assert BicubicDegradation().measurement(lr) is lr


def test_kspace_lr_pixels_sit_on_even_hr_pixels():
    """Grid alignment: a k-space crop samples the band-limited image at HR pixels 2j."""
    hr = smooth_image()
    lr, _ = KSpaceDegradation(noise_std=0.0).degrade(hr, gen())
    assert torch.allclose(lr, hr[::2, ::2], atol=1e-4)


def test_aligned_bicubic_beats_the_naive_grid_after_a_kspace_crop():
    deg = KSpaceDegradation(noise_std=0.0)
    hr = deg.prepare_hr(brain_slice())
    lr, _ = deg.degrade(hr, gen())
    aligned = Bicubic(deg)(lr[None, None])[0, 0]
    naive = F.interpolate(lr[None, None], scale_factor=2, mode="bicubic", align_corners=False)[0, 0]
    err = lambda x: ((x.clamp(0, 1) - hr) ** 2).mean()  # noqa: E731
    assert 10 * math.log10(err(naive) / err(aligned)) > 1.5  # dB gained by the right grid


def blob(n: int, centre: tuple[float, float], width: float = 3.0) -> torch.Tensor:
    r = torch.arange(n, dtype=torch.float64)
    y, x = torch.meshgrid(r, r, indexing="ij")
    return torch.exp(-((y - centre[0]) ** 2 + (x - centre[1]) ** 2) / (2 * width**2)).float()


def centroid(img: torch.Tensor) -> tuple[float, float]:
    r = torch.arange(img.shape[0], dtype=torch.float64)
    w = img.double() / img.sum()
    return float((w.sum(1) * r).sum()), float((w.sum(0) * r).sum())


@pytest.mark.parametrize(
    "deg, expected",
    [
        # area grid: LR pixel j covers HR pixels 2j, 2j+1 -> HR 20.5 is LR 10.0
        (BicubicDegradation(scale=2), (10.0, 15.0)),
        # k-space grid: LR pixel j sits on HR pixel 2j -> HR 20.5 is LR 10.25
        (KSpaceDegradation(scale=2, hr_size=64, noise_std=0.0), (10.25, 15.25)),
    ],
)
def test_lr_grid_positions_match_the_declared_maps(deg, expected):
    lr, _ = deg.degrade(blob(64, (20.5, 30.5)), gen())
    assert centroid(lr) == pytest.approx(expected, abs=0.03)
    maps = deg.lr_maps((64, 64))
    assert [m.offset + m.step * e for m, e in zip(maps, expected)] == pytest.approx([20.5, 30.5])


def test_bicubic_degradation_baselines_use_the_pixel_area_grid():
    deg = BicubicDegradation(scale=2)
    hr = smooth_image(64)
    lr, lr_complex = deg.degrade(hr, gen())
    assert lr.shape == (32, 32)
    assert torch.equal(lr_complex.real, lr)
    up = Bicubic(deg)(lr[None, None])[0, 0]
    naive = F.interpolate(lr[None, None], scale_factor=2, mode="bicubic", align_corners=False)[0, 0]
    assert torch.allclose(up, naive, atol=1e-5)  # the area grid is what F.interpolate assumes
    # zero-fill shifted onto the area grid beats plain k-space zero-padding of the magnitude
    zf = ZeroFill(deg)(lr[None, None])[0, 0]
    assert ((zf - hr) ** 2).mean() < ((resize_complex(lr, (64, 64)).abs() - hr) ** 2).mean() / 5


def test_bicubic_hr_preparation_trims_odd_sizes_to_the_scale():
    deg = BicubicDegradation(scale=2)
    hr = deg.prepare_hr(torch.rand(33, 35))
    assert hr.shape == (32, 34)
    assert deg.degrade(hr, gen())[0].shape == (16, 17)
    padded = BicubicDegradation(scale=2, hr_size=40).prepare_hr(torch.ones(33, 35))
    assert padded.shape == (40, 40) and padded.sum() == 33 * 35


def test_bicubic_noise_std():
    lr, _ = BicubicDegradation(noise_std=0.02).degrade(torch.full((128, 128), 0.5), gen())
    assert lr.std() == pytest.approx(0.02, rel=0.1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"scale": 0}, "scale"),
        ({"scale": 3, "hr_size": 128}, "not divisible"),
        ({"noise_std": [0.05, 0.01]}, "noise_std"),
        ({"noise_std": [-0.1, 0.1]}, "noise_std"),
        ({"hr_size": [0, 4]}, "hr_size"),
    ],
)
def test_bad_degradation_parameters_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KSpaceDegradation(**kwargs)
