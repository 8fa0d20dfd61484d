"""WGAN-GP, TV/JST and the perceptual loss: analytic values, offline-only weights."""

from __future__ import annotations

import pytest
import torch

from lfmri.losses.perceptual import VGGPerceptualLoss
from lfmri.losses.tv import JointSparsifyingTransform, total_variation
from lfmri.losses.wgan import WassersteinGPLoss, gradient_penalty


class LinearCritic(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so ||grad|| = ||w||."""

    def __init__(self, norm: float) -> None:
        super().__init__()
        w = torch.rand(1, 1, 8, 8)
        self.w = torch.nn.Parameter(w / w.norm() * norm)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("norm", [0.25, 1.0, 3.0])
def test_gradient_penalty_equals_its_analytic_value(norm):
    critic = LinearCritic(norm)
    real, fake = torch.rand(5, 1, 8, 8), torch.rand(5, 1, 8, 8)
    assert float(gradient_penalty(critic, real, fake)) == pytest.approx((norm - 1) ** 2, rel=1e-5, abs=1e-6)
    total, parts = WassersteinGPLoss(gp_weight=10).critic_loss(critic, real, fake)
    wasserstein = critic(real).mean() - critic(fake).mean()
    assert float(total) == pytest.approx(float(-wasserstein + 10 * (norm - 1) ** 2), rel=1e-5)
    assert float(parts["wasserstein"]) == pytest.approx(float(wasserstein), rel=1e-5)
    assert float(WassersteinGPLoss().generator_loss(critic, fake)) == pytest.approx(float(-critic(fake).mean()))


def test_total_variation_and_joint_sparsifying_transform_values():
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:] = 1.0  # one vertical edge of height 1: |dx| is 1 in 4 of the 12 horizontal pairs
    assert float(total_variation(step)) == pytest.approx(4 / 12)
    target = torch.zeros_like(step)
    jst = JointSparsifyingTransform(tau=0.1)
    # pred = step, target = 0: TV(pred) = TV(target - pred) = 1/3
    assert float(jst(step, target)) == pytest.approx(0.1 / 3 + 0.9 / 3)
    assert float(jst(target, step)) == pytest.approx(0.9 / 3)  # flat prediction, residual has the edge


def test_perceptual_loss_runs_offline_only_when_allowed(tmp_path, caplog):
    # conftest sets HF_HUB_OFFLINE: timm can only look in its cache, never the network
    with pytest.raises(RuntimeError, match=r"loss.terms.perceptual.weights=PATH"):
        VGGPerceptualLoss()
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VGGPerceptualLoss(weights=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not VGG-19 weights"):
        VGGPerceptualLoss(weights=str(bad))
    loss = VGGPerceptualLoss(layer=16, allow_random_weights=True)
    assert "RANDOM VGG-19 weights" in caplog.text
    assert sum(isinstance(m, torch.nn.Conv2d) for m in loss.features) == 16
    assert isinstance(loss.features[-1], torch.nn.ReLU) and not list(loss.state_dict())  # not checkpointed
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    assert float(loss(x.detach(), x.detach())) == 0
    value = loss(x, torch.rand(2, 1, 32, 32))
    value.backward()
    assert torch.isfinite(value) and value > 0 and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.features.parameters())
