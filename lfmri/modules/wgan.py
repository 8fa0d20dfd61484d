"""GAN-CPCE-style training (Lyu et al. 2018): any generator, a critic, an adversarial loss plugin.

Critic update: ``adversarial.critic_loss(critic, HR, G(LR))`` (WGAN-GP by default).
Generator update: ``adversarial_weight * adversarial.generator_loss(critic, G(LR))`` (logged weighted,
``train/generator_adversarial``) plus the
composite ``loss`` of ``G(LR)`` against HR (e.g. ``loss=cpce``: MSE + 0.1 x VGG-19 perceptual),
auxiliary outputs included as in the supervised module. ``n_critic`` critic updates per generator
update; what a step is: :mod:`lfmri.modules.adversarial`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lfmri.inference.network import model_input
from lfmri.contracts import as_image
from lfmri.modules.adversarial import AdversarialModule, require


class WGANModule(AdversarialModule):
    def __init__(
        self, net: nn.Module, loss: nn.Module, critic: nn.Module | None, adversarial_weight: float = 1.0, **kwargs
    ) -> None:
        hint = "module=wgan needs a critic network, e.g. module.critic._target_=lfmri.models.critics.cpce.CPCECritic"
        require(critic, "module.critic", hint)
        super().__init__(net, loss, **kwargs)
        self.critic = critic
        self.adversarial_weight = float(adversarial_weight)

    def critics(self) -> list[nn.Module]:
        return [self.critic]

    def critic_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        with torch.no_grad():
            fake = as_image(self(model_input(self._net, batch)))
        return self.adversarial.critic_loss(self.critic, batch["hr"], fake)

    def generator_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        target = batch["hr"]
        out = self(model_input(self._net, batch))
        fake = as_image(out)
        pixel, parts = self.supervised_loss(out, target)
        parts = {f"loss_{name}": value for name, value in parts.items()}
        parts["adversarial"] = self.adversarial_weight * self.adversarial.generator_loss(self.critic, fake)
        total = parts["adversarial"] + pixel
        parts["pixel_mse"] = F.mse_loss(fake.detach().float(), target.float())  # logged whatever the loss terms are
        return total, parts

    def term_weights(self) -> dict[str, float]:
        return {**{f"loss_{k}": v for k, v in super().term_weights().items()}, "adversarial": self.adversarial_weight}
