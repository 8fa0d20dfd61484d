"""How much of zero-fill's in-brain error is noise, and how much is resolution lost in k-space.

Scores a k-space network and zero-filling on the network's unseen subjects twice, on the same
slices: once with the evaluation noise (the degradation's ``noise_std``), once with none. The gap
between noisy and noise-free zero-filling is all that a perfect denoiser could gain without
restoring any of the cut k-space; what a target asks beyond it must come from super-resolution
proper. (This is how the project judged its "+1.5 dB in the brain over zero-fill" target.)

    python benchmarks/headroom.py --pretrained srdensenet-kspace-x2
    python benchmarks/headroom.py --ckpt outputs/train/RUN/checkpoints/best.ckpt

Needs the volumes the checkpoint's data config names; quality figures, not speed.
"""

from __future__ import annotations

import argparse
import copy
import tempfile
from pathlib import Path

import torch

from quality import eval_config
from lfmri.evaluation.evaluator import prepare


def scores(ckpt: str | None, pretrained: str | None) -> dict[str, dict[str, float]]:
    """{subject or 'all unseen': {row: in-brain PSNR}} for zero-fill and the network, noisy and noise-free."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        evaluator, volumes, _ = prepare(eval_config(ckpt, pretrained, Path(tmp) / "noisy"))
        if not hasattr(evaluator.degradation, "noise_std"):
            raise SystemExit(f"{type(evaluator.degradation).__name__} has no noise_std: nothing to separate")
        model = evaluator.networks[0]
        noisy = evaluator.run(volumes, Path(tmp) / "noisy", overwrite=True)
        clean_degradation = copy.copy(evaluator.degradation)
        clean_degradation.noise_std = (0.0, 0.0)
        evaluator.degradation = clean_degradation  # the same slices and seeds, no noise drawn
        clean = evaluator.run(volumes, Path(tmp) / "clean", overwrite=True)
    for label, subjects in [*((s, [s]) for s in noisy.subjects), ("all unseen", noisy.subjects)]:
        a, b = noisy.pooled(subjects), clean.pooled(subjects)
        out[label] = {
            "zero-fill, noisy": a["zerofill"]["psnr_brain"][0],
            "zero-fill, noise-free": b["zerofill"]["psnr_brain"][0],
            f"{model}, noisy": a[model]["psnr_brain"][0],
            f"{model}, noise-free": b[model]["psnr_brain"][0],
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", help="a shipped network with a noisy k-space degradation")
    parser.add_argument("--ckpt", help="or a checkpoint")
    args = parser.parse_args()
    if (args.pretrained is None) == (args.ckpt is None):
        parser.error("give one of --pretrained, --ckpt")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    table = scores(args.ckpt, args.pretrained)
    rows = list(next(iter(table.values())))
    print("\nIn-brain PSNR (dB) on the unseen subjects, the same slices with and without the evaluation noise\n")
    print("| subject | " + " | ".join(rows) + " | denoising headroom (zero-fill noise-free - noisy) | network gain over noisy zero-fill |")
    print("|---|" + "---|" * (len(rows) + 2))
    for subject, r in table.items():
        values = list(r.values())
        print(f"| {subject} | " + " | ".join(f"{v:.2f}" for v in values)
              + f" | {values[1] - values[0]:+.2f} | {values[2] - values[0]:+.2f} |")


if __name__ == "__main__":
    main()
