"""A weighted sum of named loss terms, each reported as it enters the total, computed in float32."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping

import torch
from torch import nn


@contextlib.contextmanager
def without_autocast(device: torch.device) -> Iterator[None]:
    """Autocast off: what runs inside (a loss, a score) runs in the dtype of its float32 inputs and
    weights whatever the trainer's precision.

    Under bf16 autocast a small term is rounding noise: the LoG filter of HFEN subtracts two nearly
    equal bf16 images (its gradient had a cosine of 0.06 with its float32 value), and a term whose
    gradient is a few percent of the pixel loss's is below bf16's 0.4 % resolution of the sum.
    """
    with torch.autocast(device_type=device.type, enabled=False):
        yield


def in_float32(loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], pred: torch.Tensor,
               target: torch.Tensor) -> torch.Tensor:
    """``loss(pred, target)`` on float32 copies of both, outside autocast (:func:`without_autocast`)."""
    with without_autocast(pred.device):
        return loss(pred.float(), target.float())


class CompositeLoss(nn.Module):
    """``total = sum_k weights[k] * terms[k](pred, target)``, every term in float32.

    Args:
        terms: the loss modules, keyed by name (``conf/loss/*.yaml``); the names become the logged
            keys (``train/loss_<name>``: the term as it enters the total, i.e. weighted).
        weights: one non-negative weight per name (default 1 each). Terms with weight 0 are skipped.
            The first term is the pixel loss whose gradient the others are measured against
            (``benchmarks/loss_shares.py``; each ``conf/loss`` comment says the measured share).
    """

    def __init__(self, terms: Mapping[str, nn.Module], weights: Mapping[str, float] | None = None) -> None:
        super().__init__()
        if not terms:
            raise ValueError("loss.terms is empty: configure at least one loss term")
        weights = dict(weights) if weights is not None else {name: 1.0 for name in terms}
        if set(weights) != set(terms):
            raise ValueError(
                f"loss.weights keys {sorted(weights)} must match loss.terms keys {sorted(terms)}"
            )
        for name, weight in weights.items():
            if not isinstance(weight, (int, float)) or weight < 0:
                raise ValueError(f"loss.weights.{name} must be a non-negative number, got {weight!r}")
        self.terms = nn.ModuleDict(dict(terms))
        self.weights = {name: float(w) for name, w in weights.items()}

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(the total, ``{name: weight * term}``): the parts sum to the total."""
        with without_autocast(pred.device):
            pred, target = pred.float(), target.float()
            parts = {name: self.weights[name] * term(pred, target)
                     for name, term in self.terms.items() if self.weights[name] > 0}
        total = sum(parts.values())
        return total, parts
