"""A weighted sum of named loss terms, each reported separately for logging."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn


class CompositeLoss(nn.Module):
    """``total = sum_k weights[k] * terms[k](pred, target)``.

    ``terms`` and ``weights`` are keyed by the same names (``conf/loss/*.yaml``); the names become
    the logged keys (``train/loss_<name>``). Terms with weight 0 are skipped.
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
        parts = {name: term(pred, target) for name, term in self.terms.items() if self.weights[name] > 0}
        total = sum(self.weights[name] * value for name, value in parts.items())
        return total, parts
