"""``lfmri.degrade.denoise3d``: the noise estimate, non-local means on a volume, the opt-in BM4D."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from scipy import ndimage

from lfmri.degrade import denoise3d
from lfmri.degrade.baselines import ZeroFill
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation, KSpaceZeroFillDegradation, draw_uniform
from lfmri.degrade.denoise3d import (
    AntsNLM,
    NonLocalMeans3D,
    VolumeDenoiser,
    blend_levels,
    estimate_sigma,
    estimate_slice_sigmas,
    make_denoisers,
    measurement_sigmas,
    sigma_levels,
)
from lfmri.degrade.lowfield import LowFieldDegradation
from lfmri.errors import ConfigError
from tests.helpers.volumes import phantom


def test_estimate_sigma_recovers_white_noise_on_anatomy():
    clean = phantom((128, 128, 3))[:, :, 1] / 1000
    rng = np.random.default_rng(0)
    for sigma in (0.01, 0.03, 0.06):
        noisy = clean + rng.normal(0.0, sigma, clean.shape)
        assert estimate_sigma(noisy) == pytest.approx(sigma, rel=0.08)


def test_slice_sigmas_recover_the_kspace_degradations_noise():
    """Per slice, from the complex LR: the std the degradation drew for that slice, within 25 % (the
    median ratio within 10 %; what anatomy leaks into the sub-band biases it up, most at low noise)."""
    hr = torch.from_numpy(np.ascontiguousarray(phantom((128, 128, 6)).transpose(2, 0, 1) / 1000))
    degradation = KSpaceDegradation(scale=2, hr_size=None, noise_std=(0.01, 0.05))
    lr_complex, true = [], []
    for i, image in enumerate(hr):
        true.append(float(draw_uniform(degradation.noise_std, (1, 1, 1), torch.Generator().manual_seed(i))))
        lr_complex.append(degradation.degrade(image[None], torch.Generator().manual_seed(i))[1][0].numpy())
    estimates = estimate_slice_sigmas(np.stack(lr_complex))
    np.testing.assert_allclose(estimates, true, rtol=0.25)
    assert np.median(estimates / np.array(true)) == pytest.approx(1.0, abs=0.1)
    assert np.ptp(true) > 0.01  # the slices really had different noise levels


def psnr_in(volume: np.ndarray, clean: np.ndarray, mask: np.ndarray) -> float:
    return float(-10 * np.log10(np.mean((np.clip(volume, 0, 1)[mask] - clean[mask]) ** 2)))


def test_nlm3d_removes_noise_from_a_noisy_phantom():
    clean = phantom((12, 40, 40)) / 1000
    rng = np.random.default_rng(1)
    noisy = (clean + rng.normal(0.0, 0.06, clean.shape)).astype(np.float32)
    sigmas = np.array([estimate_sigma(s) for s in noisy])
    denoised = NonLocalMeans3D()(noisy, sigmas)
    mask = clean > 0.05
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert psnr_in(denoised, clean, mask) > psnr_in(noisy, clean, mask) + 0.5


class Level(VolumeDenoiser):
    """Returns the noise level it was run at everywhere: shows which level each slice took."""

    level_ratio = 2.0

    def denoise(self, volume, sigma):
        return np.full_like(volume, sigma)


def test_each_slice_takes_the_levels_around_its_own_sigma():
    sigmas = np.array([0.01, 0.02, 0.04, 0.05, 0.03])
    levels = sigma_levels(sigmas, 2.0)
    assert levels[0] == pytest.approx(0.01) and levels[-1] == pytest.approx(0.05) and len(levels) == 4
    out = Level()(np.zeros((5, 2, 2), np.float32), sigmas)
    # a slice at a level takes it exactly; in between, a value between its two neighbouring levels
    assert out[0, 0, 0] == pytest.approx(0.01) and out[3, 0, 0] == pytest.approx(0.05)
    assert levels[levels < 0.03].max() < out[4, 0, 0] < levels[levels > 0.03].min()
    # one noise level (a real scan): one pass, no blending
    assert len(sigma_levels(np.full(7, 0.02), 2.0)) == 1
    np.testing.assert_array_equal(blend_levels([np.ones((3, 1, 1))], np.array([0.02]), np.full(3, 0.02)), 1.0)


def test_unknown_or_uninstalled_denoisers_name_the_option(monkeypatch):
    assert list(make_denoisers(["nlm3d"])) == ["nlm3d"] and make_denoisers([]) == {}
    with pytest.raises(ConfigError, match=r"classical=.*unknown denoiser 'bm3d'"):
        make_denoisers(["nlm3d", "bm3d"])
    real = importlib.util.find_spec
    monkeypatch.setattr(denoise3d.importlib.util, "find_spec", lambda name, *a: None if name == "bm4d" else real(name, *a))
    with pytest.raises(ConfigError, match=r"classical=\[\.\.\.,bm4d\] needs the bm4d package.*pip install bm4d"):
        make_denoisers(["nlm3d", "bm4d"])


def test_evaluate_refuses_bm4d_when_it_is_not_installed_before_any_work(monkeypatch, tmp_path, bicubic_checkpoint):
    from lfmri.evaluation.evaluator import evaluate
    from tests.helpers.config import evaluate_config

    real = importlib.util.find_spec
    monkeypatch.setattr(denoise3d.importlib.util, "find_spec", lambda name, *a: None if name == "bm4d" else real(name, *a))
    cfg = evaluate_config(output_dir=str(tmp_path / "out"), ckpt_path=str(bicubic_checkpoint), device="cpu",
                          classical=["nlm3d", "bm4d"])
    with pytest.raises(ConfigError, match="pip install bm4d"):
        evaluate(cfg)
    assert not (tmp_path / "out").exists()


def degrade_volume(degradation, hr: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """The complex LR views of every slice of ``hr`` (n, H, W), each slice seeded by its index."""
    views = [degradation.degrade(image[None], torch.Generator().manual_seed(i))[1][0] for i, image in enumerate(hr)]
    return torch.stack(views).numpy()


def noise_free(degradation):
    """The same degradation without noise: every draw consumes the generator alike, so the seeded
    views differ only by the noise."""
    if isinstance(degradation, LowFieldDegradation):
        return LowFieldDegradation(scale=degradation.scale, hr_size=degradation.hr_size, snr=(1e12, 1e12))
    return type(degradation)(scale=degradation.scale, hr_size=degradation.hr_size, noise_std=0.0)


DEGRADATIONS = {
    "kspace": KSpaceDegradation(scale=2, hr_size=None, noise_std=(0.02, 0.04)),
    "kspace_zerofill": KSpaceZeroFillDegradation(scale=2, hr_size=None, noise_std=(0.02, 0.04)),
    "bicubic": BicubicDegradation(scale=2, hr_size=None, noise_std=(0.02, 0.04)),
    "lowfield": LowFieldDegradation(scale=2, hr_size=None),  # SNR 8-20, background-weighted, clipped
}
# the estimate is within this factor of the true noise std on every slice (measured: 0.95-1.06 for
# the k-space pair; bicubic 1.2-1.55, its 4 mm LR of a 1 mm template keeps anatomy in the finest band;
# lowfield 0.93-1.21)
SIGMA_FACTOR = {"kspace": 1.15, "kspace_zerofill": 1.15, "bicubic": 1.7, "lowfield": 1.35}


@pytest.mark.parametrize("name", list(DEGRADATIONS))
def test_the_classical_row_estimates_and_removes_the_noise_of_every_degradation(name, mni_volume):
    """On real anatomy (MNI152 at 2 mm, 10 axial slices), degraded as evaluate degrades it:

    - the per-slice estimate (:func:`measurement_sigmas`) is within ``SIGMA_FACTOR[name]`` of the noise's
      true std on the measurement (the std of noisy minus noise-free measurement): main's estimator,
      the LR view's own finest band, read 0.37x the truth under ``kspace_zerofill`` and 0 (no noise
      at all) under ``bicubic`` and ``lowfield``, whose views have a zero imaginary channel;
    - nlm3d on the zero-filled volume (what evaluate's row denoises) removes at least a fifth of the
      noise's energy inside the head: it is closer to the zero-filled noise-free volume than its input.
    """
    degradation = DEGRADATIONS[name]
    hr = degradation.prepare_hr(torch.from_numpy(np.ascontiguousarray(mni_volume[::2, ::2, 70:90:2].transpose(2, 0, 1))).float())
    noisy, clean = degrade_volume(degradation, hr), degrade_volume(noise_free(degradation), hr)
    measured_noise = (degradation.measurement(torch.from_numpy(noisy)) - degradation.measurement(torch.from_numpy(clean))).numpy()
    channels = 2 if degradation.has_phase else 1
    true = np.sqrt(np.sum(np.abs(measured_noise) ** 2, axis=(1, 2)) / (channels * measured_noise[0].size))
    estimates = measurement_sigmas(degradation, noisy)
    factor = SIGMA_FACTOR[name]
    assert np.all(estimates / true < factor) and np.all(true / estimates < factor), (estimates, true)

    zerofill = ZeroFill(degradation)
    noisy_volume, clean_volume = (zerofill(torch.from_numpy(v)[:, None])[:, 0].numpy() for v in (noisy, clean))
    denoised = NonLocalMeans3D()(noisy_volume, estimates)
    head = ndimage.binary_dilation(clean_volume > 0.05, iterations=2)
    before = np.mean((noisy_volume - clean_volume)[head] ** 2)
    after = np.mean((denoised - clean_volume)[head] ** 2)
    # measured with the default nlm3d: 0.71 of the noise energy left (k-space pair), 0.63 (bicubic),
    # 0.61 (lowfield); main's estimates (0.37x, 0) left 0.9-1.0
    assert after < 0.8 * before, f"{name}: noise energy in the head {before:.2e} -> {after:.2e}"


def test_the_ants_row_names_its_pip_command_when_antspyx_is_missing(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(denoise3d.importlib.util, "find_spec", lambda name, *a: None if name == "ants" else real(name, *a))
    with pytest.raises(ConfigError, match=r"classical=\[\.\.\.,ants\] needs ANTsPy.*pip install antspyx"):
        make_denoisers(["nlm3d", "ants"])


def test_the_ants_row_removes_noise_from_a_noisy_phantom():
    pytest.importorskip("ants", reason="optional: pip install antspyx")
    """On a magnitude image, as the rows denoise: the Gaussian model gains in the head, and the Rician
    one (its bias correction darkens the head at this SNR) does not, which is why it is not the default."""
    clean = (phantom((10, 40, 40)) / 1000).astype(np.float32)
    rng = np.random.default_rng(2)
    noisy = np.abs(clean + rng.normal(0.0, 0.06, clean.shape) + 1j * rng.normal(0.0, 0.06, clean.shape)).astype(np.float32)
    denoised = make_denoisers(["ants"])["ants"](noisy, np.full(len(noisy), 0.06))
    mask = clean > 0.05
    assert denoised.shape == noisy.shape and denoised.dtype == np.float32
    assert psnr_in(denoised, clean, mask) > psnr_in(noisy, clean, mask) + 0.3
    assert psnr_in(AntsNLM("Rician")(noisy, np.full(len(noisy), 0.06)), clean, mask) < psnr_in(denoised, clean, mask)


def test_one_bare_name_is_one_denoiser_not_its_letters():
    """``classical=nlm3d`` without brackets was split into n, l, m, 3, d (unknown denoiser 'n')."""
    from lfmri.degrade.denoise3d import make_denoisers

    assert list(make_denoisers("nlm3d")) == ["nlm3d"] == list(make_denoisers(["nlm3d"]))
