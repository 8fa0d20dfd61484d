"""Compare the runs of a sweep: ``python -m lfmri.sweep summarize SWEEP_DIR``.

Every run directory below SWEEP_DIR (any folder with a ``.hydra/overrides.yaml``) becomes one row:
its overrides, the best validation PSNR over its epochs with the SSIM of that same validation,
the epoch and step it was reached at, and the test PSNR/SSIM of its tested checkpoint. Rows are
sorted by best validation PSNR. The table is printed and written to ``SWEEP_DIR/summary.csv`` and
``SWEEP_DIR/summary.md``. The validation history comes from ``logs/metrics.csv``; runs without it
(``fast_dev_run`` disables loggers) fall back to the last validation in ``metrics.json``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from pathlib import Path

import yaml

COLUMNS = ("run", "overrides", "val/psnr", "val/ssim", "epoch", "step", "test/psnr", "test/ssim", "status")


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def best_validation(run_dir: Path) -> dict:
    """Best ``val/psnr`` of a run with the ``val/ssim`` logged with it, or ``{}`` when none was logged."""
    history = run_dir / "logs" / "metrics.csv"
    best: dict = {}
    if history.is_file():
        with history.open(newline="") as file:
            for row in csv.DictReader(file):
                psnr = _float(row.get("val/psnr"))
                if psnr is not None and (not best or psnr > best["val/psnr"]):
                    best = {
                        "val/psnr": psnr,
                        "val/ssim": _float(row.get("val/ssim")),
                        "epoch": int(row["epoch"]) if row.get("epoch") else None,
                        "step": int(row["step"]) if row.get("step") else None,
                    }
    if best:
        return best
    final = run_dir / "metrics.json"
    if final.is_file():
        record = json.loads(final.read_text())
        metrics = record.get("metrics", {})
        if _float(metrics.get("val/psnr")) is not None:
            return {
                "val/psnr": _float(metrics["val/psnr"]),
                "val/ssim": _float(metrics.get("val/ssim")),
                "epoch": record.get("epoch"),
                "step": record.get("global_step"),
            }
    return {}


def summarize_run(run_dir: Path, sweep_dir: Path) -> dict:
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text()) or []
    row = {key: None for key in COLUMNS}
    row["run"] = str(run_dir.relative_to(sweep_dir)) if run_dir != sweep_dir else "."
    row["overrides"] = " ".join(overrides)
    row.update(best_validation(run_dir))
    final = run_dir / "metrics.json"
    if final.is_file():
        metrics = json.loads(final.read_text()).get("metrics", {})
        row["test/psnr"], row["test/ssim"] = _float(metrics.get("test/psnr")), _float(metrics.get("test/ssim"))
        row["status"] = "complete"
    else:
        row["status"] = "incomplete"  # still running, failed or killed: see its train.log
    return row


def summarize(sweep_dir: str | Path) -> list[dict]:
    """One row per run directory below ``sweep_dir``, best validation PSNR first."""
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep directory")
    runs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")})
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no run directories (folders with .hydra/overrides.yaml) below it")
    rows = [summarize_run(run, sweep_dir) for run in runs]
    if len(rows) > 1:  # show what tells the runs apart, not what they share
        shared = set.intersection(*(set(r["overrides"].split(" ")) for r in rows))
        for row in rows:
            row["overrides"] = " ".join(o for o in row["overrides"].split(" ") if o not in shared) or "-"
    return sorted(rows, key=lambda r: (r["val/psnr"] is None, -(r["val/psnr"] or 0.0), r["run"]))


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def to_markdown(rows: list[dict]) -> str:
    digits = {"val/psnr": 2, "test/psnr": 2, "val/ssim": 4, "test/ssim": 4}
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c], digits.get(c, 0)) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_summary(sweep_dir: str | Path, rows: list[dict]) -> tuple[Path, Path]:
    sweep_dir = Path(sweep_dir)
    csv_path, md_path = sweep_dir / "summary.csv", sweep_dir / "summary.md"
    with csv_path.open("w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    md_path.write_text(
        f"# Sweep {sweep_dir}\n\nBest validation PSNR per run (SSIM of the same validation), sorted.\n\n"
        + to_markdown(rows)
    )
    return csv_path, md_path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lfmri.sweep", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    summary = commands.add_parser("summarize", help="table of the best validation PSNR/SSIM of every run")
    summary.add_argument("sweep_dir", help="a multirun directory, e.g. outputs/train/multirun/2026-11-21_10-00-00")
    args = parser.parse_args(argv)
    try:
        rows = summarize(args.sweep_dir)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    csv_path, md_path = write_summary(args.sweep_dir, rows)
    print(to_markdown(rows))
    print(f"written: {csv_path}, {md_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
