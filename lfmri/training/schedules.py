"""Learning-rate schedules that are plain ``_target_`` classes (per epoch or per step, see each)."""

from __future__ import annotations

import logging
import math

import torch
from torch.optim.lr_scheduler import LRScheduler

log = logging.getLogger(__name__)

# a warm-up (or an EMA start, lfmri.training.run) longer than this share of a run is shortened to
# it: a recipe's 200 steps must not eat a short trial run (trainer.max_steps=6) whole
SHORT_RUN_FRACTION = 0.25


def fit_to_run(steps: int, total_steps: int, what: str) -> int:
    """``steps``, or ``SHORT_RUN_FRACTION`` of ``total_steps`` when that is fewer, said in the log."""
    limit = int(total_steps * SHORT_RUN_FRACTION)
    if total_steps > 0 and steps > limit:
        log.info("%s of %d steps shortened to %d: a quarter of this run's %d steps", what, steps, limit, total_steps)
        return limit
    return steps


class ConstantThenLinearLR(LRScheduler):
    """The base lr for ``constant_epochs``, then linear decay to ``end_factor`` x base over ``decay_epochs``.

    GAN-CPCE/GAN-CIRCLE as reproduced by Lyu et al.: 1e-4 for 50 epochs, then down to 2e-6
    (``end_factor=0.02``) over 50 more; the lr stays at the end value afterwards.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        constant_epochs: int,
        decay_epochs: int,
        end_factor: float,
        last_epoch: int = -1,
    ) -> None:
        if constant_epochs < 0 or decay_epochs < 1:
            raise ValueError(
                f"constant_epochs must be >= 0 and decay_epochs >= 1, got {constant_epochs}, {decay_epochs}"
            )
        if not 0 <= end_factor <= 1:
            raise ValueError(f"end_factor must be in [0, 1], got {end_factor}")
        self.constant_epochs = int(constant_epochs)
        self.decay_epochs = int(decay_epochs)
        self.end_factor = float(end_factor)
        super().__init__(optimizer, last_epoch)

    def factor(self, epoch: int) -> float:
        progress = min(max(epoch - self.constant_epochs, 0) / self.decay_epochs, 1.0)
        return 1.0 - (1.0 - self.end_factor) * progress

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]


class WarmupCosineLR(LRScheduler):
    """Linear warm-up from ``start_factor`` x base over ``warmup_steps``, then cosine decay to
    ``min_factor`` x base at ``total_steps`` (constant afterwards). Stepped once per optimiser
    step (``module.scheduler_interval: step``).

    Warm-up keeps Adam's first, badly estimated steps from throwing a deep network far from its
    (residual) initialisation; cosine decay lets a short CPU budget end at a low learning rate.

    Args:
        optimizer: the optimiser whose groups are scheduled.
        warmup_steps: steps of linear warm-up (0: none); at most a quarter of ``total_steps`` (a
            longer one is shortened, with a log line, so a short trial run still learns).
        total_steps: step at which the cosine reaches ``min_factor``.
        start_factor: learning-rate factor at step 0.
        min_factor: final learning-rate factor.
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        warmup_steps: int,
        total_steps: int,
        start_factor: float = 0.01,
        min_factor: float = 0.01,
        last_epoch: int = -1,
    ) -> None:
        if warmup_steps < 0 or total_steps < 1:
            raise ValueError(f"need warmup_steps >= 0 and total_steps >= 1 (trainer.max_steps), got {warmup_steps}, {total_steps}")
        warmup_steps = fit_to_run(int(warmup_steps), int(total_steps), "learning-rate warm-up")
        if not (0 < start_factor <= 1 and 0 <= min_factor <= 1):
            raise ValueError(f"start_factor must be in (0, 1] and min_factor in [0, 1], got {start_factor}, {min_factor}")
        self.warmup_steps, self.total_steps = int(warmup_steps), int(total_steps)
        self.start_factor, self.min_factor = float(start_factor), float(min_factor)
        super().__init__(optimizer, last_epoch)

    def factor(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.start_factor + (1 - self.start_factor) * step / self.warmup_steps
        progress = min((step - self.warmup_steps) / (self.total_steps - self.warmup_steps), 1.0)
        return self.min_factor + (1 - self.min_factor) * 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self) -> list[float]:
        return [base * self.factor(self.last_epoch) for base in self.base_lrs]
