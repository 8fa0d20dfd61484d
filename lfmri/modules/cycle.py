"""GAN-CIRCLE training (You et al. 2019; for MRI SR by Lyu et al. 2018): two generators, two critics.

G = ``net`` maps the LR image on the HR grid (``x``, e.g. k-space zero-filled) to HR (``y``);
F = ``inverse_net`` maps HR back to LR. Critics: ``critic`` (D_Y) on HR images, ``lr_critic``
(D_X) on LR images. Both generators must keep the image size (``input_mode: upsampled``): the
cycle ``F(G(x))`` and the identity terms ``G(y)``, ``F(x)`` need it.

Generator update, with ``weights`` from config (names are the logged keys):

- ``adversarial``: ``adv.generator_loss(D_Y, G(x)) + adv.generator_loss(D_X, F(y))``
- ``cycle``: ``cycle_loss(F(G(x)), x) + cycle_loss(G(F(y)), y)`` (L1)
- ``identity``: ``identity_loss(G(y), y) + identity_loss(F(x), x)`` (L1)
- ``jst``: ``jst_loss(G(x), y)`` on paired data; on unpaired data ``y - G(x)`` compares different
  anatomy, so it is taken on the identity output, ``jst_loss(G(y), y)``, as the official code does
- ``supervised``: the composite ``loss`` of ``G(x)`` against ``y``, paired data only.

Auxiliary outputs of a generator (MRLN's branches, AMIR's balance loss) are not used here.

Critic update: ``adv.critic_loss(D_Y, y, G(x)) + adv.critic_loss(D_X, x, F(y))``. One optimiser
for G and F, one for both critics; ``n_critic`` and steps as in :mod:`lfmri.modules.adversarial`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from lfmri.inference.network import model_input
from lfmri.contracts import as_image, input_mode
from lfmri.losses.composite import in_float32
from lfmri.modules.adversarial import AdversarialModule, require

TERMS = ("adversarial", "cycle", "identity", "jst", "supervised")


class CycleModule(AdversarialModule):
    supports_unpaired = True

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        inverse_net: nn.Module | None,
        critic: nn.Module | None,
        lr_critic: nn.Module | None,
        cycle_loss: nn.Module,
        identity_loss: nn.Module,
        jst_loss: nn.Module,
        weights: Mapping[str, float],
        **kwargs,
    ) -> None:
        require(inverse_net, "module.inverse_net", "module=cycle needs the HR->LR generator F")
        require(critic, "module.critic", "module=cycle needs an HR-domain critic")
        require(lr_critic, "module.lr_critic", "module=cycle needs an LR-domain critic")
        weights = dict(weights)
        if set(weights) != set(TERMS):
            raise ValueError(f"module.weights must have exactly the keys {list(TERMS)}, got {sorted(weights)}")
        for name, weight in weights.items():
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"module.weights.{name} must be a non-negative number, got {weight!r}")
        if not any(weights.values()):
            raise ValueError("module.weights are all 0: nothing would train the generators")
        super().__init__(net, loss, **kwargs)
        self.inverse_net = inverse_net
        self.critic = critic
        self.lr_critic = lr_critic
        self.cycle_loss = cycle_loss
        self.identity_loss = identity_loss
        self.jst_loss = jst_loss
        self.weights = {name: float(w) for name, w in weights.items()}
        self.paired = True

    def generator_parameters(self) -> Iterable[nn.Parameter]:
        return [*self.net.parameters(), *self.inverse_net.parameters()]

    def critics(self) -> list[nn.Module]:
        return [self.critic, self.lr_critic]

    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.channels_last:
            self.inverse_net.to(memory_format=torch.channels_last)

    def check_setup(self, datamodule) -> None:
        self.paired = not getattr(datamodule, "unpaired", False)
        if not self.paired and self.weights["supervised"] > 0:
            raise ValueError(
                "data.unpaired=true has no (LR, HR) pairs to supervise: set module.weights.supervised=0"
            )
        for option, generator in (("model", self._net), ("module.inverse_net", self.inverse_net)):
            if input_mode(generator) != "upsampled":
                raise ValueError(
                    f"module=cycle needs generators that keep the image size, but {option} "
                    f"({type(generator).__name__}) reads {input_mode(generator)!r} input; use e.g. model=circle "
                    "model.mode=same_size with degradation=kspace_zerofill"
                )
        super().check_setup(datamodule)

    def _g(self, x: torch.Tensor) -> torch.Tensor:
        return as_image(self(x))

    def _f(self, y: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            y = y.contiguous(memory_format=torch.channels_last)
        return as_image(self.inverse_net(y))

    def critic_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = model_input(self._net, batch), batch["hr"]
        with torch.no_grad():
            fake_y, fake_x = self._g(x), self._f(y)
        hr_total, hr_parts = self.adversarial.critic_loss(self.critic, y, fake_y)
        lr_total, lr_parts = self.adversarial.critic_loss(self.lr_critic, x, fake_x)
        parts = {**{f"hr_{k}": v for k, v in hr_parts.items()}, **{f"lr_{k}": v for k, v in lr_parts.items()}}
        return hr_total + lr_total, parts

    def generator_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        x, y = model_input(self._net, batch), batch["hr"]
        w = self.weights
        fake_y, fake_x = self._g(x), self._f(y)
        parts: dict[str, torch.Tensor] = {}  # each term as it enters the total (weighted), in float32
        if w["adversarial"] > 0:
            adversarial = self.adversarial.generator_loss
            parts["adversarial"] = adversarial(self.critic, fake_y) + adversarial(self.lr_critic, fake_x)
        if w["cycle"] > 0:
            parts["cycle"] = (in_float32(self.cycle_loss, self._f(fake_y), x)
                              + in_float32(self.cycle_loss, self._g(fake_x), y))
        identity_y = self._g(y) if w["identity"] > 0 or (w["jst"] > 0 and not self.paired) else None
        if w["identity"] > 0:
            parts["identity"] = in_float32(self.identity_loss, identity_y, y) + in_float32(self.identity_loss, self._f(x), x)
        if w["jst"] > 0:
            parts["jst"] = in_float32(self.jst_loss, fake_y if self.paired else identity_y, y)
        if w["supervised"] > 0 and self.paired:
            parts["supervised"], _ = self.loss(fake_y, y)
        parts = {name: w[name] * value for name, value in parts.items()}
        total = sum(parts.values())
        if self.paired:
            parts["pixel_mse"] = F.mse_loss(fake_y.detach().float(), y.float())
        return total, parts

    def term_weights(self) -> dict[str, float]:
        return dict(self.weights)
