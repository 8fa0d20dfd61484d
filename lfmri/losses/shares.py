"""Each loss term's share of the gradient: whether what a comparison varies acts.

A term whose gradient is a fraction of a percent of the pixel loss's changes nothing a table can
measure (docs/training.md, "Loss terms that act"): four rows of a loss table came out within
0.01 dB because HFEN carried 0.04 % of L1's gradient at its default weight. The share is measured
on the parameters the loss trains: the norm of each weighted term's gradient, over the sum of the
norms of all terms (so the shares add up to 1).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch


def gradient_norms(terms: Mapping[str, torch.Tensor], parameters: Iterable[torch.Tensor]) -> dict[str, float]:
    """``{name: ||d term / d parameters||}`` for each weighted term that has a gradient.

    Each term is differentiated on its own (``retain_graph``), so the graph stays usable for the
    training step's backward; terms without a graph (detached diagnostics) are skipped.
    """
    params = [p for p in parameters if p.requires_grad]
    norms: dict[str, float] = {}
    for name, value in terms.items():
        if not isinstance(value, torch.Tensor) or not value.requires_grad or value.numel() != 1:
            continue
        grads = torch.autograd.grad(value, params, retain_graph=True, allow_unused=True)
        squares = [g.detach().float().pow(2).sum() for g in grads if g is not None]
        norms[name] = float(torch.stack(squares).sum().sqrt()) if squares else 0.0
    return norms


def shares(norms: Mapping[str, float]) -> dict[str, float]:
    """Each norm over the sum of all of them (0 for every term when all are 0)."""
    total = sum(norms.values())
    return {name: (value / total if total > 0 else 0.0) for name, value in norms.items()}


def weight_for_share(norms: Mapping[str, float], weight: float, name: str, share: float = 0.1) -> float | None:
    """The weight that would give ``name`` ``share`` of the summed norms, the others unchanged.

    Scaling a term's weight by ``c`` scales its gradient norm by ``c``: ``c n / (c n + rest) = share``
    gives ``c = share * rest / ((1 - share) n)``. ``None`` when the term has no gradient or is alone.
    """
    own = norms.get(name, 0.0)
    rest = sum(v for k, v in norms.items() if k != name)
    if own <= 0 or rest <= 0 or not 0 < share < 1:
        return None
    return weight * share * rest / ((1 - share) * own)


class ShareMonitor:
    """Warns once per term whose share stayed under ``floor`` in every measurement of its first
    ``warn_after_steps`` steps, naming the weight that would give it ``target``.

    Args:
        floor: the share under which a term counts as inert (1 %).
        target: the share the suggested weight gives (10 %).
        warn_after_steps: the step from which a term that was always under ``floor`` is named.
    """

    def __init__(self, floor: float = 0.01, target: float = 0.1, warn_after_steps: int = 200) -> None:
        self.floor = float(floor)
        self.target = float(target)
        self.warn_after_steps = int(warn_after_steps)
        self._above: set[str] = set()  # terms that have been at or above the floor once
        self._warned: set[str] = set()
        self._sums: dict[str, float] = {}  # summed norms per term, for the suggested weight

    def update(self, step: int, norms: Mapping[str, float], weights: Mapping[str, float | None]) -> list[str]:
        """Record one measurement at ``step``; returns the warning lines due now (each term once).

        ``weights``: each term's weight in its config (``None`` where it has none to suggest).
        """
        for name, value in norms.items():
            self._sums[name] = self._sums.get(name, 0.0) + value
        for name, share in shares(norms).items():
            if share >= self.floor:
                self._above.add(name)
        lines = []
        if step < self.warn_after_steps or len(norms) < 2:
            return lines
        mean_shares = shares(self._sums)
        for name in norms:
            if name in self._above or name in self._warned:
                continue
            self._warned.add(name)
            weight = weights.get(name)
            suggested = weight_for_share(self._sums, weight, name, self.target) if weight else None
            fix = f"; weight {suggested:.3g} would give it {self.target:.0%}" if suggested else ""
            current = f" at weight {weight:g}" if weight else ""
            lines.append(f"loss term {name!r}{current} carried {mean_shares[name]:.2%} of the gradient (under "
                         f"{self.floor:.0%} in every measurement up to step {step}): it barely acts{fix}")
        return lines
