"""Wasserstein adversarial losses with gradient penalty (WGAN-GP, Gulrajani et al. 2017).

An adversarial loss plugin has two methods, used by the adversarial LightningModules:
``critic_loss(critic, real, fake) -> (total, parts)`` and ``generator_loss(critic, fake) -> tensor``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def gradient_penalty(
    critic: Callable[[torch.Tensor], torch.Tensor], real: torch.Tensor, fake: torch.Tensor
) -> torch.Tensor:
    """``E[(||grad_x D(x_hat)||_2 - 1)^2]`` on ``x_hat = a real + (1 - a) fake``, ``a ~ U(0, 1)`` per sample.

    The norm is taken per sample over all pixels and channels (the official CPCE code took it per
    image column, a quirk not copied). It runs in float32 with autocast off: the second-order
    gradients overflow in half precision.
    """
    alpha = torch.rand(real.shape[0], *([1] * (real.dim() - 1)), device=real.device)
    with torch.autocast(device_type=real.device.type, enabled=False):
        mixed = (alpha * real.float() + (1 - alpha) * fake.detach().float()).requires_grad_(True)
        scores = critic(mixed)
        (grad,) = torch.autograd.grad(scores.sum(), mixed, create_graph=True)
        return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()


class WassersteinGPLoss(nn.Module):
    """Critic: ``E[D(fake)] - E[D(real)] + gp_weight * GP``; generator: ``-E[D(fake)]``."""

    def __init__(self, gp_weight: float = 10.0) -> None:
        super().__init__()
        if gp_weight < 0:
            raise ValueError(f"gp_weight must be >= 0, got {gp_weight}")
        self.gp_weight = float(gp_weight)

    def critic_loss(
        self, critic: nn.Module, real: torch.Tensor, fake: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        # the negative critic loss without the penalty estimates the Wasserstein distance
        real_score, fake_score = critic(real).float().mean(), critic(fake.detach()).float().mean()
        wasserstein = real_score - fake_score
        parts = {"real": real_score.detach(), "fake": fake_score.detach(), "wasserstein": wasserstein.detach()}
        total = -wasserstein
        if self.gp_weight > 0:
            parts["gp"] = gradient_penalty(critic, real, fake)
            total = total + self.gp_weight * parts["gp"]
        return total, parts

    def generator_loss(self, critic: nn.Module, fake: torch.Tensor) -> torch.Tensor:
        return -critic(fake).float().mean()
