"""What the adversarial modules share: alternating critic and generator updates, two optimisers.

Every batch is one optimiser update: with ``n_critic = k`` the batches cycle through k critic
updates, each on a fresh batch, then one generator update (Gulrajani et al.'s Algorithm 1). A
training **step** (Lightning's ``global_step``) is one *generator* update: the critic's optimiser is
stepped through the strategy without Lightning's step count, so ``trainer.max_steps``, warm-up and
cosine schedules per step, the EMA's start and horizon, periodic checkpoints and
``module.grad_share_every_n_steps`` all count generator updates, as they do for the supervised
module. A run of ``max_steps = S`` reads ``S * (k + 1)`` batches; what counts batches is Lightning's
``val_check_interval`` (with ``check_val_every_n_epoch=null``) and ``data.patches_per_epoch``.

``module.critic_warmup_steps = W`` adds W critic updates before the first generator update, for a
critic that starts fresh on a pre-trained generator (the fine-tune recipes): it learns to tell the
generator's output from HR before its gradient moves the generator. The position in the cycle
(warm-up included) is counted in the module and stored in the checkpoint, so a resumed run
continues it where it stopped.

The generator's parts are logged as they enter its total (``train/generator_<name>``) with their
gradient shares; the critic's are its mean scores of real and generated patches, their difference
(the Wasserstein estimate) and the gradient penalty (unweighted, as the WGAN-GP papers plot them).

Validation, test, panels and metrics are the supervised module's: the generator ``self.net`` is
scored like any network, and checkpoints load into ``evaluate.py``/``predict`` unchanged (only
``net.*`` weights are read from them; critics and other networks live under other names).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Iterable

import torch
from torch import nn

from lfmri.modules.supervised import SupervisedModule

# Lightning's periodic checkpoint warns (with a code example, every save) that manual optimisation
# saves the weights after the step; that is what resuming at ``global_step`` expects
warnings.filterwarnings("ignore", message="Using ModelCheckpoint with manual optimization")

log = logging.getLogger(__name__)

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
        critic_warmup_steps: int = 0,
        **kwargs,
    ) -> None:
        """Args (besides :class:`~lfmri.modules.supervised.SupervisedModule`'s):
            adversarial: the adversarial loss plugin (``critic_loss``, ``generator_loss``).
            critic_optimizer, critic_scheduler: the critics' optimiser and schedule (partials).
            n_critic: critic updates per generator update.
            critic_warmup_steps: critic updates before the first generator update (0: none).
        """
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
        if not isinstance(critic_warmup_steps, int) or critic_warmup_steps < 0:
            raise ValueError(f"module.critic_warmup_steps={critic_warmup_steps!r}: must be an integer >= 0")
        self.critic_warmup_steps = critic_warmup_steps
        self.optimizer_updates = 0  # critic and generator updates of this run, warm-up included (checkpointed)
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
        return self.global_step  # generator updates (see the module docstring)

    def is_critic_step(self) -> bool:
        after_warmup = self.optimizer_updates - self.critic_warmup_steps
        return after_warmup < 0 or after_warmup % (self.n_critic + 1) < self.n_critic

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
        if critic_turn:
            # the strategy's step (precision plugin, gradient scaler) without LightningOptimizer.step's
            # count: global_step, and all that is set in steps, counts generator updates
            self.trainer.strategy.optimizer_step(critic_opt.optimizer, closure=lambda: None, model=self)
        else:
            optimizer.step()
            if self.scheduler_interval == "step":  # warm-up and cosine per generator update
                for scheduler in self.schedulers():
                    scheduler.step()
        self.optimizer_updates += 1
        self.untoggle_optimizer(optimizer)
        size = batch["hr"].shape[0]
        self.log(f"train/{prefix}_loss", total.detach(), prog_bar=not critic_turn, batch_size=size)
        for name, value in parts.items():
            self.log(f"train/{prefix}_{name}", value.detach(), batch_size=size)

    CHECKPOINT_KEY = "lfmri_adversarial"

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[self.CHECKPOINT_KEY] = {"optimizer_updates": int(self.optimizer_updates), "steps_count": "generator"}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        state = checkpoint.get(self.CHECKPOINT_KEY)
        if state is not None:
            self.optimizer_updates = int(state["optimizer_updates"])
            return
        # written before steps counted generator updates: its global_step counted every update
        self.optimizer_updates = int(checkpoint.get("global_step", 0))
        if self.optimizer_updates:
            log.warning("this checkpoint's step %d counts critic and generator updates (lfmri before steps counted "
                        "generator updates only): the run continues counting generator updates from there",
                        self.optimizer_updates)

    def on_train_epoch_start(self) -> None:
        # manual optimisation: schedulers per epoch are stepped here, up to the current epoch, so a run
        # resumed from a checkpoint written before or after the epoch-end step ends up the same
        if self.scheduler_interval != "epoch":
            return
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
