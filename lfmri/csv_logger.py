"""Lightning's CSV logger, able to continue a ``metrics.csv`` that another logger object started.

Lightning's CSV writer only knows the columns it logged itself. When a second writer appends to
the file (a run resumed after a kill, or the test stage of ``trainer=ddp_spawn``, which runs in
freshly spawned processes) and logs new columns, it rewrites the file with its own columns only
and fails on the old rows ("dict contains fields not in fieldnames"). This logger starts from
the columns already in the file.
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger


class ResumableCSVLogger(CSVLogger):
    @property
    def experiment(self):
        writer = super().experiment
        path = getattr(writer, "metrics_file_path", None)
        if isinstance(path, str) and not writer.metrics_keys and os.path.isfile(path):  # rank zero only
            with open(path, newline="") as file:
                header = next(csv.reader(file), [])
            writer.metrics_keys = sorted(header)
        return writer
