"""Classical 3D denoisers: the bar a network must beat on a whole volume (evaluate's classical rows).

Every network in lfmri reads one slice at a time; a 3D denoiser applied to the zero-filled volume
uses the neighbouring slices, which show the same anatomy with independent noise. It is what a
careful user tries before trusting a network, so evaluate reports it beside zero-fill and bicubic.

- ``nlm3d`` (default, BSD licence): scikit-image's non-local means on the volume
  (:class:`NonLocalMeans3D`).
- ``bm4d`` (opt-in): Mäkinen et al.'s BM4D from the ``bm4d`` package, whose licence forbids
  commercial use: lfmri never depends on it; ``classical=[nlm3d,bm4d]`` enables it after
  ``pip install bm4d`` (:class:`BM4D`).
- ``ants`` (opt-in): ANTs' adaptive non-local means (``ants.denoise_image``, Apache-2.0), the
  denoiser MRI pipelines run; optional for its size (``pip install antspyx``), :class:`AntsNLM`.

Noise level (:func:`measurement_sigmas`): estimated from the data, never taken from the
degradation's settings, on the degradation's *measurement*, where its noise is white
(``Degradation.measurement``). Per slice, the wavelet MAD of the finest diagonal sub-band
(:func:`estimate_sigma`, Donoho's robust estimator: median(|d|) / 0.6745):

- ``kspace``: the complex LR is the measurement; the smaller estimate of its real and imaginary
  channels (:func:`estimate_slice_sigmas`). Both carry white Gaussian noise of the per-channel std
  sigma everywhere, background included, so the estimate has no Rician bias (a magnitude image's
  background is Rayleigh, std 0.66 sigma, and biases a magnitude-based MAD low on brains with much
  background, while anatomy biases it high).
- ``kspace_zerofill``: the LR view is the measurement zero-filled onto the HR grid, band-limited:
  its finest band holds no noise (main's estimator read 0.011 for noise drawn from 0.01-0.05, and
  the row changed almost nothing). ``measurement`` crops the view's k-space back to the measured
  block (the scan's grid, ``scan_maps``), which is the ``kspace`` LR sample for sample.
- ``bicubic`` and ``lowfield`` (slice degradations): the LR is a real image on the LR grid with
  white noise (lowfield: weighted, more in the background, and clipped at 0); the estimate runs on
  that image (the complex view's imaginary channel is zero: main took the minimum with it and
  estimated 0, so the row changed nothing).

Zero-filling keeps the per-pixel noise std: padding k-space with the ``ortho`` FFT divides the
variance by N/M and the mean-preserving factor multiplies it back, so the measurement's estimate
is the per-pixel noise std of the zero-filled volume the rows denoise. The degradations draw a
noise level per slice, so a volume has one sigma per slice, and the denoisers take them as such.

``lowfield-sim``'s test pairs (``data=paired_lowfield``) are the exception the slice view cannot
undo: the simulation adds white noise on the 1.6 x 1.6 x 5 mm low-field grid, and the pair's LR
slices are that volume resampled (cubic) onto 2 mm in-plane: along the 5 mm axis the noise is
interpolated over 2.5 pixels, so the finest diagonal band reads about 0.4x the per-pixel noise std
(measured on sim-nichart_Subj20_T1). :class:`NonLocalMeans3D`'s strength was chosen with that
estimate on those pairs too (its docstring).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence

import numpy as np
import torch

from lfmri.degrade.degradations import Degradation
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
        # a channel that is identically zero (a real image cast to complex) holds no noise to estimate
        return np.array([min(estimate_sigma(c) for c in (s.real, s.imag) if np.any(c)) if np.any(s) else 0.0
                         for s in lr], dtype=np.float64)
    return np.array([estimate_sigma(s) for s in lr], dtype=np.float64)


def measurement_sigmas(degradation: Degradation, lr_views: np.ndarray | torch.Tensor) -> np.ndarray:
    """One noise std per slice of the LR views ``(n, h, w)``, estimated on the degradation's measurement.

    ``degradation.measurement`` gives the image whose noise is white (the view itself, or for
    ``kspace_zerofill`` the zero-filled view cropped back to its measured k-space block), and
    :func:`estimate_slice_sigmas` estimates there: from the smaller of the real and imaginary
    channels when the degradation has phase, from the real image otherwise (``bicubic``,
    ``lowfield``: their complex view is the real LR with a zero imaginary channel).
    """
    measured = degradation.measurement(torch.as_tensor(np.asarray(lr_views)))
    measured = measured.numpy() if degradation.has_phase else measured.real.numpy()
    return estimate_slice_sigmas(measured)


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

    Defaults: one rule for every degradation, h = 0.6 sigma with the sigma of
    :func:`measurement_sigmas`, 5-voxel patches, search radius 3. Chosen on validation subjects of
    the two sites that may be tuned on, never on the unseen ones: nichart_Subj20_T1 and
    nichart_Subj21_T1 (validation of the shipped networks) and chris_PD (the PD site, a training
    subject of the networks; no network is tuned here), the central 16 slices of each, degraded as
    each shipped network degrades (its seeds), by pooled in-brain PSNR gain over zero-fill
    (``benchmarks/classical_tuning.py``, docs/models.md "Classical rows"):

    ========  ===================  ===================  =========================
    h_factor  kspace (srdensenet)  kspace_zerofill      lowfield (lowfield-sim)
    ========  ===================  ===================  =========================
    0.3       +0.47                +0.47                +0.01
    0.6       +0.52                +0.52                +0.03
    1.0       +0.40                +0.40                +0.04
    1.5       -0.02                -0.02                +0.02
    ========  ===================  ===================  =========================

    0.6 was the best on each of the three subjects under both k-space degradations (their
    zero-filled volumes and estimates are the same, sample for sample). Under ``lowfield-sim``
    every h is within 0.05 dB of zero-fill: there the noise is a small part of the in-brain error
    (blur, gamma darkening and 5 mm slices are most of it: zero-fill of the noise-free simulation
    is +0.22 dB above the noisy one on these slices, against +1.20 under ``kspace``, where the
    row reaches +0.52; ``--ceiling``), and its thick-slice pairs carry noise
    correlated along the 5 mm axis, which the estimate reads at about half its per-pixel std; so
    the k-space choice holds for all. The patch size and search radius are main's (chosen on
    nichart_Subj20_T1 under ``kspace``: h was flat between 0.2 and 0.4 sigma with 3-voxel patches,
    5-voxel patches gained 0.01 dB, radius 5 another 0.01 dB for four times the time).
    """

    def __init__(self, patch_size: int = 5, patch_distance: int = 3, h_factor: float = 0.6) -> None:
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


class AntsNLM(VolumeDenoiser):
    """ANTs' adaptive non-local means (Manjón et al. 2010; ``ants.denoise_image``, ANTs' DenoiseImage).

    The denoiser of ANTs-based MRI pipelines: it estimates the noise itself, locally, so it takes
    no sigma from lfmri and runs once per volume (the per-slice sigmas are only checked for shape).
    ``noise_model="Gaussian"``: inside the head the zero-filled magnitude's noise is Gaussian at
    these SNRs, and the Rician model's bias correction darkened a noisy magnitude phantom's head by
    7 % and lost 1.6 dB there, where the Gaussian model gained 0.5 dB
    (``tests/unit/degrade/test_denoise3d.py``). Untuned: with its defaults it lost 0.27 dB in the
    brain against zero-fill on the unseen k-space x2 subjects (docs/models.md, "Classical rows").
    Optional, like BM4D, but for its size (a 20 MB wheel with ITK inside), not its licence
    (Apache-2.0): ``pip install antspyx``, then ``classical=[nlm3d,ants]``.

    Args:
        noise_model: ``"Rician"`` or ``"Gaussian"``.
        patch_radius: ANTs' ``p`` (voxels; 1 = 3x3x3 patches, its default).
        search_radius: ANTs' ``r`` (voxels; 2 = 5x5x5 search, its default).
    """

    def __init__(self, noise_model: str = "Gaussian", patch_radius: int = 1, search_radius: int = 2) -> None:
        if importlib.util.find_spec("ants") is None:
            raise ConfigError(f"{CLASSICAL_OPTION}=[...,ants] needs ANTsPy, which lfmri does not install: "
                              f"pip install antspyx, or leave ants out of {CLASSICAL_OPTION}")
        if noise_model not in ("Rician", "Gaussian"):
            raise ValueError(f"AntsNLM: noise_model={noise_model!r}, expected 'Rician' or 'Gaussian'")
        self.noise_model = noise_model
        self.patch_radius = int(patch_radius)
        self.search_radius = int(search_radius)

    def __call__(self, volume: np.ndarray, sigmas: np.ndarray) -> np.ndarray:
        volume = np.asarray(volume, dtype=np.float32)
        if np.shape(sigmas) != (volume.shape[0],):
            raise ValueError(f"AntsNLM: {np.shape(sigmas)} sigmas for a volume of {volume.shape[0]} slices")
        return self.denoise(volume, float(np.median(sigmas)))

    def denoise(self, volume: np.ndarray, sigma: float) -> np.ndarray:
        import ants

        image = ants.from_numpy(np.ascontiguousarray(volume, dtype=np.float32))
        out = ants.denoise_image(image, noise_model=self.noise_model, p=self.patch_radius, r=self.search_radius)
        return np.asarray(out.numpy(), dtype=np.float32)

    def __repr__(self) -> str:
        return f"AntsNLM(noise_model={self.noise_model!r}, p={self.patch_radius}, r={self.search_radius})"


DENOISERS = {"nlm3d": NonLocalMeans3D, "bm4d": BM4D, "ants": AntsNLM}


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
