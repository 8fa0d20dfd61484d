"""The papers' comparisons and the loss table, re-run on real brains and scored on unseen subjects.

Each comparison (``--set``) is one ``lfmri-train -m`` sweep, run the way a user runs one: the rows
are the values of one swept key (``model=...``, ``loss=...``, ``experiment=...``), all other options
shared, so every row has the same budget (``--steps`` optimiser steps of ``--batch`` patches) and
the same data split. The sweep writes one run directory per row (named after the row, so a row
keeps its folder when the sweep is run again) and ``summary.md`` (``lfmri-sweep summarize``). A row
already tested (``test/metrics.csv``) is not trained again; a row that was stopped continues from
its ``last.ckpt`` (``resume=auto``), so a long comparison is run across sessions with one command:

    python benchmarks/comparisons.py --set mrln_x2 --data '/data/*.nii.gz' \\
        --subjects '{val:[...],test:[...]}' --out outputs/comparisons [--steps 1000 --batch 32]
    python benchmarks/comparisons.py --set mrln_x2 --out outputs/comparisons --report-only

``--launcher slurm_cpu`` submits the sweep to SLURM (``hydra/launcher=slurm_cpu``) instead of
running its rows one after another here. The report reads each row's test table, which holds only
the test split, the subjects the network never saw (neither trained nor validated on), and prints
one Markdown table: in-brain PSNR and SSIM first, then whole-slice PSNR, pooled over the unseen
subjects and per site (``--other-site``: the sites not in training, pooled apart), each row with
the paper's figure, its steps, its wall time and whether its validation was still rising over the
last fifth of the run; then a one-line verdict on the ranking.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lfmri.scoring.report import MetricsTable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality import site  # noqa: E402  (benchmarks/quality.py: the site a subject name implies)

# one optimiser for every row of a comparison (the papers trained each network with its own recipe
# over far longer runs; at an equal CPU budget one schedule keeps the rows comparable): Adam with a
# short warm-up and cosine decay per step, the gradient clipping of the experiment kept
ADAM_COSINE = ["optimizer=adam", "optimizer.lr=1e-3", "scheduler=cosine_warmup"]  # conf/optimizer, conf/scheduler


@dataclass(frozen=True)
class Comparison:
    """One paper's table: ``key`` swept over ``rows`` on top of ``overrides``."""

    title: str
    overrides: list[str]
    key: str
    rows: dict[str, str]                      # row value -> label
    paper: dict[str, str] = field(default_factory=dict)  # row value or baseline name -> the paper's figure
    paper_metric: str = "PSNR (dB)"
    method: dict[str, str] = field(default_factory=dict)  # row value -> the method name in the test table
    baseline: str = "bicubic"  # the non-learned row the gains are taken over (zerofill for k-space degradations)
    data: str = "folder"  # folder: HR volumes degraded on the fly; lowfield_sim: simulated 64 mT pairs (names sim-...)
    # rows that are not a value of the swept key, each trained after the sweep as a run of its own:
    # row name -> (label, the row whose best checkpoint it starts from or None, its overrides, which
    # replace the comparison's own for the same keys)
    extra_rows: dict[str, tuple[str, str | None, list[str]]] = field(default_factory=dict)

    def labels(self) -> dict[str, str]:
        return {**self.rows, **{row: label for row, (label, _, _) in self.extra_rows.items()}}

    @property
    def key_is_group(self) -> bool:
        """A config group (model=, loss=, experiment=) or a plain option (context_slices=)."""
        return (ROOT / "conf" / self.key).is_dir()

    def folder(self, row: str) -> str:
        """The run directory of a row: its value for a config group, ``key_value`` for a plain option."""
        return row if self.key_is_group or row in self.extra_rows else f"{self.key}_{row}"

    def subdir(self) -> str:
        """``hydra.sweep.subdir`` giving every sweep job the folder of its row (:meth:`folder`)."""
        return f"${{hydra.runtime.choices.{self.key}}}" if self.key_is_group else f"{self.key}_${{{self.key}}}"


def mrln_table(scale: int) -> Comparison:
    # the MRLN paper's comparison table (PSNR in dB, bicubic degradation; its own data, not these brains)
    figures = {"bicubic": (40.55, 35.12, 32.31), "srcnn": (44.96, 36.73, 33.92), "espcn": (44.39, 36.27, 33.53),
               "fsrcnn": (43.46, 37.52, 34.25), "mrln": (46.56, 38.75, 35.39)}
    column = {2: 0, 3: 1, 4: 2}[scale]
    return Comparison(
        title=f"MRLN comparison x{scale}, bicubic degradation",
        overrides=[f"experiment=mrln_x{scale}", *ADAM_COSINE],
        key="model",
        rows={"srcnn": "SRCNN", "espcn": "ESPCN", "fsrcnn": "FSRCNN", "mrln": "MRLN"},
        paper={name: f"{values[column]:.2f}" for name, values in figures.items()},
    )


COMPARISONS = {
    **{f"mrln_x{s}": mrln_table(s) for s in (2, 3, 4)},
    "losses": Comparison(
        title="SRDenseNet x2 under the shipped k-space degradation, one loss per row",
        overrides=["experiment=srdensenet_kspace_x2"],
        key="loss",
        rows={"mse": "MSE", "l1": "L1", "l1_hfen": "L1 + HFEN", "ssim": "L1 + SSIM", "l1_tv": "L1 + TV"},
        baseline="zerofill",
        # the adversarial term as the shipped GAN-CPCE uses it: a small weight on top of the pixel loss,
        # fine-tuning the L1 row's generator (a GAN from scratch at this budget learns noise)
        # (steps are generator updates; the fresh critic first learns on the L1 generator for 100 updates)
        extra_rows={"l1_wgan": ("L1, then WGAN-GP fine-tune", "l1", [
            "module=wgan", "module.adversarial_weight=1e-3", "module.optimizer.lr=5e-5",
            "module.scheduler=null", "module.critic_scheduler=null", "module.critic_warmup_steps=100"])},
    ),
    # Lyu et al.'s two networks on their degradation (k-space zero-filled x2 input, no noise), each with
    # its paper's losses and optimiser (Adam 1e-4); GAN-CPCE without its VGG term (no ImageNet weights here)
    "lyu": Comparison(
        title="GAN-CIRCLE against GAN-CPCE (Lyu et al.), k-space zero-filled x2",
        overrides=[],
        key="experiment",
        rows={"lyu2018_gan_cpce_mse": "GAN-CPCE (MSE + WGAN-GP)", "lyu2018_gan_circle": "GAN-CIRCLE"},
        paper={"lyu2018_gan_cpce_mse": "33.20", "lyu2018_gan_circle": "32.30"},
        baseline="zerofill",
    ),
    # The 64 mT task of lowfield-sim on axial 1 mm slices, i.e. across the 5 mm low-field slices: each
    # slice lacks what lies between the thick slices, which the low-field slices above and below (5 mm
    # away) hold and the 1 mm grid's own neighbours do not (the hypothesis the context rows test).
    # Each network with its own recipe (optimiser, schedule) at the same steps and batch; no EMA, which
    # AMIR's recipe does not have (the rows of docs/models.md were measured so).
    # The paper's figure is the AMIR study's mean on real sagittal 64 mT -> 3T pairs.
    "lowfield": Comparison(
        title="AMIR against lowfield-sim's residual SRDenseNet without and with neighbouring slices, simulated 64 mT, axial",
        overrides=["experiment=lowfield_sim", "data.slice_axis=2", "callbacks.ema=null"],
        key="context_slices",
        rows={"0": "SRDenseNet, residual (lowfield-sim), one slice", "1": "SRDenseNet + the low-field slices 5 mm above and below"},
        extra_rows={"amir_lowfield_cpu": ("AMIR, scaled to a CPU, one slice", None, ["experiment=amir_lowfield_cpu"])},
        paper={"amir_lowfield_cpu": "18.64"},
        baseline="zerofill",
        data="lowfield_sim",
    ),
}


def run_dir(out: Path, name: str, row: str) -> Path:
    return out / name / COMPARISONS[name].folder(row)


def data_overrides(comparison: Comparison, args, batches_per_step: int = 1) -> list[str]:
    """The data options of every row: the folder of HR volumes, or the simulated 64 mT pairs made from
    them (whose subjects are named ``sim-<volume>``). One epoch (one validation) every
    ``steps / validations`` steps; an adversarial row reads ``batches_per_step`` batches a step
    (``n_critic + 1``: its steps count generator updates)."""
    per_epoch = max(1, args.steps // args.validations) * args.batch * batches_per_step
    budget = [f"data.batch_size={args.batch}", f"data.patches_per_epoch={per_epoch}"]
    if comparison.data == "lowfield_sim":
        named = lambda name: name if name.startswith("sim-") else f"sim-{name}"  # noqa: E731
        subjects = re.sub(r"\[([^\]]*)\]", lambda m: "[" + ",".join(named(n.strip()) for n in m.group(1).split(",") if n.strip()) + "]",
                          args.subjects)
        # data= named although every row's experiment sets it: a multirun composes its primary config without
        # the swept experiment=, and data.synthetic_pattern must exist there
        return ["data=paired_lowfield", f"data.synthetic_pattern={args.data}", f"data.subjects={subjects}", *budget]
    return ["data=folder", f"data.pattern={args.data}", f"data.subjects={args.subjects}", *budget]


def sweep_command(comparison: Comparison, rows: list[str], out: Path, name: str, args) -> list[str]:
    command = [
        sys.executable, "-m", "lfmri.cli.train", "-m", *comparison.overrides,
        f"{comparison.key}={','.join(rows)}", *data_overrides(comparison, args),
        "trainer.max_epochs=-1", f"trainer.max_steps={args.steps}", "resume=auto",
        f"hydra.sweep.dir={out / name}", f"hydra.sweep.subdir={comparison.subdir()}",
    ]
    if args.launcher:
        command.append(f"hydra/launcher={args.launcher}")
    return command


def extra_row_command(comparison: Comparison, row: str, out: Path, name: str, args) -> list[str]:
    """One ``lfmri-train`` run (a sweep of one job, so ``--launcher`` applies too) of a row outside the
    swept key: the comparison's options with the row's own in place of the same keys, starting from the
    best checkpoint of the row it fine-tunes, if any (with that row's value of the swept key)."""
    _, start, extra = comparison.extra_rows[row]
    replaced = {option.partition("=")[0] for option in extra}
    shared = [option for option in comparison.overrides if option.partition("=")[0] not in replaced]
    origin = [f"{comparison.key}={start}", f"init_from={run_dir(out, name, start) / 'checkpoints' / 'best.ckpt'}"] if start else []
    # module=wgan reads n_critic + 1 batches per step (conf/module/wgan.yaml: 4 + 1 unless the row sets it)
    n_critic = next((int(o.partition("=")[2]) for o in extra if o.startswith("module.n_critic=")), 4)
    batches_per_step = n_critic + 1 if "module=wgan" in extra else 1
    command = [
        sys.executable, "-m", "lfmri.cli.train", "-m", *shared, *extra, *data_overrides(comparison, args, batches_per_step), *origin,
        "trainer.max_epochs=-1", f"trainer.max_steps={args.steps}", "resume=auto",
        f"hydra.sweep.dir={out / name}", f"hydra.sweep.subdir={row}",
    ]
    if args.launcher:
        command.append(f"hydra/launcher={args.launcher}")
    return command


def wall_minutes(run: Path) -> float | None:
    """Minutes between the first and the last line of the run's ``train.log`` (all its sessions)."""
    log = run / "train.log"
    if not log.is_file():
        return None
    stamps = []
    for line in log.read_text(errors="replace").splitlines():
        if line.startswith("[") and "]" in line:
            try:
                stamps.append(datetime.strptime(line[1:24], "%Y-%m-%d %H:%M:%S,%f"))
            except ValueError:
                continue
    return (stamps[-1] - stamps[0]).total_seconds() / 60 if len(stamps) > 1 else None


def validation_history(run: Path, metric: str = "val/psnr_brain") -> list[tuple[int, float]]:
    path = run / "logs" / "metrics.csv"
    if not path.is_file():
        return []
    with path.open() as f:
        return [(int(r["step"]), float(r[metric])) for r in csv.DictReader(f) if r.get(metric)]


def gradient_shares(run: Path) -> str:
    """Each loss term's share of the gradient norm, averaged over the run's measurements
    (``train/grad_share_<name>`` in its CSV log; the adversarial modules: the generator's terms)."""
    path = run / "logs" / "metrics.csv"
    if not path.is_file():
        return ""
    sums: dict[str, list[float]] = {}
    with path.open() as f:
        for record in csv.DictReader(f):
            for key, value in record.items():
                if key and key.startswith("train/grad_share_") and value not in ("", None):
                    sums.setdefault(key.removeprefix("train/grad_share_"), []).append(float(value))
    return ", ".join(f"{name} {100 * sum(v) / len(v):.0f} %" for name, v in sums.items() if v)


def still_rising(history: list[tuple[int, float]], steps: int, margin: float = 0.02) -> str:
    """Whether the best validation of the last fifth of the run beats every earlier one by ``margin`` dB."""
    late = [v for s, v in history if s >= 0.8 * steps]
    early = [v for s, v in history if s < 0.8 * steps]
    if not late or not early:
        return "n/a"
    return "yes" if max(late) > max(early) + margin else "no"


def pooled(table: MetricsTable, subjects: list[str], method: str) -> dict[str, float]:
    if not subjects:
        return {}
    s = table.pooled(subjects)[method]
    return {k: s[k][0] for k in ("psnr_brain", "ssim_brain", "psnr")}


def report(comparison: Comparison, out: Path, name: str, other_sites: list[str]) -> None:
    rows, baseline = [], None
    for row, label in comparison.labels().items():
        run = run_dir(out, name, row)
        metrics_csv = run / "test" / "metrics.csv"
        if not metrics_csv.is_file():
            rows.append((label, row, None, run))
            continue
        table = MetricsTable.read_csv(metrics_csv)
        rows.append((label, row, table, run))
        baseline = baseline or table
    base = comparison.baseline
    print(f"**{comparison.title}** (unseen subjects; gains are the network's mean minus {base}'s on the same slices)\n")
    print(f"| method | in-brain PSNR (dB) | vs {base} | in-brain SSIM | whole-slice PSNR (dB) | vs {base} "
          f"| in-brain vs {base}, other site | same site | paper's " + comparison.paper_metric
          + " | steps | wall time (min) | val still rising in the last fifth | gradient shares (mean over the run) |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    measured: dict[str, float] = {}  # whole-slice PSNR, the papers' metric
    in_brain: dict[str, float] = {}

    def line(label, key, table, method, steps="", minutes="", rising="", grad=""):
        subjects = table.subjects
        other = [s for s in subjects if site(s) in other_sites]
        same = [s for s in subjects if s not in other]
        a, ref = pooled(table, subjects, method), pooled(table, subjects, base)
        o, o_ref = pooled(table, other, method), pooled(table, other, base)
        m, m_ref = pooled(table, same, method), pooled(table, same, base)
        measured[key], in_brain[key] = a["psnr"], a["psnr_brain"]
        gain = lambda x, y: f"{x['psnr_brain'] - y['psnr_brain']:+.2f}" if x and y else "n/a"  # noqa: E731
        print(f"| {label} | {a['psnr_brain']:.2f} | {a['psnr_brain'] - ref['psnr_brain']:+.2f} | {a['ssim_brain']:.4f} "
              f"| {a['psnr']:.2f} | {a['psnr'] - ref['psnr']:+.2f} | {gain(o, o_ref)} | {gain(m, m_ref)} "
              f"| {comparison.paper.get(key, '')} | {steps} | {minutes} | {rising} | {grad} |")

    if baseline is not None:
        line(f"{base} (baseline)", base, baseline, base)
    for label, row, table, run in rows:
        if table is None:
            history = validation_history(run)
            state = (f"stopped, not tested (last validation: step {history[-1][0] + 1}, in-brain {history[-1][1]:.2f} dB); "
                     "the same command continues it" if history else "not trained yet")
            print(f"| {label} | {state} | | | | | | | {comparison.paper.get(row, '')} | | | | |")
            continue
        record = json.loads((run / "metrics.json").read_text()) if (run / "metrics.json").is_file() else {}
        steps = record.get("global_step", "")
        minutes = wall_minutes(run)
        method = comparison.method.get(row, row)
        if method not in table.methods:  # the network's name in the table is its model's class name
            method = next(m for m in table.methods if m not in ("zerofill", "bicubic", "nlm3d", "bm4d", "ants"))
        history = validation_history(run)
        # the run's length in the log's own steps (an adversarial run logs per batch, its steps are generator updates)
        logged_steps = history[-1][0] + 1 if history else int(steps or 0)
        line(label, row, table, method, steps, f"{minutes:.0f}" if minutes else "", still_rising(history, logged_steps),
             gradient_shares(run))
    brain_order = sorted(in_brain, key=in_brain.get, reverse=True)
    with_figures = [k for k in measured if k in comparison.paper]
    if len(with_figures) > 1:  # a ranking to reproduce: the rows the paper gives a figure for
        order = sorted(with_figures, key=measured.get, reverse=True)
        paper_order = sorted(with_figures, key=lambda k: float(comparison.paper[k]), reverse=True)
        same = order == paper_order
        print(f"\nRanking by whole-slice PSNR here: {' > '.join(order)}; in the paper: {' > '.join(paper_order)} "
              f"({'reproduced' if same else 'not reproduced'}); by in-brain PSNR here: {' > '.join(brain_order)}.")
    elif len(in_brain) > 1:
        print(f"\nRanking by in-brain PSNR here: {' > '.join(brain_order)}.")


def classical_table(comparison: Comparison, out: Path, name: str, other_sites: list[str]) -> None:
    """The tested rows and the classical 3D denoiser (evaluate.py's default ``classical=[nlm3d]``) on
    the same unseen slices: one ``evaluate.py ckpt_paths=[...]`` over every row's best checkpoint
    (its test split), kept in ``OUT/SET/evaluation`` (run once; delete the folder to run it again)."""
    runs = {row: run_dir(out, name, row) for row in comparison.labels()}
    checkpoints = {row: run / "checkpoints" / "best.ckpt" for row, run in runs.items() if (run / "test" / "metrics.csv").is_file()}
    if not checkpoints:
        return
    folder = out / name / "evaluation"
    if not (folder / "metrics.csv").is_file():
        command = [sys.executable, "-m", "lfmri.cli.evaluate", f"ckpt_paths=[{','.join(str(c) for c in checkpoints.values())}]",
                   f"output_dir={folder}", "progress=false"]
        print(" ".join(command), flush=True)
        subprocess.run(command, check=True, cwd=ROOT)
    table = MetricsTable.read_csv(folder / "metrics.csv")
    base = comparison.baseline
    subjects = table.subjects
    other = [s for s in subjects if site(s) in other_sites]
    same = [s for s in subjects if s not in other]
    print(f"\nThe same rows beside the classical 3D denoiser (evaluate.py, the same unseen subjects; gains over {base}):\n")
    print(f"| method | in-brain PSNR (dB) | vs {base} | other site | same site |")
    print("|---|---|---|---|---|")
    gains = {}
    for method in table.methods:
        a, ref = pooled(table, subjects, method), pooled(table, subjects, base)
        o, o_ref = pooled(table, other, method), pooled(table, other, base)
        m, m_ref = pooled(table, same, method), pooled(table, same, base)
        gains[method] = a["psnr_brain"] - ref["psnr_brain"]
        gain = lambda x, y: f"{x['psnr_brain'] - y['psnr_brain']:+.2f}" if x and y else "n/a"  # noqa: E731
        print(f"| {method} | {a['psnr_brain']:.2f} | {gains[method]:+.2f} | {gain(o, o_ref)} | {gain(m, m_ref)} |")
    classical = [m for m in ("bm4d", "ants", "nlm3d") if m in gains]
    if classical:
        strongest = max(classical, key=gains.get)
        behind = [m for m in gains if m not in ("zerofill", "bicubic", *classical) and gains[m] <= gains[strongest]]
        print(f"\nStrongest classical row: {strongest} ({gains[strongest]:+.2f} dB in the brain); networks that do not beat it: "
              f"{', '.join(behind) if behind else 'none'}.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", required=True, choices=sorted(COMPARISONS), help="the comparison to run")
    parser.add_argument("--data", help="glob of the HR volumes (data.pattern)")
    parser.add_argument("--subjects", help="data.subjects: {val:[...],test:[...]}; the test subjects are the unseen ones")
    parser.add_argument("--out", default="outputs/comparisons")
    parser.add_argument("--steps", type=int, default=1000, help="optimiser steps of every row")
    parser.add_argument("--batch", type=int, default=32, help="patches per step of every row")
    parser.add_argument("--validations", type=int, default=10, help="validations per run (to tell whether it still improves)")
    parser.add_argument("--rows", nargs="*", help="train only these rows (default: every row not tested yet)")
    parser.add_argument("--launcher", help="hydra/launcher to submit the sweep with, e.g. slurm_cpu")
    parser.add_argument("--other-site", nargs="*", default=["ixi"], help="sites not in training (name prefixes)")
    parser.add_argument("--report-only", action="store_true", help="print the table of the rows already tested; train nothing")
    parser.add_argument("--classical", action="store_true", help="also evaluate every tested row beside the classical 3D "
                        "denoiser (evaluate.py, nlm3d) on the same unseen slices")
    parser.add_argument("--override", action="append", default=[], help="one more override for every row (repeatable), "
                        "e.g. --override trainer.limit_val_batches=10")
    args = parser.parse_args()
    # absolute: the sweep runs from the repository (cwd=ROOT), the report reads from here
    comparison, out = COMPARISONS[args.set], Path(args.out).resolve()
    if args.data and not os.path.isabs(args.data):
        args.data = os.path.abspath(args.data)
    if not args.report_only:
        if not args.data or not args.subjects:
            parser.error("--data and --subjects are needed to train (or --report-only)")
        tested = lambda r: (run_dir(out, args.set, r) / "test" / "metrics.csv").is_file()  # noqa: E731
        chosen = args.rows or list(comparison.labels())
        todo = [r for r in chosen if r in comparison.rows and not tested(r)]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "2")}
        commands = [sweep_command(comparison, todo, out, args.set, args)] if todo else []
        commands += [extra_row_command(comparison, r, out, args.set, args) for r in chosen if r in comparison.extra_rows and not tested(r)]
        for command in commands:
            command = [*command, *args.override]
            print(" ".join(command), flush=True)
            subprocess.run(command, check=True, env=env, cwd=ROOT)
    report(comparison, out, args.set, args.other_site)
    if args.classical:
        classical_table(comparison, out, args.set, args.other_site)


if __name__ == "__main__":
    main()
