"""Compare the runs of a sweep: ``lfmri-sweep summarize output_dir=SWEEP_DIR [metric=val/psnr_brain]``.

Every run directory below SWEEP_DIR (any folder with a ``.hydra/overrides.yaml``) becomes one row:
its overrides, its best validation by ``metric`` (default ``val/psnr_brain``; minimised or
maximised as the metric says, e.g. ``val/nrmse`` is minimised) with the other metrics of that same
validation, the epoch and step it was reached at, and the test metrics of its tested checkpoint.
In-brain columns come first (whole-slice scores reward background denoising), each PSNR in the brain
with its gain over zero-filling on the same slices (``*_vs_zerofill``, dB). Rows are sorted
best first; numbers in overrides (Optuna's learning rates) are shown to 4 significant digits. The
table is printed and written to ``SWEEP_DIR/summary.csv``, ``SWEEP_DIR/summary.md`` and
``SWEEP_DIR/summary.html`` (the table with each run's validation panel beside its row; a refresh
replaces only the summary lfmri-sweep wrote there itself, unchanged since: their digests are kept in
``SWEEP_DIR/.lfmri-summary.json``; any other file of those names is left alone and refused). The
validation history comes from ``logs/metrics.csv``; runs without it (``fast_dev_run`` disables
loggers) fall back to the last validation in ``metrics.json``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml
from omegaconf import MISSING

from lfmri.cli.options import fail, parse_command
from lfmri.errors import ExistingOutputError
from lfmri.files import atomic_write, load_yaml_record, read_record, written_together
from lfmri.scoring.names import metric_mode


PROG = "lfmri-sweep"

VAL_COLUMNS = ("val/psnr_brain", "val/psnr_brain_vs_zerofill", "val/ssim_brain", "val/psnr", "val/ssim")
TEST_COLUMNS = ("test/psnr_brain", "test/psnr_brain_vs_zerofill", "test/ssim_brain", "test/psnr", "test/ssim")
# the zero-fill baseline's in-brain PSNR on the same slices, logged beside the network's
# (lfmri.modules.supervised): the gain columns are the network's minus these
ZEROFILL = {"val/psnr_brain_vs_zerofill": ("val/psnr_brain", "baselines/val/zerofill_psnr_brain"),
            "test/psnr_brain_vs_zerofill": ("test/psnr_brain", "baselines/test/zerofill_psnr_brain")}
COLUMNS = ("run", "overrides", *VAL_COLUMNS, "epoch", "step", *TEST_COLUMNS, "status")
DEFAULT_METRIC = "val/psnr_brain"


def _float(value) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None  # an infinite PSNR (a constant slice) is never ranked best


def _better(metric: str, value: float, best: float | None) -> bool:
    return best is None or (value < best if metric_mode(metric) == "min" else value > best)


def gain(values: dict, column: str) -> float | None:
    """The network's in-brain PSNR minus zero-fill's on the same slices: as the run logged it (the
    value wandb shows), or from the two logged means (runs of lfmri before it logged the gain)."""
    logged = _float(values.get(column))
    if logged is not None:
        return logged
    network, zerofill = (_float(values.get(key)) for key in ZEROFILL[column])
    return None if network is None or zerofill is None else network - zerofill


def best_validation(run_dir: Path, metric: str = DEFAULT_METRIC) -> dict:
    """The validation of a run with the best ``metric``, with every metric logged with it, or ``{}``."""
    history = run_dir / "logs" / "metrics.csv"
    columns = [c for c in dict.fromkeys([metric, *VAL_COLUMNS]) if c not in ZEROFILL]
    best: dict = {}
    if history.is_file():
        with history.open(newline="") as file:
            for row in csv.DictReader(file):
                value = _float(row.get(metric))
                if value is not None and _better(metric, value, best.get(metric)):
                    best = {key: _float(row.get(key)) for key in columns}
                    best["val/psnr_brain_vs_zerofill"] = gain(row, "val/psnr_brain_vs_zerofill")
                    best["epoch"] = int(row["epoch"]) if row.get("epoch") else None
                    best["step"] = int(row["step"]) if row.get("step") else None
    if best:
        return best
    final = run_dir / "metrics.json"
    if final.is_file():
        record = json.loads(read_record(final))
        metrics = record.get("metrics", {})
        if _float(metrics.get(metric)) is not None:
            return {**{key: _float(metrics.get(key)) for key in columns},
                    "val/psnr_brain_vs_zerofill": gain(metrics, "val/psnr_brain_vs_zerofill"),
                    "epoch": record.get("epoch"), "step": record.get("global_step")}
    return {}


def logged_metrics(run_dir: Path) -> set[str]:
    """The validation and test metric names a run logged (its CSV header and ``metrics.json``); a
    file that cannot be read adds nothing (its row already says so)."""
    names: set[str] = set()
    try:
        history = run_dir / "logs" / "metrics.csv"
        if history.is_file():  # never a FIFO (it would block)
            with history.open(newline="") as file:
                names.update(next(csv.reader(file), []))
    except (OSError, UnicodeDecodeError, csv.Error):
        pass
    try:
        names.update(json.loads(read_record(run_dir / "metrics.json")).get("metrics", {}))
    except (OSError, ValueError, AttributeError):
        pass
    return {n for n in names if n.startswith(("val/", "test/"))}


def round_numbers(text: str, digits: int = 4) -> str:
    """``lr=0.0003574712922600243`` -> ``lr=0.0003575``: long floats in overrides, readable."""
    def short(match: re.Match) -> str:
        return f"{float(match.group(0)):.{digits}g}"

    return re.sub(r"(?<![\w.])\d+\.\d{5,}(?:[eE][-+]?\d+)?|(?<![\w.])\d+(?:\.\d+)?[eE][-+]?\d+", short, text)


def columns(metric: str = DEFAULT_METRIC) -> tuple[str, ...]:
    return tuple(dict.fromkeys(("run", "overrides", metric, *COLUMNS[2:])))


class RunFileError(ValueError):
    """A file of one run that cannot be read (cut short, not JSON/YAML/CSV); names the file."""


def _read(path: Path, parse):
    """``parse(path)``, or :class:`RunFileError` naming ``path`` when its content is not what lfmri wrote."""
    try:
        return parse(path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, yaml.YAMLError, csv.Error) as err:
        detail = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise RunFileError(f"{path}: unreadable ({type(err).__name__}: {detail})") from None


def summarize_run(run_dir: Path, sweep_dir: Path, metric: str = DEFAULT_METRIC, failed: str | None = None) -> dict:
    """One run's row; ``failed``: the error its job ended with (the row says so).

    A damaged file of the run (``overrides.yaml``, ``metrics.csv``, ``metrics.json``) makes its row
    ``unreadable: <file> (...)`` and leaves the others' rows as they are.
    """
    row = {key: None for key in columns(metric)}
    row["run"] = str(run_dir.relative_to(sweep_dir)) if run_dir != sweep_dir else "."
    try:
        overrides = _read(run_dir / ".hydra" / "overrides.yaml", lambda p: [str(o) for o in load_yaml_record(p) or []])
        row["overrides"] = " ".join(round_numbers(o) for o in overrides)
        # ranked by a test metric: the validation columns still show the best validation (by the default)
        by = metric if metric.startswith("val/") else DEFAULT_METRIC
        row.update(_read(run_dir / "logs" / "metrics.csv", lambda p: best_validation(run_dir, by)))
        final = run_dir / "metrics.json"
        if final.is_file():
            metrics = _read(final, lambda p: dict(json.loads(read_record(p)).get("metrics", {})))
            row.update({key: _float(metrics.get(key)) for key in (*TEST_COLUMNS, metric) if key.startswith("test/")})
            row["test/psnr_brain_vs_zerofill"] = gain(metrics, "test/psnr_brain_vs_zerofill")
            row["status"] = "complete"
        else:
            row["status"] = "incomplete"  # still running, failed or killed: see its train.log
    except RunFileError as err:
        print(f"{PROG}: warning: {err}", file=sys.stderr, flush=True)
        row["overrides"] = row["overrides"] or "?"
        row["status"] = f"unreadable: {err}"
    if failed:
        row["status"] = f"failed: {failed}"
    return row


def summarize(sweep_dir: str | Path, metric: str = DEFAULT_METRIC, failed: dict[Path, str] | None = None,
              require_metric: bool = False) -> list[dict]:
    """One row per run directory below ``sweep_dir``, the best validation ``metric`` first.

    ``failed``: run directories whose job ended with an error (the sweep's own record), and the error.
    ``require_metric`` (a metric the user named): refuse one that runs logged other metrics but never
    this one (a misspelt or never-logged name), instead of a table with a blank ranking column.
    """
    metric_mode(metric)  # an unknown metric fails here, naming the choices
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"{sweep_dir}: no such sweep directory")
    runs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/overrides.yaml")})
    if not runs:
        raise FileNotFoundError(f"{sweep_dir}: no run directories (folders with .hydra/overrides.yaml) below it")
    failed = {Path(k).resolve(): v for k, v in (failed or {}).items()}
    rows = [summarize_run(run, sweep_dir, metric, failed.get(run.resolve())) for run in runs]
    if require_metric and all(row[metric] is None for row in rows):
        # runs that logged other metrics but never this one: a misspelt or never-logged name, not a blank column
        logged = sorted(set().union(*(logged_metrics(run) for run in runs)))
        if logged:
            raise ValueError(f"metric={metric}: no run below {sweep_dir} logged it; logged: {', '.join(logged)}")
    if len(rows) > 1:  # show what tells the runs apart, not what they share
        shared = set.intersection(*(set(r["overrides"].split(" ")) for r in rows))
        for row in rows:
            row["overrides"] = " ".join(o for o in row["overrides"].split(" ") if o not in shared) or "-"
    sign = 1.0 if metric_mode(metric) == "min" else -1.0
    return sorted(rows, key=lambda r: (r[metric] is None, sign * (r[metric] or 0.0), r["run"]))


def _cell(value, digits: int) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _digits(column: str) -> int:
    return 2 if "psnr" in column else 4 if "/" in column else 0


def to_markdown(rows: list[dict]) -> str:
    names = list(rows[0]) if rows else list(COLUMNS)
    lines = ["| " + " | ".join(names) + " |", "|" + "---|" * len(names)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c], _digits(c)) for c in names) + " |")
    return "\n".join(lines) + "\n"


SUMMARY_RECORD = ".lfmri-summary.json"  # the SHA-256 of the summary files lfmri-sweep last wrote there


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def owned_summaries(sweep_dir: Path, paths: list[Path]) -> bool:
    """Whether the existing ones of ``paths`` are lfmri's own summary, as it wrote it, so a refresh may
    replace them; refuses (:class:`~lfmri.errors.ExistingOutputError`) a file lfmri did not write, or
    that was edited since (its content no longer the one recorded in ``SUMMARY_RECORD``)."""
    existing = [p for p in paths if os.path.lexists(p)]
    if not existing:
        return False
    try:
        record = json.loads((sweep_dir / SUMMARY_RECORD).read_text())
    except (OSError, ValueError):
        record = {}
    for path in existing:
        if not path.is_file() or path.is_symlink() or not isinstance(record, dict) or record.get(path.name) != _digest(path):
            raise ExistingOutputError(
                f"{path} exists and is not a summary lfmri-sweep wrote (or was edited since): it is left as it is; "
                "move it away to have the summary written there"
            )
    return True


_PANEL_NUMBER = re.compile(r"^(epoch|step)_(\d+)\.png$")


def run_panel(run_dir: Path, row: dict) -> Path | None:
    """The validation panel of a run nearest its best validation (``panels/epoch_E.png`` of that epoch,
    or the ``step_S.png`` nearest its step), else its last panel; ``None`` without panels."""
    folder = run_dir / "panels"
    if not folder.is_dir():
        return None
    panels = sorted((m[1], int(m[2]), p) for p in folder.iterdir() if (m := _PANEL_NUMBER.match(p.name)) and p.is_file())
    if not panels:
        return None
    for kind, target in (("epoch", row.get("epoch")), ("step", row.get("step"))):
        numbered = [(abs(n - target), p) for k, n, p in panels if k == kind] if target is not None else []
        if numbered:
            return min(numbered, key=lambda pair: pair[0])[1]
    return panels[-1][2]


def to_html(sweep_dir: Path, rows: list[dict], metric: str) -> str:
    """The summary as one page: each run's row beside its validation panel (LR | zero-fill | network
    | HR, in-brain scores in the titles), best first. Panels are linked by relative path, so the page
    opens from the sweep folder (or a copy of it) without a server."""
    from html import escape

    names = [c for c in (rows[0] if rows else COLUMNS) if c != "run"]
    head = "".join(f"<th>{escape(c)}</th>" for c in ["run", *names, "validation panel"])
    body = []
    for row in rows:
        run_dir = sweep_dir / row["run"]
        panel = run_panel(run_dir, row)
        image = (f'<a href="{escape(panel.relative_to(sweep_dir).as_posix())}"><img src="{escape(panel.relative_to(sweep_dir).as_posix())}"'
                 ' loading="lazy"></a>') if panel else "-"
        cells = "".join(f"<td>{escape(_cell(row[c], _digits(c)))}</td>" for c in names)
        body.append(f"<tr><td>{escape(str(row['run']))}</td>{cells}<td>{image}</td></tr>")
    return (
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + escape(f"Sweep {sweep_dir}") + "</title>\n"
        "<style>body{font-family:sans-serif} table{border-collapse:collapse} td,th{border:1px solid #ccc;"
        "padding:4px;vertical-align:top;font-size:13px} img{max-width:720px}</style></head><body>\n"
        f"<h1>{escape(f'Sweep {sweep_dir}')}</h1>\n<p>Best validation by {escape(metric)} per run, best first; "
        "*_vs_zerofill: in-brain PSNR gain over zero-filling on the same slices (dB). Each panel is the "
        "validation nearest the run's best.</p>\n"
        f"<table>\n<tr>{head}</tr>\n" + "\n".join(body) + "\n</table></body></html>\n"
    )


def write_summary(sweep_dir: str | Path, rows: list[dict], metric: str = DEFAULT_METRIC) -> tuple[Path, Path]:
    """``summary.csv``, ``summary.md`` and ``summary.html`` (all, or none), replacing only a summary
    lfmri-sweep wrote itself and nobody changed since (:func:`owned_summaries`); the files' digests go
    to ``SUMMARY_RECORD``. Returns the CSV and Markdown paths (the HTML page is beside them)."""
    sweep_dir = Path(sweep_dir)
    csv_path, md_path, html_path = sweep_dir / "summary.csv", sweep_dir / "summary.md", sweep_dir / "summary.html"
    refresh = owned_summaries(sweep_dir, [csv_path, md_path, html_path])
    with written_together({"csv": csv_path, "md": md_path, "html": html_path}, overwrite=refresh) as tmp:
        with tmp["csv"].open("w", newline="") as file:
            writer = csv.DictWriter(file, fieldnames=list(rows[0]) if rows else list(COLUMNS))
            writer.writeheader()
            writer.writerows(rows)
        tmp["md"].write_text(
            f"# Sweep {sweep_dir}\n\nBest validation by {metric} per run (the other metrics of the same "
            f"validation), best first; *_vs_zerofill: in-brain PSNR gain over zero-filling on the same slices (dB).\n\n"
            + to_markdown(rows)
        )
        tmp["html"].write_text(to_html(sweep_dir, rows, metric))
        digests = {path.name: _digest(tmp[key]) for key, path in (("csv", csv_path), ("md", md_path), ("html", html_path))}
    with atomic_write(sweep_dir / SUMMARY_RECORD) as tmp_record:
        tmp_record.write_text(json.dumps(digests, indent=1) + "\n")
    return csv_path, md_path


@dataclass
class SummarizeOptions:
    """The options of ``lfmri-sweep summarize``."""

    output_dir: str = MISSING  # the sweep's (multirun) directory, e.g. outputs/train/multirun/2026-11-21_10-00-00
    metric: str = DEFAULT_METRIC  # rank by this validation metric (val/nrmse etc. are minimised)


def main(argv: list[str] | None = None) -> int:
    summarize_options = {"required": ["output_dir"], "renamed": {"sweep_dir": "output_dir"}}
    command, options = parse_command(PROG, {"summarize": (SummarizeOptions, summarize_options)},
                                     sys.argv[1:] if argv is None else argv, __doc__)
    try:
        rows = summarize(options.output_dir, options.metric, require_metric=True)
        csv_path, md_path = write_summary(options.output_dir, rows, options.metric)
    except (FileNotFoundError, ValueError, ExistingOutputError) as err:
        fail(f"{PROG} {command}", str(err))
    print(to_markdown(rows))
    print(f"written: {csv_path}, {md_path}, {md_path.with_suffix('.html')} (each run's panel beside its row)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
