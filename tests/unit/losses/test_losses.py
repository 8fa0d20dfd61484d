"""HFEN, SSIM and the composite loss: values and config errors."""

from __future__ import annotations

import pytest
import torch

from lfmri.losses.composite import CompositeLoss
from lfmri.losses.hfen import HFENLoss, log_kernel
from lfmri.losses.ssim import SSIMLoss
from lfmri.scoring.metrics import hfen


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
