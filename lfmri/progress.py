"""Progress of evaluate, predict and export: a tqdm bar on a terminal, log lines in a file.

A redrawn bar in a log file (SLURM, ``docker logs``) is one very long line that appears at the
end; without a terminal the same progress goes out as a log line at every tenth of the work.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def time_left(done: float, total: float, elapsed: float) -> float | None:
    """Seconds left for ``total`` units when ``done`` took ``elapsed`` seconds (the mean rate so far);
    ``None`` before the first unit or when the total is unknown (infinite)."""
    if done <= 0 or elapsed < 0 or not math.isfinite(total):
        return None
    return max(total - done, 0) * elapsed / done


def duration(seconds: float) -> str:
    """``45 s``, ``12 min``, ``2 h 05 min``: a time left as a person reads it."""
    seconds = max(float(seconds), 0.0)
    if seconds < 90:
        return f"{seconds:.0f} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class LineProgress:
    """tqdm's ``update``/``close`` as log lines: the first batch (a first estimate of the time left,
    from the first slices), then one per ``1 / lines`` of ``total``, each with the time left.

    tqdm's own bar (on a terminal) shows its estimate in place; in a log file it would be one long
    line written at the end, hence these lines.
    """

    def __init__(self, total: int, desc: str, unit: str, lines: int = 10, clock: Callable[[], float] = time.perf_counter) -> None:
        self.total, self.desc, self.unit = max(int(total), 1), desc, unit
        self.step = max(1, self.total // lines)
        self.done, self.next = 0, self.step
        self.clock = clock
        self.start = clock()

    def update(self, n: int = 1) -> None:
        first = self.done == 0
        self.done += n
        if first or self.done >= self.next or self.done >= self.total:
            elapsed = max(self.clock() - self.start, 1e-9)
            rate = self.done / elapsed
            done = min(self.done, self.total)
            if done >= self.total:
                ending = f"done in {duration(elapsed)}"
            else:
                ending = f"about {duration(time_left(done, self.total, elapsed))} left"
            log.info("%s: %d/%d %ss (%.1f %ss/s), %s", self.desc, done, self.total, self.unit, rate, self.unit, ending)
            self.next = (self.done // self.step + 1) * self.step

    def close(self) -> None:
        pass


def progress(total: int, desc: str, unit: str = "slice", enabled: bool = True):
    """An object with ``update(n)`` and ``close()``: a bar on a terminal, log lines otherwise."""
    if enabled and not sys.stderr.isatty():
        return LineProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr)
