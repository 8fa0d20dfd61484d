"""Quality of trained networks on subjects they never saw, against zero-filling, bicubic and a 3D denoiser.

For each network (a shipped one by name, or any checkpoint) this runs ``evaluate.py``'s code on
the checkpoint's own test split (the held-out subjects), in float32 and under bf16 autocast, scores
the TTA uncertainty map against the actual error on every ``--tta-every``-th slice, and prints:

- per subject and pooled per group: in-brain PSNR/SSIM and whole-slice PSNR, each as the gain
  over zero-fill and over bicubic; the classical 3D row (``nlm3d``: non-local means on the
  zero-filled volume, noise estimated from the data, :mod:`lfmri.degrade.denoise3d`) as its own
  in-brain gain over zero-fill and the network's in-brain gain over it; "unseen, other site" and "unseen, same site" are pooled apart
  (site = the name's leading letters, e.g. ``IXI012-HH-...`` -> IXI, ``nichart_Subj22`` -> nichart);
- the bf16 - float32 change of in-brain PSNR, and the Spearman correlation of uncertainty and error;
- each target of the model (issue "beat the baselines on unseen brains") as met or not.

    python benchmarks/quality.py --pretrained srdensenet-kspace-x2 lowfield-sim gan-cpce-kspace-x2
    python benchmarks/quality.py --ckpt outputs/train/RUN/checkpoints/best.ckpt --json facts.json

Needs the volumes the checkpoint's data config names (here ``../shared/data``); nothing is
downloaded. Quality figures, not speed: run it on any machine.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from lfmri.data.splits import split_from_dict
from lfmri.evaluation.evaluator import prepare
from lfmri.scoring.report import MetricsTable

ROOT = Path(__file__).resolve().parents[1]
# the targets each shipped network must meet on unseen subjects (gains in dB or SSIM)
TARGETS = {
    "srdensenet-kspace-x2": {"brain_vs_zerofill": 1.5, "brain_vs_bicubic": 1.5, "ssim_vs_zerofill": 0.03,
                             "whole_vs_zerofill": 3.0, "brain_vs_nlm3d": 0.0},
    "lowfield-sim": {"brain_vs_bicubic": 2.0},
    "gan-cpce-kspace-x2": {"brain_vs_zerofill": 0.0},
}
BF16_TOLERANCE_DB = 0.05
CLASSICAL = ["nlm3d"]  # evaluate's classical rows scored here (--classical nlm3d bm4d ants after pip install bm4d antspyx)


def site(subject: str) -> str:
    """The acquisition site a subject name implies (its leading letters, ``sim-`` removed)."""
    match = re.match(r"(?:sim-)?([A-Za-z]+)", subject)
    return match.group(1).lower() if match else subject


def eval_config(ckpt: str | None, pretrained: str | None, output_dir: Path, tta: bool = False, classical=()):
    cfg = OmegaConf.load(ROOT / "conf" / "evaluate.yaml")
    cfg.pop("hydra")
    # precision=fp32: the network runs as the caller's autocast says; evaluate's default (auto) would
    # pick bf16 for a card that records its bf16 parity, and the "float32" pass would not be one
    return OmegaConf.merge(cfg, {"ckpt_path": ckpt, "pretrained": pretrained, "output_dir": str(output_dir),
                                 "overwrite": True, "tta": tta, "batch_size": 16, "precision": "fp32",
                                 "classical": list(classical)})


def run(ckpt: str | None, pretrained: str | None, out: Path, bf16: bool, tta_every: int = 0, classical=()):
    cfg = eval_config(ckpt, pretrained, out, tta=tta_every > 0, classical=classical)
    evaluator, volumes, paths = prepare(cfg)
    if tta_every > 0:
        for v in volumes:  # TTA costs 8 forward passes a slice: score it on a regular subsample
            v.scored = v.scored[::tta_every]
    start = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        table = evaluator.run(volumes, out, overwrite=True)
    return evaluator, table, time.perf_counter() - start


def gains(table: MetricsTable, subjects: list[str], model: str) -> dict[str, float]:
    summary = table.pooled(subjects)
    m, zf, bc = summary[model], summary["zerofill"], summary["bicubic"]
    return {
        "slices": m["psnr_brain"][2],
        "psnr_brain": m["psnr_brain"][0],
        "brain_vs_zerofill": m["psnr_brain"][0] - zf["psnr_brain"][0],
        "brain_vs_bicubic": m["psnr_brain"][0] - bc["psnr_brain"][0],
        "ssim_brain": m["ssim_brain"][0],
        "ssim_vs_zerofill": m["ssim_brain"][0] - zf["ssim_brain"][0],
        "ssim_vs_bicubic": m["ssim_brain"][0] - bc["ssim_brain"][0],
        "whole_vs_zerofill": m["psnr"][0] - zf["psnr"][0],
        "whole_vs_bicubic": m["psnr"][0] - bc["psnr"][0],
        "zerofill_psnr_brain": zf["psnr_brain"][0],
        "bicubic_psnr_brain": bc["psnr_brain"][0],
        **{key: value for row in CLASSICAL if row in summary for key, value in {
            f"{row}_psnr_brain": summary[row]["psnr_brain"][0],
            f"{row}_vs_zerofill": summary[row]["psnr_brain"][0] - zf["psnr_brain"][0],
            f"brain_vs_{row}": m["psnr_brain"][0] - summary[row]["psnr_brain"][0],
        }.items()},
    }


def measure(ckpt: str | None, pretrained: str | None, tta_every: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        # the classical rows do not depend on the network's precision: scored once, in the float32 pass
        evaluator, t32, seconds32 = run(ckpt, pretrained, Path(tmp) / "fp32", bf16=False, classical=CLASSICAL)
        _, t16, seconds16 = run(ckpt, pretrained, Path(tmp) / "bf16", bf16=True)
        tta_evaluator, _, _ = run(ckpt, pretrained, Path(tmp) / "tta", bf16=True, tta_every=tta_every) if tta_every else (None, None, None)
        model = evaluator.networks[0]
        checkpoint = torch.load(evaluator_path(ckpt, pretrained), map_location="cpu", weights_only=True)
    split = split_from_dict(checkpoint["lfmri"]["split"])
    train_sites = {site(s.subject) for s in split["train"]}
    groups: dict[str, list[str]] = defaultdict(list)
    rows = {}
    for subject in t32.subjects:
        label = "unseen, same site" if site(subject) in train_sites else "unseen, other site"
        groups[label].append(subject)
        rows[subject] = {"group": label, **gains(t32, [subject], model),
                         "bf16_delta_brain": gains(t16, [subject], model)["psnr_brain"] - gains(t32, [subject], model)["psnr_brain"]}
    if tta_evaluator is not None:
        by_subject = defaultdict(list)
        for r in tta_evaluator.uncertainty_rows:
            by_subject[r["subject"]].append(r["spearman"])
        for subject, values in by_subject.items():
            values = np.asarray(values, dtype=float)
            rows[subject]["spearman"] = float(np.nanmean(values)) if np.isfinite(values).any() else math.nan
    pooled = {}
    for label, members in [*groups.items(), ("all unseen", t32.subjects)]:
        pooled[label] = gains(t32, members, model)
        pooled[label]["bf16_delta_brain"] = gains(t16, members, model)["psnr_brain"] - pooled[label]["psnr_brain"]
        rhos = [rows[s]["spearman"] for s in members if math.isfinite(rows[s].get("spearman", math.nan))]
        if rhos:
            pooled[label]["spearman"] = float(np.mean(rhos))  # mean of the subjects' means
    return {"model": model, "subjects": rows, "pooled": pooled, "seconds_fp32": seconds32, "seconds_bf16": seconds16,
            "training_sites": sorted(train_sites)}


def evaluator_path(ckpt: str | None, pretrained: str | None) -> Path:
    from lfmri.pretrained import resolve

    return resolve(ckpt, pretrained)


def markdown(name: str, result: dict) -> str:
    head = ("| subject | group | slices | in-brain PSNR (dB) | vs zero-fill | vs bicubic | in-brain SSIM vs zero-fill "
            "| vs bicubic | whole-slice PSNR vs zero-fill | vs bicubic | bf16 - fp32 (dB) | TTA Spearman |"
            + "".join(f" {row} in-brain vs zero-fill | network vs {row} |" for row in CLASSICAL))
    lines = [f"### {name} on unseen subjects", "", head, "|" + "---|" * (head.count("|") - 1)]

    def fmt(label: str, group: str, g: dict) -> str:
        rho = g.get("spearman", math.nan)
        return (f"| {label} | {group} | {g['slices']} | {g['psnr_brain']:.2f} | {g['brain_vs_zerofill']:+.2f} | "
                f"{g['brain_vs_bicubic']:+.2f} | {g['ssim_vs_zerofill']:+.4f} | {g['ssim_vs_bicubic']:+.4f} | "
                f"{g['whole_vs_zerofill']:+.2f} | {g['whole_vs_bicubic']:+.2f} | "
                f"{g.get('bf16_delta_brain', math.nan):+.3f} | {'' if math.isnan(rho) else f'{rho:.3f}'} |"
                + "".join(f" {g.get(f'{row}_vs_zerofill', math.nan):+.2f} | {g.get(f'brain_vs_{row}', math.nan):+.2f} |"
                          for row in CLASSICAL))

    for subject, g in result["subjects"].items():
        lines.append(fmt(subject, g["group"], g))
    for label, g in result["pooled"].items():
        lines.append(fmt(f"**{label}**", "pooled", g))
    lines += ["", "Gains are the network's mean minus the baseline's mean over the same slices (in-brain: reference "
              "> 0.05, dilated 2 px). Zero-fill reconstructs from the complex LR (it has the phase). TTA Spearman: "
              "per-slice rank correlation of the 8-fold flip/rotation std with |error| inside the brain, on every "
              "few slices. Classical rows: a 3D denoiser of the zero-filled volume with the noise std estimated per "
              "slice on the degradation's measurement (nlm3d: scikit-image non-local means, lfmri/degrade/denoise3d.py).", ""]
    return "\n".join(lines)


def check_targets(name: str, result: dict) -> list[str]:
    lines = []
    for key, minimum in TARGETS.get(name, {}).items():
        for label, g in [("all unseen", result["pooled"]["all unseen"]),
                         *[(s, g) for s, g in result["subjects"].items() if g["group"] == "unseen, other site"]]:
            value = g.get(key, math.nan)
            lines.append(f"{'MET ' if value >= minimum else 'MISS'} {name} {label}: {key} {value:+.3f} (target >= {minimum:+.2f})")
    delta = result["pooled"]["all unseen"]["bf16_delta_brain"]
    lines.append(f"{'MET ' if abs(delta) <= BF16_TOLERANCE_DB else 'MISS'} {name}: bf16 in-brain PSNR change {delta:+.3f} dB "
                 f"(target within {BF16_TOLERANCE_DB})")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", nargs="*", default=[], help="shipped network names")
    parser.add_argument("--ckpt", nargs="*", default=[], help="checkpoint paths")
    parser.add_argument("--name", help="target set to check a --ckpt against (a shipped name)")
    parser.add_argument("--tta-every", type=int, default=4, help="score TTA uncertainty on every n-th slice (0: off)")
    parser.add_argument("--json", help="write the figures of the (last) network to this JSON file")
    parser.add_argument("--classical", nargs="*", default=CLASSICAL,
                        help="classical 3D rows (nlm3d; bm4d after pip install bm4d; ants after pip install antspyx; none: --classical)")
    args = parser.parse_args()
    CLASSICAL[:] = args.classical
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    jobs = [(None, p, p) for p in args.pretrained] + [(c, None, args.name or Path(c).stem) for c in args.ckpt]
    for ckpt, pretrained, name in jobs:
        result = measure(ckpt, pretrained, args.tta_every)
        print(markdown(name, result))
        print("\n".join(check_targets(name, result)))
        print(f"(evaluation time: fp32 {result['seconds_fp32']:.0f} s, bf16 {result['seconds_bf16']:.0f} s)\n")
        if args.json:
            Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
