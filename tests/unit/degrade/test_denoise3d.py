"""``lfmri.degrade.denoise3d``: the noise estimate, non-local means on a volume, the opt-in BM4D."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from lfmri.degrade import denoise3d
from lfmri.degrade.degradations import KSpaceDegradation, draw_uniform
from lfmri.degrade.denoise3d import (
    NonLocalMeans3D,
    VolumeDenoiser,
    blend_levels,
    estimate_sigma,
    estimate_slice_sigmas,
    make_denoisers,
    sigma_levels,
)
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


def test_one_bare_name_is_one_denoiser_not_its_letters():
    """``classical=nlm3d`` without brackets was split into n, l, m, 3, d (unknown denoiser 'n')."""
    from lfmri.degrade.denoise3d import make_denoisers

    assert list(make_denoisers("nlm3d")) == ["nlm3d"] == list(make_denoisers(["nlm3d"]))
