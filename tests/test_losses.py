import pytest
import torch

from lfmri.losses.composite import CompositeLoss
from lfmri.losses.hfen import HFENLoss, log_kernel
from lfmri.scoring.metrics import hfen
from lfmri.losses.ssim import SSIMLoss
from lfmri.scoring.metrics import brain_mask, nrmse, slice_metrics


def test_hfen_of_identical_images_is_zero_and_ignores_constant_offsets():
    x = torch.rand(2, 1, 24, 24)
    assert HFENLoss()(x, x) == 0
    assert HFENLoss()(x + 0.3, x) < 1e-10  # the zero-sum LoG removes flat offsets
    assert torch.all(hfen(x, x) == 0)
    assert log_kernel(1.5).shape == (11, 11)
    assert abs(float(log_kernel(1.5).sum())) < 1e-6


def test_hfen_penalises_edges_more_than_smooth_errors():
    target = torch.zeros(1, 1, 32, 32)
    target[..., 8:24, 8:24] = 1
    blurred = torch.nn.functional.avg_pool2d(target, 5, stride=1, padding=2)
    smooth_offset = target + 0.05
    assert HFENLoss()(blurred, target) > HFENLoss()(smooth_offset, target)
    assert torch.nn.functional.mse_loss(blurred, target) > 0


def test_ssim_loss_values():
    x = torch.rand(1, 1, 32, 32)
    assert SSIMLoss()(x, x) == pytest.approx(0.0, abs=1e-6)
    assert SSIMLoss()(x, 1 - x) > 1.0  # anti-correlated: SSIM < 0


def test_composite_loss_weights_terms_and_reports_each():
    pred, target = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)
    loss = CompositeLoss({"mse": torch.nn.MSELoss(), "l1": torch.nn.L1Loss()}, {"mse": 2.0, "l1": 0.5})
    total, parts = loss(pred, target)
    assert parts["mse"] == pytest.approx(0.25) and parts["l1"] == pytest.approx(0.5)
    assert total == pytest.approx(2.0 * 0.25 + 0.5 * 0.5)
    _, parts = CompositeLoss({"mse": torch.nn.MSELoss(), "l1": torch.nn.L1Loss()}, {"mse": 1.0, "l1": 0.0})(pred, target)
    assert set(parts) == {"mse"}


@pytest.mark.parametrize(
    "terms, weights, message",
    [
        ({}, None, "empty"),
        ({"mse": torch.nn.MSELoss()}, {"l1": 1.0}, "must match"),
        ({"mse": torch.nn.MSELoss()}, {"mse": -1.0}, "non-negative"),
    ],
)
def test_composite_loss_config_errors(terms, weights, message):
    with pytest.raises(ValueError, match=message):
        CompositeLoss(terms, weights)


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
