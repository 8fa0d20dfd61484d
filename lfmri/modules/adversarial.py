"""What the adversarial modules share: alternating critic and generator updates, two optimisers.

A training **step** (Lightning's ``global_step``) is one optimiser update on one batch: with
``n_critic = k`` the steps cycle through k critic updates, each on a fresh batch, then one
generator update (Gulrajani et al.'s Algorithm 1). So ``global_step`` counts critic and generator
updates alike, ``trainer.max_steps`` and logging intervals are in those units, and the generator
has been updated ``global_step // (k + 1)`` times. The phase is derived from ``global_step``, so a
resumed run continues the cycle where it stopped.

The generator's parts are logged as they enter its total (``train/generator_<name>``) with their
gradient shares; the critic's are its mean scores of real and generated patches, their difference
(the Wasserstein estimate) and the gradient penalty (unweighted, as the WGAN-GP papers plot them).

Validation, test, panels and metrics are the supervised module's: the generator ``self.net`` is
scored like any network, and checkpoints load into ``evaluate.py``/``predict`` unchanged (only
``net.*`` weights are read from them; critics and other networks live under other names).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

from lfmri.modules.supervised import SupervisedModule

# Lightning's periodic checkpoint warns (with a code example, every save) that manual optimisation
# saves the weights after the step; that is what resuming at ``global_step`` expects
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")

OptimizerFactory = Callable[..., torch.optim.Optimizer]
SchedulerFactory = Callable[..., torch.optim.lr_scheduler.LRScheduler]


def require(value, option: str, hint: str):
    if value is None:
        raise ValueError(f"{option} is not set: {hint}")
    return value


class AdversarialModule(SupervisedModule):
    """Base class: subclasses provide ``critic_step``/``generator_step`` and the two parameter sets."""

    def __init__(
        self,
        net: nn.Module,
        loss: nn.Module,
        adversarial: nn.Module,
        optimizer: OptimizerFactory,
        critic_optimizer: OptimizerFactory,
        scheduler: SchedulerFactory | None = None,
        critic_scheduler: SchedulerFactory | None = None,
        n_critic: int = 4,
        **kwargs,
    ) -> None:
        super().__init__(net, loss, optimizer, scheduler, **kwargs)
        self.adversarial = require(
            adversarial, "module.adversarial", "set an adversarial loss, e.g. lfmri.losses.wgan.WassersteinGPLoss"
        )
        self.critic_optimizer_factory = require(
            critic_optimizer, "module.critic_optimizer", "the critic needs its own optimiser"
        )
        self.critic_scheduler_factory = critic_scheduler
        if not isinstance(n_critic, int) or n_critic < 1:
            raise ValueError(
                f"module.n_critic={n_critic!r}: must be a positive integer (critic updates per generator update)"
            )
        self.n_critic = n_critic
        self.automatic_optimization = False

    # --- to be provided by subclasses -----------------------------------------------------------
    def generator_parameters(self) -> Iterable[nn.Parameter]:
        return self.net.parameters()

    def critics(self) -> list[nn.Module]:
        raise NotImplementedError

    def critic_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def generator_step(self, batch: dict) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    # --- shared ---------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        super().setup(stage)
        if self.channels_last:
            for critic in self.critics():
                critic.to(memory_format=torch.channels_last)

    def check_setup(self, datamodule) -> None:
        super().check_setup(datamodule)
        patch = getattr(datamodule, "patch_size", None)
        for critic in self.critics():
            size = getattr(critic, "patch_size", None)
            if patch is not None and size is not None and size != patch:
                raise ValueError(
                    f"the critic {type(critic).__name__} is built for {size}x{size} patches "
                    f"but data.patch_size={patch}; "
                    "set the critic's patch_size to ${data.patch_size}"
                )

    def updates_of_trained_network(self) -> int:
        return self.global_step // (self.n_critic + 1)  # generator updates done (see the module docstring)

    def is_critic_step(self) -> bool:
        return self.global_step % (self.n_critic + 1) < self.n_critic

    def training_step(self, batch: dict, batch_idx: int) -> None:
        generator_opt, critic_opt = self.optimizers()
        critic_turn = self.is_critic_step()
        optimizer, prefix = (critic_opt, "critic") if critic_turn else (generator_opt, "generator")
        # only the stepped network's parameters require gradients during its update
        self.toggle_optimizer(optimizer)
        total, parts = self.critic_step(batch) if critic_turn else self.generator_step(batch)
        if not critic_turn:  # the generator's terms, each as it enters its total (pixel_mse is a detached diagnostic)
            self.measure_gradient_shares(parts, self.generator_parameters(), self.term_weights())
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(total)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        size = batch["hr"].shape[0]
        self.log(f"train/{prefix}_loss", total.detach(), prog_bar=not critic_turn, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{prefix}_{name}", value.detach(), batch_size=size)

    def on_train_epoch_start(self) -> None:
        # manual optimisation: schedulers are stepped here, up to the current epoch, so a run
        # resumed from a checkpoint written before or after the epoch-end step ends up the same
        for scheduler in self.schedulers():
            while scheduler.last_epoch < self.current_epoch:
                scheduler.step()

    def log_learning_rates(self) -> None:
        generator_opt, critic_opt = self.optimizers(use_pl_optimizer=False)
        self.log("train/lr", generator_opt.param_groups[0]["lr"], on_step=False, on_epoch=True, batch_size=1)
        self.log("train/critic_lr", critic_opt.param_groups[0]["lr"], on_step=False, on_epoch=True, batch_size=1)

    def schedulers(self) -> list:
        schedulers = self.lr_schedulers()
        if schedulers is None:
            return []
        return list(schedulers) if isinstance(schedulers, list) else [schedulers]

    def configure_optimizers(self):
        generator_opt = self.optimizer_factory(params=list(self.generator_parameters()))
        critic_opt = self.critic_optimizer_factory(params=[p for c in self.critics() for p in c.parameters()])
        schedulers = [
            factory(optimizer=opt)
            for factory, opt in ((self.scheduler_factory, generator_opt), (self.critic_scheduler_factory, critic_opt))
            if factory is not None
        ]
        return [generator_opt, critic_opt], schedulers
