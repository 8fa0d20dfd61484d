"""Tune the classical 3D row (non-local means on the zero-filled volume) on ONE validation subject.

Degrades the subject as the checkpoint does (same seeds as ``evaluate.py``), zero-fills every slice,
estimates the noise per slice and scores a grid of ``NonLocalMeans3D`` settings by in-brain PSNR
over the scored slices. Never run it on the unseen subjects a table reports: the defaults of
:class:`lfmri.degrade.denoise3d.NonLocalMeans3D` were chosen with

    OMP_NUM_THREADS=1 python benchmarks/classical_tuning.py --pretrained srdensenet-kspace-x2 \\
        --input ../shared/data/nichart_Subj20_T1.nii.gz

(nichart_Subj20_T1 selects srdensenet-kspace-x2's checkpoints; it is not one of its unseen subjects).
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from omegaconf import OmegaConf

from lfmri.degrade.denoise3d import NonLocalMeans3D
from lfmri.evaluation.evaluator import Evaluator, prepare

ROOT = Path(__file__).resolve().parents[1]


class Timed(NonLocalMeans3D):
    seconds = 0.0

    def denoise(self, volume, sigma):
        start = time.perf_counter()
        out = super().denoise(volume, sigma)
        self.seconds += time.perf_counter() - start
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", default="srdensenet-kspace-x2")
    parser.add_argument("--input", required=True, help="ONE validation volume (never an unseen subject)")
    parser.add_argument("--patch-size", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--patch-distance", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--h-factor", type=float, nargs="+", default=[0.2, 0.3, 0.4, 0.6])
    parser.add_argument("--level-ratio", type=float, nargs="+", default=[2.0])
    args = parser.parse_args()
    cfg = OmegaConf.load(ROOT / "conf" / "evaluate.yaml")
    cfg.pop("hydra")
    cfg = OmegaConf.merge(cfg, {"pretrained": args.pretrained, "inputs": [args.input], "classical": [],
                                "precision": "fp32", "progress": False})
    base, volumes, _ = prepare(cfg)
    grid = {}
    for p, d, h, r in itertools.product(args.patch_size, args.patch_distance, args.h_factor, args.level_ratio):
        denoiser = Timed(p, d, h)
        denoiser.level_ratio = r
        grid[f"nlm p{p} d{d} h{h} r{r}"] = denoiser
    evaluator = Evaluator({n: base.methods[n].module for n in base.networks}, base.degradation, base.slice_axis,
                          base.seed, batch_size=16, classical=grid)
    evaluator.progress = False
    with tempfile.TemporaryDirectory():
        _, table = evaluator.run_volume(volumes[0])
    summary = table.summary()
    zf = summary["zerofill"]["psnr_brain"][0]
    print(f"{volumes[0].name}: {summary['zerofill']['psnr_brain'][2]} scored slices; zero-fill {zf:.3f} dB in the brain")
    print("| setting | PSNR brain (dB) | vs zero-fill | SSIM brain | whole-slice PSNR | NLM seconds |")
    print("|---|---|---|---|---|---|")
    for name, s in summary.items():
        seconds = f"{grid[name].seconds:.0f}" if name in grid else ""
        print(f"| {name} | {s['psnr_brain'][0]:.3f} | {s['psnr_brain'][0] - zf:+.3f} | {s['ssim_brain'][0]:.4f} | "
              f"{s['psnr'][0]:.3f} | {seconds} |")


if __name__ == "__main__":
    main()
