"""Classical 3D denoisers: the bar a network must beat on a whole volume (evaluate's classical rows).

Every network in lfmri reads one slice at a time; a 3D denoiser applied to the zero-filled volume
uses the neighbouring slices, which show the same anatomy with independent noise. It is what a
careful user tries before trusting a network, so evaluate reports it beside zero-fill and bicubic.

- ``nlm3d`` (default, BSD licence): scikit-image's non-local means on the volume
  (:class:`NonLocalMeans3D`).
- ``bm4d`` (opt-in): Mäkinen et al.'s BM4D from the ``bm4d`` package, whose licence forbids
  commercial use: lfmri never depends on it; ``classical=[nlm3d,bm4d]`` enables it after
  ``pip install bm4d`` (:class:`BM4D`).

Noise level (:func:`estimate_slice_sigmas`): estimated from the data, never taken from the
degradation's settings. Per slice, the wavelet MAD of the finest diagonal sub-band
(:func:`estimate_sigma`, Donoho's robust estimator: median(|d|) / 0.6745) on the *complex LR
image*, channel by channel (the smaller estimate of the real and imaginary channels:
:func:`estimate_slice_sigmas`). For a k-space degradation both channels carry white Gaussian noise
of the per-channel std sigma everywhere, background included, so the estimate has no Rician bias
(a magnitude image's background is Rayleigh, std 0.66 sigma, and biases a magnitude-based MAD low
on brains with much background, while anatomy biases it high). Zero-filling keeps the
per-pixel noise std: padding k-space with the ``ortho`` FFT divides the variance by N/M and the
mean-preserving factor multiplies it back, so the LR estimate is the noise std of the zero-filled
image. For degradations without phase (the LR is the magnitude or a real image) the same estimator
runs on that image. The degradations draw a noise level per slice, so a volume has one sigma per
slice, and the denoisers take them as such.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence

import numpy as np

from lfmri.errors import ConfigError

CLASSICAL_OPTION = "classical"  # evaluate's option listing the rows (conf/evaluate.yaml)


def estimate_sigma(image: np.ndarray) -> float:
    """Noise std of white Gaussian noise in a 2D real ``image``: Donoho's wavelet MAD.

    The finest diagonal sub-band of the Haar wavelet, ``(a - b - c + d) / 2`` over 2x2 blocks, has
    the noise std sigma (orthonormal) and almost no anatomy; median(|d|) / 0.6745 is sigma for
    Gaussian noise and ignores the few edges. Written here because ``skimage.restoration.estimate_sigma``
    (the same estimator, Daubechies-2) needs PyWavelets, a dependency for four lines.
    """
    x = np.asarray(image, dtype=np.float64)
    if x.ndim != 2 or min(x.shape) < 2:
        raise ValueError(f"estimate_sigma needs a 2D image of at least 2x2 pixels, got shape {x.shape}")
    h, w = x.shape[0] // 2 * 2, x.shape[1] // 2 * 2
    x = x[:h, :w]
    diagonal = (x[0::2, 0::2] - x[0::2, 1::2] - x[1::2, 0::2] + x[1::2, 1::2]) / 2.0
    return float(np.median(np.abs(diagonal)) / 0.6745)


def estimate_slice_sigmas(lr: np.ndarray) -> np.ndarray:
    """One noise std per slice of ``lr`` (n, h, w): complex LR slices, or real ones.

    Complex: the smaller of the estimates on the real and the imaginary channel. Anatomy left in
    the sub-band only raises a MAD estimate, so the channel with less of it is the better one; for
    the simulated k-space degradations (a real image, so nearly all anatomy in the real channel)
    it is the imaginary one, pure noise: on nichart_Subj20_T1 degraded as ``srdensenet-kspace-x2``
    is, estimate / true sigma was 1.03 (median; 0.96-1.18 for 90 % of the slices), where the real
    channel gave 1.51 (0.97-2.59) and the magnitude 1.17 (0.65-2.19).
    """
    lr = np.asarray(lr)
    if np.iscomplexobj(lr):
        return np.array([min(estimate_sigma(s.real), estimate_sigma(s.imag)) for s in lr], dtype=np.float64)
    return np.array([estimate_sigma(s) for s in lr], dtype=np.float64)


def sigma_levels(sigmas: np.ndarray, ratio: float) -> np.ndarray:
    """Noise levels spanning ``sigmas`` geometrically, neighbours at most ``ratio`` apart."""
    low, high = float(np.min(sigmas)), float(np.max(sigmas))
    if low <= 0.0 or high / low <= ratio:
        return np.array([float(np.median(sigmas))])
    count = int(np.ceil(np.log(high / low) / np.log(ratio))) + 1
    return np.geomspace(low, high, count)


def blend_levels(denoised: Sequence[np.ndarray], levels: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
    """Per slice, the denoised volumes of the two levels around its sigma, interpolated in log sigma."""
    if len(levels) == 1:
        return denoised[0]
    position = np.interp(np.log(np.clip(sigmas, levels[0], levels[-1])), np.log(levels), np.arange(len(levels)))
    below = np.minimum(np.floor(position).astype(int), len(levels) - 2)
    weight = (position - below).astype(np.float32)[:, None, None]
    stack = np.stack(denoised)
    index = np.arange(len(sigmas))
    return (1.0 - weight) * stack[below, index] + weight * stack[below + 1, index]


class VolumeDenoiser:
    """A 3D denoiser of a stacked volume (n slices, H, W) with one noise std per slice.

    A single 3D pass uses one noise level; the evaluation's degradations draw one per slice (0.01 to
    0.05 by default, a factor 5). The volume is therefore denoised at a few levels spanning the
    estimated sigmas, ``level_ratio`` apart, and each slice takes the interpolation (in log sigma)
    of the two levels around its own estimate (:func:`blend_levels`). A scan with one noise level
    costs one pass.
    """

    level_ratio = 2.0

    def __call__(self, volume: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
        volume = np.asarray(volume, dtype=np.float32)
        sigmas = np.asarray(sigmas, dtype=np.float64)
        if sigmas.shape != (volume.shape[0],):
            raise ValueError(f"{type(self).__name__}: {sigmas.shape} sigmas for a volume of {volume.shape[0]} slices")
        levels = sigma_levels(sigmas, self.level_ratio)
        return blend_levels([self.denoise(volume, float(s)).astype(np.float32) for s in levels], levels, sigmas)

    def denoise(self, volume: np.ndarray, sigma: float) -> np.ndarray:
        raise NotImplementedError


class NonLocalMeans3D(VolumeDenoiser):
    """scikit-image's non-local means on the whole volume (``channel_axis=None`` on a 3D array).

    ``h = h_factor * sigma`` with ``sigma`` passed to skimage too (``fast_mode=True``: it then
    subtracts the expected patch distance of pure noise, 2 sigma^2, before weighting).

    Args:
        patch_size: side of the cubic patches compared (voxels).
        patch_distance: search radius (voxels) around each voxel.
        h_factor: filtering strength relative to the estimated noise std.

    Defaults (patch_size=5, patch_distance=3, h_factor=0.3) chosen on ONE validation subject, never
    on the unseen ones: nichart_Subj20_T1 (a checkpoint-selection subject of ``srdensenet-kspace-x2``)
    degraded as that checkpoint degrades (k-space x2, noise 0.01-0.05 per slice, the seeds of its
    data config), by in-brain PSNR over its 103 scored slices, where zero-fill scores 22.635 dB:

    ==========  ==============  ========  ===================
    patch_size  patch_distance  h_factor  in-brain vs zero-fill
    ==========  ==============  ========  ===================
    3           3               0.2       +0.405
    3           3               0.3       +0.412
    3           3               0.4       +0.412
    3           3               0.6       +0.375
    3           3               0.8       +0.277
    3           3               1.0       +0.133
    5           3               0.3       +0.418
    5           5               0.3       +0.429
    ==========  ==============  ========  ===================

    (noise levels 2x apart, blended per slice; ``benchmarks/classical_tuning.py`` prints such a grid).
    h is flat between 0.2 and 0.4 sigma and falls beyond; the search radius 5 gained 0.011 dB for
    about four times the time of radius 3 (the grid ran on a shared 2-core CPU), so radius 3.
    """

    def __init__(self, patch_size: int = 5, patch_distance: int = 3, h_factor: float = 0.3) -> None:
        if patch_size < 1 or patch_distance < 1 or h_factor <= 0:
            raise ValueError(f"NonLocalMeans3D: patch_size={patch_size}, patch_distance={patch_distance}, "
                             f"h_factor={h_factor}: need positive values")
        self.patch_size = int(patch_size)
        self.patch_distance = int(patch_distance)
        self.h_factor = float(h_factor)

    def denoise(self, volume: np.ndarray, sigma: float) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        if sigma <= 0.0:
            return volume
        return denoise_nl_means(volume, patch_size=self.patch_size, patch_distance=self.patch_distance,
                                h=self.h_factor * sigma, sigma=sigma, fast_mode=True, channel_axis=None,
                                preserve_range=True)

    def __repr__(self) -> str:
        return f"NonLocalMeans3D(patch_size={self.patch_size}, patch_distance={self.patch_distance}, h={self.h_factor} sigma)"


class BM4D(VolumeDenoiser):
    """BM4D (Mäkinen, Azzari and Foi 2020) from the ``bm4d`` package, with the estimated sigma.

    Never a dependency of lfmri: the package's licence allows no commercial use. A user who may
    use it installs it (``pip install bm4d``) and enables the row with ``classical=[nlm3d,bm4d]``.
    """

    def __init__(self) -> None:
        if importlib.util.find_spec("bm4d") is None:
            raise ConfigError(f"{CLASSICAL_OPTION}=[...,bm4d] needs the bm4d package, which lfmri does not install "
                              "(its licence forbids commercial use): pip install bm4d, or leave bm4d out of "
                              f"{CLASSICAL_OPTION}")

    def denoise(self, volume: np.ndarray, sigma: float) -> np.ndarray:
        import bm4d

        if sigma <= 0.0:
            return volume
        return np.asarray(bm4d.bm4d(volume, sigma_psd=sigma), dtype=np.float32)

    def __repr__(self) -> str:
        return "BM4D()"


DENOISERS = {"nlm3d": NonLocalMeans3D, "bm4d": BM4D}


def make_denoisers(names: Sequence[str] | str | None) -> Mapping[str, VolumeDenoiser]:
    """The classical rows ``names`` (``classical=[nlm3d]`` by default) by table name."""
    out: dict[str, VolumeDenoiser] = {}
    names = [names] if isinstance(names, str) else list(names or ())  # one bare name is a list of one, not of letters
    for name in names:
        if name not in DENOISERS:
            raise ConfigError(f"{CLASSICAL_OPTION}={list(names)}: unknown denoiser {name!r}; "
                              f"choose from {sorted(DENOISERS)} (or [] for none)")
        out[str(name)] = DENOISERS[name]()
    return out
