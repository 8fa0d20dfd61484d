"""Lightning's CSV logger, able to continue the ``metrics.csv`` of an earlier process.

Lightning's CSV writer deletes an existing ``metrics.csv`` when it starts, and only knows the
columns it logged itself: when a second writer appends to the file (the test stage of
``trainer=ddp_spawn``, which runs in freshly spawned processes) and logs new columns, it rewrites
the file with its own columns and fails on the old rows ("dict contains fields not in
fieldnames"). This logger starts from the columns already in the file, and a resumed run keeps
the rows logged before its checkpoint (:meth:`ResumableCSVLogger.resume_from`).
"""

from __future__ import annotations

import csv
import os

from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.utilities import rank_zero_only

from lfmri.files import atomic_write


def read_rows(path: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader)


class ResumableCSVLogger(CSVLogger):
    @property
    def experiment(self):
        writer = super().experiment
        path = getattr(writer, "metrics_file_path", None)
        if isinstance(path, str) and not writer.metrics_keys and os.path.isfile(path):  # rank zero only
            writer.metrics_keys = sorted(read_rows(path)[0])
        return writer

    @rank_zero_only
    def resume_from(self, step: int) -> int:
        """Keep the rows of ``metrics.csv`` logged before ``step``; returns how many were dropped.

        A killed run logged past its last checkpoint and the resumed run logs those steps again:
        they are dropped, the rows before them kept. Call before anything is logged.
        """
        path = os.path.join(self.log_dir, "metrics.csv")
        if not os.path.isfile(path):
            return 0
        header, rows = read_rows(path)
        kept = [row for row in rows if not row.get("step") or int(float(row["step"])) < step]
        writer = super().experiment  # Lightning's writer removes the file when it is created
        with atomic_write(path) as tmp, open(tmp, "w", newline="") as file:
            out = csv.DictWriter(file, fieldnames=header)
            out.writeheader()
            out.writerows(kept)
        writer.metrics_keys = sorted(header)
        return len(rows) - len(kept)
