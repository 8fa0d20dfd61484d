"""Per-slice image quality: PSNR and SSIM over the whole slice and inside a brain mask.

Both are reported because Gibbs ringing and noise in the near-empty background dominate
whole-slice SSIM and can flip the ranking of methods (``../shared/design/evaluation.md``).
Predictions and references are clipped to [0, 1] and scored with data_range 1; SSIM uses
torchmetrics' Gaussian window (11x11, sigma 1.5), whose per-pixel map is averaged inside the mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure

from lfmri.losses.hfen import hfen

METRICS = ("psnr", "ssim", "psnr_brain", "ssim_brain")


def brain_mask(hr: torch.Tensor, threshold: float = 0.05, dilation: int = 2) -> torch.Tensor:
    """Voxels of the (normalised) reference above ``threshold``, dilated by ``dilation`` pixels."""
    mask = (hr > threshold).float()
    if dilation > 0:
        mask = F.max_pool2d(mask, 2 * dilation + 1, stride=1, padding=dilation)
    return mask > 0


@torch.no_grad()
def slice_metrics(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
    """Metrics per image of a (B, 1, H, W) batch, each a float tensor of shape (B,)."""
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
        "psnr_brain": torch.where(empty, nan, psnr_brain),
        "ssim_brain": torch.where(empty, nan, ssim_brain),
    }


def nrmse(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-image ``||pred - target|| / ||target||`` after clipping to [0, 1]."""
    pred, target = pred.float().clamp(0, 1), target.float().clamp(0, 1)
    return (pred - target).flatten(1).norm(dim=1) / target.flatten(1).norm(dim=1).clamp_min(1e-12)


__all__ = ["METRICS", "brain_mask", "slice_metrics", "nrmse", "hfen"]
