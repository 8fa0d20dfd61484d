"""Timing that survives a shared machine: variants alternated with their reference in one process.

On a loaded machine (another job on a core, a descheduled OpenMP thread) one variant timed after
another measures the load as much as the code: in one such run NCHW came out 7x faster than
channels_last, the opposite of every side-by-side measurement. Here every repeat runs each
variant once, in rotating order, so load changes hit all of them alike; ratios are taken on the
minimum (the least disturbed run) and on the median, and the load average and thread count are
printed beside them.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch


@dataclass
class Timing:
    """Seconds per call of one variant over the alternated repeats."""

    times: list[float]

    @property
    def min(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def alternate(variants: Mapping[str, Callable[[], object]], repeats: int = 5, warmup: int = 1) -> dict[str, Timing]:
    """Time every variant ``repeats`` times, alternated: repeat r runs them all, starting at the r-th.

    Each variant first runs ``warmup`` times (oneDNN primitive creation, allocator growth).
    """
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[: r % len(names)]:
            start = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - start)
    return {name: Timing(t) for name, t in times.items()}


def machine_state() -> str:
    """Load average (1/5/15 min), CPUs and torch threads: print it beside every figure."""
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"load average {load}; {os.cpu_count()} logical CPUs; torch {torch.__version__}, {torch.get_num_threads()} threads"


def gemm(n: int = 2048, dtype: torch.dtype = torch.float32) -> tuple[Callable[[], object], float]:
    """(a call of an n^3 matrix product in ``dtype``, its FLOP): the machine's reachable rate."""
    a, b = torch.rand(n, n).to(dtype), torch.rand(n, n).to(dtype)
    return (lambda: a @ b), 2.0 * n**3


def rate_ratio(work: float, variant: Timing, reference_work: float, reference: Timing) -> tuple[float, float]:
    """(min-based, median-based) achieved FLOP/s of ``variant`` over that of ``reference``."""
    return (work / variant.min) / (reference_work / reference.min), (work / variant.median) / (reference_work / reference.median)


class threads:
    """``with threads(n):`` torch intra-op threads set to n, restored on exit."""

    def __init__(self, n: int) -> None:
        self.n, self.saved = n, torch.get_num_threads()

    def __enter__(self) -> None:
        torch.set_num_threads(self.n)

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.saved)
