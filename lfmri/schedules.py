"""Learning-rate schedules that are plain ``_target_`` classes (stepped once per epoch)."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import LRScheduler


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
