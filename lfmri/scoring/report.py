"""Per-slice metric rows and their per-subject summaries (CSV and Markdown)."""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from lfmri.data.splits import SEEN
from lfmri.scoring.metrics import LOWER_IS_BETTER, METRICS

HEADERS = {
    "psnr": "PSNR (dB)",
    "ssim": "SSIM",
    "nrmse": "NRMSE",
    "hfen": "HFEN",
    "psnr_brain": "PSNR brain (dB)",
    "ssim_brain": "SSIM brain",
    "nrmse_brain": "NRMSE brain",
    "hfen_brain": "HFEN brain",
}
NOTE = (
    "Mean ± std over slices; best in bold (highest PSNR/SSIM, lowest NRMSE/HFEN). Predictions and "
    "references clipped to [0, 1], data range 1. SSIM: Gaussian window 11x11, sigma 1.5 (torchmetrics). "
    "NRMSE = ||SR - HR|| / ||HR||. HFEN = ||LoG(SR) - LoG(HR)|| / ||LoG(HR)||, LoG sigma 1.5. "
    "Brain: reference > 0.05, dilated 2 px. "
    "Zero-fill reconstructs from the complex LR (it has the phase) for k-space degradations."
)


# in-brain scores first: whole-slice PSNR/SSIM reward removing background noise and can rank
# methods the other way round; the in-brain columns are the ones that decide
DISPLAY_ORDER = (
    "psnr_brain", "ssim_brain", "nrmse_brain", "hfen_brain", "psnr", "ssim", "nrmse", "hfen",
)
assert set(DISPLAY_ORDER) == set(METRICS)


def best_value(metric: str, means: Iterable[float]) -> float:
    """The best of a column's finite means: the lowest for error metrics, else the highest."""
    finite = [m for m in means if math.isfinite(m)]
    if not finite:
        return math.nan
    return min(finite) if metric in LOWER_IS_BETTER else max(finite)


class MetricsTable:
    """Rows ``{subject, slice, method, *METRICS}`` (``lfmri.scoring.metrics.METRICS``)."""

    def __init__(self, rows: Iterable[Mapping] = ()) -> None:
        self.rows: list[dict] = [dict(r) for r in rows]
        self.failures: dict[str, str] = {}  # input -> why it has no rows (evaluate's per-input errors)

    def add(self, subjects: Sequence[str], slices: Sequence[int], method: str, metrics: Mapping[str, torch.Tensor]) -> None:
        values = {k: torch.as_tensor(v).detach().cpu().double().tolist() for k, v in metrics.items()}
        for i, (subject, index) in enumerate(zip(subjects, slices)):
            self.rows.append({"subject": subject, "slice": int(index), "method": method, **{k: values[k][i] for k in METRICS}})

    @property
    def methods(self) -> list[str]:
        return list(dict.fromkeys(r["method"] for r in self.rows))

    @property
    def subjects(self) -> list[str]:
        return list(dict.fromkeys(r["subject"] for r in self.rows))

    def summary(self, subject: str | None = None) -> dict[str, dict[str, tuple[float, float, int]]]:
        """``{method: {metric: (mean, std, n)}}`` over one subject's slices, or over all slices."""
        groups: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        for row in self.rows:
            if subject is None or row["subject"] == subject:
                for k in METRICS:
                    groups[row["method"]][k].append(row[k])
        out = {}
        for method in self.methods:
            if method in groups:
                out[method] = {}
                for k, vals in groups[method].items():
                    arr = np.asarray(vals, dtype=np.float64)
                    arr = arr[np.isfinite(arr)]
                    std = float(arr.std(ddof=1)) if len(arr) > 1 else 0.0
                    out[method][k] = (float(arr.mean()) if len(arr) else math.nan, std, len(arr))
        return out

    def means(self, subject: str | None = None) -> dict[str, dict[str, float]]:
        return {m: {k: v[0] for k, v in s.items()} for m, s in self.summary(subject).items()}

    def write_csv(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=["subject", "slice", "method", *METRICS])
            writer.writeheader()
            for row in self.rows:
                writer.writerow({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()})
        return path

    @classmethod
    def read_csv(cls, path: str | Path) -> MetricsTable:
        with Path(path).open() as f:
            # tables written before a metric existed read it as NaN
            return cls(
                {**r, "slice": int(r["slice"]), **{k: float(r.get(k) or "nan") for k in METRICS}}
                for r in csv.DictReader(f)
            )

    def pooled(self, subjects: Iterable[str]) -> dict[str, dict[str, tuple[float, float, int]]]:
        """:meth:`summary` over the slices of several subjects together."""
        return MetricsTable(r for r in self.rows if r["subject"] in set(subjects)).summary()

    def to_markdown(self, title: str = "", groups: Mapping[str, str] | None = None) -> str:
        """Per-subject rows, then pooled rows: over all subjects, or, with ``groups`` (subject ->
        label such as ``unseen`` / ``seen in training``), over each group separately, so that
        subjects a network trained on are never pooled with subjects it never saw. A table with
        seen subjects says so under its title."""
        lines = [f"## {title}", ""] if title else []
        if groups and SEEN in groups.values():
            lines += [f"**Not a generalisation estimate**: {', '.join(s for s in self.subjects if groups.get(s) == SEEN)} "
                      "trained or validated the network (other slices of the same brain, e.g. the one-brain MNI152 "
                      "demo). Only unseen subjects measure super-resolution.", ""]
        header = ["subject", "method", "slices", *(HEADERS[k] for k in DISPLAY_ORDER)]
        lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        rows = [(s, self.summary(s)) for s in self.subjects]
        if groups:
            labels = list(dict.fromkeys(groups.get(s, "other") for s in self.subjects))
            for label in labels:
                members = [s for s in self.subjects if groups.get(s, "other") == label]
                if len(members) > 1 or len(labels) > 1:
                    rows.append((f"all {label} ({len(members)})", self.pooled(members)))
        elif len(rows) > 1:
            rows.append(("all", self.summary()))
        for subject, summary in rows:
            best = {k: best_value(k, (v[k][0] for v in summary.values())) for k in METRICS}
            for method, stats in summary.items():
                cells = []
                for k in DISPLAY_ORDER:
                    mean, std, _ = stats[k]
                    digits = 2 if k.startswith("psnr") else 4
                    cell = f"{mean:.{digits}f} ± {std:.{digits}f}"
                    cells.append(f"**{cell}**" if mean == best[k] and len(summary) > 1 else cell)
                n = stats[METRICS[0]][2]
                lines.append("| " + " | ".join([subject, method, str(n), *cells]) + " |")
        lines += ["", NOTE, ""]
        return "\n".join(lines)
