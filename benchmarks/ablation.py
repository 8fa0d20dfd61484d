"""Ablation of the `srdensenet_kspace_x2` training recipe on subjects the network never sees.

Each row trains SRDenseNet x2 (k-space degradation, noise std 0.01-0.05) with the same budget
(``--steps`` optimiser steps of 12 patches of 48 x 48, bf16-mixed) and one more ingredient than the
row above, then reads the run's test table: the test split is the held-out subjects, so the gains
are on brains the network never saw (IXI from a site not used in training, NiChart subjects of
the training site). Rows already trained (a ``test/metrics.csv`` in their folder) are not rerun.

    python benchmarks/ablation.py --data '/data/*.nii.gz' --out outputs/ablation \\
        --subjects '{val:[...],test:[...]}' [--steps 800]

``--set context`` is the multi-slice ablation instead: the shipped recipe with 0, 1 and 2
neighbouring slices on each side (``context_slices``) from scratch, and the shipped 2D network
fine-tuned with and without 2 neighbours (``init_from``, its first layer widened with zero weights
for the neighbours) for 2,000 steps; validation every 500 steps (the recipe's 6,000 patches an epoch).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

from lfmri.scoring.report import MetricsTable
from quality import site  # benchmarks/quality.py: the site a subject name implies

ROOT = Path(__file__).resolve().parents[1]
PAPER = ["model.residual=false", "loss=mse", "data.augment=null", "module.scheduler=null", "callbacks.ema=null",
         "module.optimizer.lr=1e-3"]
ROWS = {
    "r1_paper": ("paper recipe: plain SRDenseNet, MSE, Adam 1e-3, no augmentation", PAPER),
    "r2_residual": ("+ global residual (correction to the aligned bicubic)", [*PAPER, "model.residual=true"]),
    "r3_augment": ("+ augmentation (flips, 90-degree rotations, intensity scale/gamma/contrast, noise 0.008-0.055)",
                   ["model.residual=true", "loss=mse", "module.scheduler=null", "callbacks.ema=null", "module.optimizer.lr=1e-3"]),
    "r4_l1": ("+ L1 loss instead of MSE",
              ["model.residual=true", "loss=l1", "module.scheduler=null", "callbacks.ema=null", "module.optimizer.lr=1e-3"]),
    "r5_recipe": ("+ warm-up and cosine decay per step (peak 5e-4), EMA of weights (0.998): the shipped recipe", []),
}


SHIPPED = str(ROOT / "lfmri" / "pretrained" / "srdensenet-kspace-x2.ckpt")
FINE_TUNE = [f"init_from={SHIPPED}", "module.optimizer.lr=2e-4", "module.scheduler.warmup_steps=100",
             "callbacks.ema.update_starting_at_step=100", "trainer.max_steps=2000"]
CONTEXT_ROWS = {
    "s0": ("shipped recipe, one slice (2D), from scratch", ["context_slices=0"]),
    "s1": ("+ 1 neighbouring slice each side (3 input slices)", ["context_slices=1"]),
    "s2": ("+ 2 neighbouring slices each side (5 input slices)", ["context_slices=2"]),
    "ft0": ("shipped srdensenet-kspace-x2 fine-tuned 2,000 steps, 2D", [*FINE_TUNE, "context_slices=0"]),
    "ft2": ("shipped srdensenet-kspace-x2 fine-tuned 2,000 steps with 2 neighbours each side", [*FINE_TUNE, "context_slices=2"]),
}


def row_figures(table: MetricsTable, subjects: list[str], model: str = "srdensenet") -> dict[str, float]:
    s = table.pooled(subjects)
    return {
        "brain_vs_zerofill": s[model]["psnr_brain"][0] - s["zerofill"]["psnr_brain"][0],
        "brain_vs_bicubic": s[model]["psnr_brain"][0] - s["bicubic"]["psnr_brain"][0],
        "ssim_vs_zerofill": s[model]["ssim_brain"][0] - s["zerofill"]["ssim_brain"][0],
        "whole_vs_zerofill": s[model]["psnr"][0] - s["zerofill"]["psnr"][0],
        "psnr_brain": s[model]["psnr_brain"][0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="glob of the HR volumes (data.pattern)")
    parser.add_argument("--subjects", required=True, help="data.subjects: {val:[...],test:[...]}")
    parser.add_argument("--out", default="outputs/ablation")
    parser.add_argument("--steps", type=int, default=800)
    parser.add_argument("--other-site", nargs="*", default=["ixi"], help="sites not in training (name prefixes)")
    parser.add_argument("--report-only", action="store_true", help="print the rows already trained; train nothing")
    parser.add_argument("--set", choices=("recipe", "context"), default="recipe",
                        help="recipe: the training ingredients; context: multi-slice input (context_slices)")
    args = parser.parse_args()
    out = Path(args.out)
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    common = ["experiment=srdensenet_kspace_x2", f"data.pattern={args.data}", f"data.subjects={args.subjects}",
              f"trainer.max_steps={args.steps}"]
    if args.set == "recipe":  # one validation at the end of each row
        common.append(f"data.patches_per_epoch={args.steps * 12}")
    rows = ROWS if args.set == "recipe" else CONTEXT_ROWS
    for name, (_, overrides) in rows.items():
        if not args.report_only and not (out / name / "test" / "metrics.csv").is_file():
            subprocess.run([sys.executable, str(ROOT / "train.py"), *common, *overrides, f"hydra.run.dir={out / name}"],
                           check=True, env=env, cwd=ROOT)
    print(f"SRDenseNet x2, k-space + noise 0.01-0.05; {args.steps} steps x 12 patches 48x48 per row (fine-tuning "
          "rows: their own steps); gains in dB "
          "(SSIM: absolute) of the network's mean over the unseen subjects' slices minus the baseline's\n")
    print("| row | ingredient | in-brain PSNR vs zero-fill | vs bicubic | in-brain SSIM vs zero-fill "
          "| whole-slice PSNR vs zero-fill | in-brain vs zero-fill, other site | same site |")
    print("|---|---|---|---|---|---|---|---|")
    for name, (label, _) in rows.items():
        if not (out / name / "test" / "metrics.csv").is_file():
            print(f"| {name} | {label} | not trained | | | | | |")
            continue
        table = MetricsTable.read_csv(out / name / "test" / "metrics.csv")
        other = [s for s in table.subjects if site(s) in args.other_site]
        same = [s for s in table.subjects if s not in other]
        a, o, m = row_figures(table, table.subjects), row_figures(table, other), row_figures(table, same)
        print(f"| {name} | {label} | {a['brain_vs_zerofill']:+.2f} | {a['brain_vs_bicubic']:+.2f} | "
              f"{a['ssim_vs_zerofill']:+.4f} | {a['whole_vs_zerofill']:+.2f} | {o['brain_vs_zerofill']:+.2f} | "
              f"{m['brain_vs_zerofill']:+.2f} |")


if __name__ == "__main__":
    main()
