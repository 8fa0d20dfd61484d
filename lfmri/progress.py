"""Progress of evaluate, predict and export: a tqdm bar on a terminal, log lines in a file.

A redrawn bar in a log file (SLURM, ``docker logs``) is one very long line that appears at the
end; without a terminal the same progress goes out as a log line at every tenth of the work.
"""

from __future__ import annotations

import logging
import sys
import time

from tqdm.auto import tqdm

log = logging.getLogger(__name__)


class LineProgress:
    """tqdm's ``update``/``close`` as log lines, one per ``1 / lines`` of ``total``."""

    def __init__(self, total: int, desc: str, unit: str, lines: int = 10) -> None:
        self.total, self.desc, self.unit = max(int(total), 1), desc, unit
        self.step = max(1, self.total // lines)
        self.done, self.next = 0, self.step
        self.start = time.perf_counter()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.done >= self.next or self.done >= self.total:
            rate = self.done / max(time.perf_counter() - self.start, 1e-9)
            log.info("%s: %d/%d %ss (%.1f %ss/s)", self.desc, min(self.done, self.total), self.total, self.unit, rate, self.unit)
            self.next = (self.done // self.step + 1) * self.step

    def close(self) -> None:
        pass


def progress(total: int, desc: str, unit: str = "slice", enabled: bool = True):
    """An object with ``update(n)`` and ``close()``: a bar on a terminal, log lines otherwise."""
    if enabled and not sys.stderr.isatty():
        return LineProgress(total, desc, unit)
    return tqdm(total=total, desc=desc, unit=unit, disable=not enabled, file=sys.stderr)
