"""Per-slice image quality over the whole slice and inside a brain mask: PSNR, SSIM, NRMSE, HFEN.

Every metric is reported twice because Gibbs ringing and noise in the near-empty background
dominate whole-slice scores and can flip the ranking of methods (docs/inference.md, "Evaluation").
Predictions and references are clipped to [0, 1] first. With ``pred`` the prediction, ``hr`` the
reference and ``M`` the mask (all ones for the whole slice):

- PSNR: ``-10 log10(mean_M (pred - hr)^2)`` with data range 1 (higher is better);
- SSIM: torchmetrics' Gaussian window (11x11, sigma 1.5), its per-pixel map averaged over ``M``
  (higher is better);
- NRMSE: ``||M (pred - hr)|| / ||M hr||``, the RMS error relative to the RMS of the reference, so
  independent of the mask's size (lower is better; 0 for a perfect prediction);
- HFEN (Ravishankar & Bresler 2011): ``||M (LoG(pred) - LoG(hr))|| / ||M LoG(hr)||`` with the
  zero-sum Laplacian-of-Gaussian of :mod:`lfmri.losses.hfen` (sigma 1.5, 11x11, reflect padding),
  applied to the whole slice before masking: the relative error in edges and fine texture
  (lower is better; blind to constant offsets).

Masked scores are NaN for a slice whose mask is empty; NRMSE and HFEN are NaN when the reference
has no signal (or no LoG response) inside the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lfmri.losses.hfen import log_filter, log_kernel
from lfmri.scoring.names import LOWER_IS_BETTER, METRICS, metric_mode
HFEN_SIGMA = 1.5


def brain_mask(hr: torch.Tensor, threshold: float = 0.05, dilation: int = 2) -> torch.Tensor:
    """Voxels of the (normalised) reference above ``threshold``, dilated by ``dilation`` pixels."""
    mask = (hr > threshold).float()
    if dilation > 0:
        mask = F.max_pool2d(mask, 2 * dilation + 1, stride=1, padding=dilation)
    return mask > 0


def _relative_norm(error: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Per image ``||M error|| / ||M reference||``; NaN where the denominator is 0."""
    if mask is not None:
        maskf = mask.float()
        error, reference = error * maskf, reference * maskf
    num = error.flatten(1).norm(dim=1)
    den = reference.flatten(1).norm(dim=1)
    return torch.where(den > 0, num / den.clamp_min(1e-30), torch.full_like(num, float("nan")))


def nrmse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Per-image ``||M (pred - target)|| / ||M target||`` after clipping to [0, 1] (see module doc)."""
    pred, target = pred.float().clamp(0, 1), target.float().clamp(0, 1)
    return _relative_norm(pred - target, target, mask)


def hfen(
    pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None, sigma: float = HFEN_SIGMA
) -> torch.Tensor:
    """Per-image ``||M (LoG(pred) - LoG(target))|| / ||M LoG(target)||`` after clipping to [0, 1]."""
    pred, target = pred.float().clamp(0, 1), target.float().clamp(0, 1)
    kernel = log_kernel(sigma).to(pred.device)
    log_target = log_filter(target, kernel)
    return _relative_norm(log_filter(pred, kernel) - log_target, log_target, mask)


@torch.no_grad()
def slice_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every metric of ``METRICS`` per image of a (B, 1, H, W) batch, each a float tensor (B,).

    Always in float32, also inside a bf16/fp16 autocast region (mixed-precision validation): SSIM's
    and HFEN's convolutions in bf16 move SSIM by ~0.01.
    """
    with torch.autocast(device_type=pred.device.type, enabled=False):
        return _slice_metrics(pred, target, mask)


def _slice_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    pred = pred.float().clamp(0.0, 1.0)
    target = target.float().clamp(0.0, 1.0)
    maskf = mask.float()
    psnr = peak_signal_noise_ratio(pred, target, data_range=1.0, reduction="none", dim=(1, 2, 3))
    ssim, ssim_map = structural_similarity_index_measure(
        pred, target, data_range=1.0, reduction="none", return_full_image=True
    )
    inside = maskf.flatten(1).sum(dim=1)
    mse_brain = ((pred - target) ** 2 * maskf).flatten(1).sum(dim=1) / inside
    psnr_brain = -10.0 * torch.log10(mse_brain.clamp_min(1e-10))
    ssim_brain = (ssim_map * maskf).flatten(1).sum(dim=1) / inside
    empty = inside == 0
    nan = torch.full_like(psnr_brain, float("nan"))
    return {
        "psnr": psnr.clamp_max(100.0),
        "ssim": ssim,
        "nrmse": nrmse(pred, target),
        "hfen": hfen(pred, target),
        "psnr_brain": torch.where(empty, nan, psnr_brain),
        "ssim_brain": torch.where(empty, nan, ssim_brain),
        "nrmse_brain": nrmse(pred, target, mask),
        "hfen_brain": hfen(pred, target, mask),
    }


__all__ = ["METRICS", "LOWER_IS_BETTER", "metric_mode", "brain_mask", "slice_metrics", "nrmse", "hfen"]
