"""The names of lfmri's image metrics and which way each is optimised, without torch.

``lfmri-sweep summarize`` ranks runs by a logged metric name and must answer in a few seconds;
importing :mod:`lfmri.scoring.metrics` (torch, torchmetrics) alone takes longer than that.
"""

from __future__ import annotations

METRICS = ("psnr", "ssim", "nrmse", "hfen", "psnr_brain", "ssim_brain", "nrmse_brain", "hfen_brain")
LOWER_IS_BETTER = frozenset({"nrmse", "hfen", "nrmse_brain", "hfen_brain"})
GAIN_SEPARATOR = "_vs_"  # val/psnr_brain_vs_zerofill: the network's score minus a baseline's, same slices


def metric_mode(name: str) -> str:
    """``"min"`` or ``"max"``: how a logged metric such as ``val/nrmse_brain`` is optimised.

    Checkpoint selection and sweeps derive their mode from this, so that ``monitor=val/nrmse``
    keeps the lowest error rather than silently keeping the worst checkpoint. A gain over a
    baseline (``val/psnr_brain_vs_zerofill``) goes the way of its metric.
    """
    base = str(name).rsplit("/", 1)[-1].split(GAIN_SEPARATOR, 1)[0]
    if base in LOWER_IS_BETTER or base == "loss" or base.startswith("loss_"):
        return "min"
    if base in METRICS:
        return "max"
    raise ValueError(
        f"monitor={name!r}: unknown metric; use val/<metric> with one of {', '.join(METRICS)} or val/loss"
    )
