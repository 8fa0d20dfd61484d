"""HFEN, SSIM and the composite loss: values and config errors."""

from __future__ import annotations

import pytest
import torch

from lfmri.losses.composite import CompositeLoss
from lfmri.losses.hfen import HFENLoss, log_kernel
from lfmri.losses.ssim import SSIMLoss
from lfmri.losses.tv import JointSparsifyingTransform
from lfmri.scoring.metrics import hfen


def test_hfen_of_identical_images_is_zero_and_ignores_constant_offsets():
    x = torch.rand(2, 1, 24, 24)
    assert HFENLoss()(x, x) == 0
    assert HFENLoss()(x + 0.3, x) < 1e-5  # the zero-sum LoG removes flat offsets (float32 rounding left)
    assert HFENLoss(normalized=False)(x + 0.3, x) < 1e-10
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


def test_hfen_loss_is_the_relative_metric_of_its_paper():
    # one image: the loss equals the HFEN metric (Ravishankar & Bresler's relative form), so its
    # scale is the metric's (0.2-0.5 on a blurred slice), not an unnormalised LoG MSE's (1e-4)
    torch.manual_seed(0)
    target = torch.nn.functional.avg_pool2d(torch.rand(1, 1, 40, 40), 3, stride=1, padding=1)
    pred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1)
    assert float(HFENLoss()(pred, target)) == pytest.approx(float(hfen(pred, target)[0]), rel=1e-4)
    assert 0.1 < float(HFENLoss()(pred, target)) < 1.0
    assert float(HFENLoss(normalized=False)(pred, target)) < 1e-2
    # a batch is one ratio: an empty patch beside a textured one does not divide by zero
    batch_pred, batch_target = torch.cat([pred, torch.zeros_like(pred)]), torch.cat([target, torch.zeros_like(target)])
    assert torch.isfinite(HFENLoss()(batch_pred, batch_target))


@pytest.mark.parametrize("term", [HFENLoss(), SSIMLoss(), JointSparsifyingTransform(tau=1.0), JointSparsifyingTransform(tau=0.1)],
                         ids=["hfen", "ssim", "tv", "jst"])
def test_each_auxiliary_term_keeps_its_float32_gradient_under_bf16_autocast(term):
    # the composite computes its terms outside autocast: a network whose output is bfloat16 (as
    # under trainer.precision=bf16-mixed) gets each term's gradient as float32 would compute it
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 3, padding=1))
    target = torch.nn.functional.avg_pool2d(torch.rand(4, 1, 32, 32), 3, stride=1, padding=1)
    x = target + 0.05 * torch.randn_like(target)
    loss = CompositeLoss({"l1": torch.nn.L1Loss(), "aux": term}, {"l1": 1.0, "aux": 0.1})

    def aux_gradient(bf16: bool) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            out = net(x)
            _, parts = loss(out, target)
        assert parts["aux"].dtype == torch.float32
        grads = torch.autograd.grad(parts["aux"], list(net.parameters()))
        return torch.cat([g.flatten().float() for g in grads])

    reference, bf16 = aux_gradient(False), aux_gradient(True)
    assert float(torch.nn.functional.cosine_similarity(reference, bf16, dim=0)) > 0.9


def test_ssim_loss_values():
    x = torch.rand(1, 1, 32, 32)
    assert SSIMLoss()(x, x) == pytest.approx(0.0, abs=1e-6)
    assert SSIMLoss()(x, 1 - x) > 1.0  # anti-correlated: SSIM < 0


def test_composite_loss_weights_terms_and_reports_each():
    pred, target = torch.zeros(1, 1, 4, 4), torch.full((1, 1, 4, 4), 0.5)
    loss = CompositeLoss({"mse": torch.nn.MSELoss(), "l1": torch.nn.L1Loss()}, {"mse": 2.0, "l1": 0.5})
    total, parts = loss(pred, target)
    # each part as it enters the total: weighted, so the parts add up to it
    assert parts["mse"] == pytest.approx(2.0 * 0.25) and parts["l1"] == pytest.approx(0.5 * 0.5)
    assert total == pytest.approx(2.0 * 0.25 + 0.5 * 0.5) == pytest.approx(float(sum(parts.values())))
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
