"""``lfmri.scoring.metrics``: PSNR/SSIM/NRMSE/HFEN on known values, brain masks, monitor modes, float32 under autocast."""

from __future__ import annotations

import math

import pytest
import torch
from hydra.utils import instantiate

from lfmri.losses.hfen import log_filter, log_kernel
from lfmri.scoring.metrics import brain_mask, hfen, metric_mode, nrmse, slice_metrics
from tests.helpers.config import compose
from tests.helpers.volumes import head_slices


def test_psnr_and_masked_metrics_on_known_inputs():
    target = torch.zeros(2, 1, 32, 32)
    target[:, :, 8:24, 8:24] = 0.8
    pred = target + 0.1
    mask = brain_mask(target, 0.05, dilation=0)
    m = slice_metrics(pred, target, mask)
    assert m["psnr"].tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert m["psnr_brain"].tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    # an error outside the mask changes whole-slice but not in-brain scores
    pred2 = pred.clone()
    pred2[:, :, :4, :4] = 1.0
    m2 = slice_metrics(pred2, target, mask)
    assert m2["psnr"][0] < m["psnr"][0]
    assert float(m2["psnr_brain"][0]) == pytest.approx(float(m["psnr_brain"][0]))
    assert float(m2["ssim_brain"][0]) == pytest.approx(float(m["ssim_brain"][0]), abs=1e-6)
    # predictions are clipped to [0, 1] before scoring
    # (inside the mask the clipped prediction is 1.0 where the reference is 0.8: PSNR = -10 log10(0.04))
    clipped = slice_metrics(target + 5.0 * (target > 0), target, mask)["psnr_brain"][0]
    assert float(clipped) == pytest.approx(13.9794, abs=1e-3)
    assert float(slice_metrics(target, target, mask)["ssim"][0]) == pytest.approx(1.0)
    assert nrmse(target, target)[0] == 0


def test_brain_mask_dilates():
    hr = torch.zeros(1, 1, 16, 16)
    hr[..., 8, 8] = 1
    assert brain_mask(hr, dilation=0).sum() == 1
    assert brain_mask(hr, dilation=2).sum() == 25


def textured(size: int = 48) -> torch.Tensor:
    """A (2, 1, size, size) batch with edges and texture in [0.2, 0.8] inside a square, 0 outside."""
    y, x = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    image = 0.5 + 0.3 * torch.sin(x / 2.0) * torch.cos(y / 3.0)
    inside = (x >= 6) & (x < 26) & (y >= 6) & (y < 26)
    one = torch.where(inside, image, torch.zeros(()))
    return torch.stack([one, one.flip(-1)])[:, None]


def test_nrmse_and_hfen_are_zero_for_identical_images():
    hr = textured()
    m = slice_metrics(hr, hr, brain_mask(hr))
    for key in ("nrmse", "hfen", "nrmse_brain", "hfen_brain"):
        assert m[key].tolist() == [0.0, 0.0], key


def test_nrmse_and_hfen_known_values():
    hr = textured()
    mask = brain_mask(hr, dilation=0)
    # a uniform 30 % intensity loss: both are linear, so both are exactly 0.3, with or without mask
    m = slice_metrics(0.7 * hr, hr, mask)
    for key in ("nrmse", "hfen", "nrmse_brain", "hfen_brain"):
        assert m[key].tolist() == pytest.approx([0.3, 0.3], abs=1e-5), key
    # a constant offset c: NRMSE = c sqrt(N) / ||hr||; the zero-sum LoG does not see it
    c = 0.1
    flat = torch.full_like(hr, 0.5)
    assert nrmse(flat + c, flat).tolist() == pytest.approx([c / 0.5] * 2, rel=1e-5)
    expected = (c * math.sqrt(hr[0].numel()) / hr.flatten(1).norm(dim=1)).tolist()
    assert nrmse(hr + c, hr).tolist() == pytest.approx(expected, rel=1e-5)
    inside = hr[0][mask[0]]
    expected_brain = c * math.sqrt(inside.numel()) / float(inside.norm())
    assert float(nrmse(hr + c, hr, mask)[0]) == pytest.approx(expected_brain, rel=1e-5)
    assert hfen(hr + c, hr).abs().max() < 1e-5
    # Ravishankar & Bresler's definition on the loss's LoG filter (for images already in [0, 1])
    noisy = (hr + 0.05 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    kernel = log_kernel(1.5)
    direct = log_filter(noisy - hr, kernel).flatten(1).norm(dim=1) / log_filter(hr, kernel).flatten(1).norm(dim=1)
    assert hfen(noisy, hr).tolist() == pytest.approx(direct.tolist(), rel=1e-5)


def test_brain_nrmse_and_hfen_ignore_errors_outside_the_mask():
    hr = textured()
    mask = brain_mask(hr, dilation=2)
    pred = hr.clone()
    pred[..., -2:, -2:] = 1.0  # background corner, more than the LoG's 5 px radius from the mask
    m = slice_metrics(pred, hr, mask)
    assert (m["nrmse"] > 0).all() and (m["hfen"] > 0).all()
    assert m["nrmse_brain"].tolist() == [0.0, 0.0] and m["hfen_brain"].tolist() == [0.0, 0.0]
    empty = slice_metrics(pred, hr, torch.zeros_like(mask))
    assert all(torch.isnan(empty[k]).all() for k in ("psnr_brain", "nrmse_brain", "hfen_brain"))


@pytest.mark.parametrize("metric, mode", [("val/psnr_brain", "max"), ("val/ssim", "max"), ("val/nrmse", "min"),
                                          ("val/hfen_brain", "min"), ("val/loss", "min")])
def test_checkpoint_selection_mode_follows_the_metric(metric, mode):
    assert metric_mode(metric) == mode
    cfg = compose(f"monitor={metric}", output_dir="/tmp/x")
    checkpoint = instantiate(cfg.callbacks.model_checkpoint)
    assert checkpoint.monitor == metric and checkpoint.mode == mode


def test_unknown_monitor_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="monitor='val/acc'.*psnr_brain"):
        metric_mode("val/acc")


def test_metrics_are_float32_inside_a_bf16_autocast_region():
    from lfmri.scoring.metrics import brain_mask, slice_metrics

    hr = head_slices(2, 48)[:, None]
    pred = (hr + 0.03 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mask = brain_mask(hr)
    reference = slice_metrics(pred, hr, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = slice_metrics(pred, hr, mask)
    assert all(torch.allclose(reference[k], mixed[k], atol=1e-6, equal_nan=True) for k in reference)
