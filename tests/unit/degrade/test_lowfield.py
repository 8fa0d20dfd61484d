"""The 64 mT simulation: geometry, measured SNR and blur inside the configured ranges, seeding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.optimize import curve_fit
from scipy.special import erf

from lfmri.degrade.lowfield import LowFieldDegradation, measure_snr, noise_weight
from lfmri.geometry.nifti import voxel_sizes

HR_SPACING = 0.5  # fine HR grid so that its own voxel width hardly adds to the measured blur


LF_SHAPE, LF_SPACING = (32, 32, 12), (1.6, 1.6, 5.0)


TILT = 0.25  # slope of the tissue's lower edge (dz/dx): LF voxels sample it at every sub-voxel offset


def edge_z(x_mm: np.ndarray) -> np.ndarray:
    """World z (mm) of the tissue's lower edge at world x (mm)."""
    return HR_SPACING * (20 + TILT * (x_mm / HR_SPACING - 50))


def head(shape=(100, 100, 128)) -> np.ndarray:
    """A slab of tissue (0.8) in zero background; its lower edge is a tilted plane (slanted-edge target)."""
    i, _, k = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in shape), indexing="ij")
    partial = np.clip(k - edge_z(i * HR_SPACING) / HR_SPACING + 0.5, 0, 1)  # partial volume across one voxel
    data = 0.8 * partial
    data[:30], data[70:], data[:, :30], data[:, 70:], data[..., 108:] = 0, 0, 0, 0, 0
    return data.astype(np.float32)


def edge_sigma_mm(distance: np.ndarray, values: np.ndarray) -> float:
    """Gaussian sigma (mm) of an edge spread function: fit of a blurred step at distance 0."""
    model = lambda d, lo, hi, s: lo + (hi - lo) * 0.5 * (1 + erf(d / (np.sqrt(2) * s)))  # noqa: E731
    (_, _, sigma), _ = curve_fit(model, distance, values, p0=(0.0, 0.8, 2.0))
    return abs(float(sigma))


@pytest.mark.parametrize("rician", [False, True])
def test_measured_snr_and_blur_fall_inside_the_configured_ranges(rician):
    deg = LowFieldDegradation(lf_shape=LF_SHAPE, lf_spacing=LF_SPACING, blur_sigma=(0.4, 0.6), gamma=(1.0, 1.0),
                              snr=(6.0, 12.0), rician=rician)
    affine = np.diag([HR_SPACING] * 3 + [1.0])
    data = head()
    seen = []
    for seed in range(4):
        lf, lf_affine, params = deg.simulate_volume(data, affine, seed)
        assert lf.shape == LF_SHAPE and np.allclose(voxel_sizes(lf_affine), LF_SPACING)
        assert lf.min() >= 0 and lf.max() <= 1
        clean, _ = deg.clean_volume(data, affine, params)
        foreground = clean > deg.foreground_threshold  # the definition of the SNR
        background = noise_weight(clean, deg.background_alpha) > 0.999  # far from tissue: weight 1
        snr = measure_snr(lf, foreground, background, rician)
        assert 6.0 * 0.93 <= snr <= 12.0 * 1.07, (seed, snr, params)
        assert snr == pytest.approx(params.snr, rel=0.07)
        # slanted-edge blur, through-plane, on the noise-free output: value vs distance to the edge plane
        world = np.einsum("ij,jxyz->ixyz", lf_affine[:3], np.r_[np.indices(LF_SHAPE), np.ones((1, *LF_SHAPE))])
        distance = (world[2] - edge_z(world[0])) / np.hypot(1, TILT)
        use = (np.abs(distance) < 12) & (np.abs(world[0] - 25) < 6) & (np.abs(world[1] - 25) < 6)
        measured = edge_sigma_mm(distance[use], clean[use])
        # remove the HR voxel's own width; the tilt mixes in a little in-plane blur
        normal = np.sqrt((measured**2 - HR_SPACING**2 / 12) * (1 + TILT**2) - (TILT * params.blur_sigma * LF_SPACING[0]) ** 2)
        blur = normal / LF_SPACING[2]
        assert 0.4 * 0.95 <= blur <= 0.6 * 1.05, (seed, blur, params)
        assert blur == pytest.approx(params.blur_sigma, rel=0.05)
        seen.append(params)
    assert len({p.snr for p in seen}) == 4  # drawn per subject
    again = deg.simulate_volume(data, affine, 2)
    assert np.array_equal(again[0], deg.simulate_volume(data, affine, 2)[0])  # seeded


def test_gamma_darkens_mid_tones():
    deg = LowFieldDegradation(lf_shape=LF_SHAPE, lf_spacing=LF_SPACING, gamma=(1.5, 1.5))
    flat = LowFieldDegradation(lf_shape=LF_SHAPE, lf_spacing=LF_SPACING, gamma=(1.0, 1.0))
    affine = np.diag([HR_SPACING] * 3 + [1.0])
    params = deg.draw_params(np.random.default_rng(0))
    dark, _ = deg.clean_volume(head(), affine, params)
    plain, _ = flat.clean_volume(head(), affine, type(params)(params.blur_sigma, 1.0, params.snr))
    inside = plain > 0.7
    assert np.allclose(dark[inside], plain[inside] ** 1.5, atol=1e-5)


def test_slice_degradation_is_seeded_and_on_the_lr_grid(mni_slice):
    deg = LowFieldDegradation(scale=2, snr=(10.0, 10.0))
    hr = deg.prepare_hr(mni_slice)[None]
    lr, lr_complex = deg.degrade(hr, torch.Generator().manual_seed(1))
    assert lr.shape[-2:] == deg.lr_shape(hr.shape) and lr_complex.is_complex()
    assert torch.equal(lr, deg.degrade(hr, torch.Generator().manual_seed(1))[0])
    assert not torch.equal(lr, deg.degrade(hr, torch.Generator().manual_seed(2))[0])
    assert 0 <= float(lr.min()) and float(lr.max()) <= 1
