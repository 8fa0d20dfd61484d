"""Tune and measure the classical 3D rows (evaluate's ``classical=``) under each shipped degradation.

For each shipped network (its degradation, seeds and data settings) this builds the subjects
named by ``--subjects`` as ``evaluate.py`` would (same seeded degradation of each slice; the
``lowfield-sim`` subjects are its simulated 64 mT volumes, ``sim-`` names), keeps a central slab
of ``--slab`` consecutive slices of each (the 3D denoisers see that slab; every row scores the
same slices), and scores:

- ``zerofill`` and ``bicubic`` (the baselines) and the network,
- ``nlm3d`` with the noise estimated as lfmri estimates it (on the degradation's measurement,
  :func:`lfmri.degrade.denoise3d.measurement_sigmas`) at each ``--h-factor`` (x sigma), and with
  ``--before``, once with main's estimator (the wavelet MAD of the LR view itself, the smaller of
  its real and imaginary channels) at main's h = 0.3 sigma,
- ``ants`` (ANTs' adaptive non-local means) with ``--ants`` (needs ``pip install antspyx``),
- with ``--ceiling``, zero-fill of the same slices degraded without noise: the gain a perfect
  denoiser would have.

It prints, per degradation, the in-brain PSNR gain over zero-fill (and over bicubic) per subject
and pooled per site (site = the name's leading letters), and the median estimated sigma. Tune on
validation subjects only (the defaults of :class:`lfmri.degrade.denoise3d.NonLocalMeans3D` were
chosen with the first command); the second measures the unseen subjects for docs/models.md:

    OMP_NUM_THREADS=1 python benchmarks/classical_tuning.py --subjects nichart_Subj20_T1 nichart_Subj21_T1 chris_PD \\
        --slab 16 --h-factor 0.3 0.6 1.0 1.5
    OMP_NUM_THREADS=1 python benchmarks/classical_tuning.py --pretrained lowfield-sim srdensenet-kspace-x2 \\
        --subjects nichart_Subj20_T1 nichart_Subj21_T1 chris_PD --slab 16 --h-factor 0.6 --ceiling
    OMP_NUM_THREADS=1 python benchmarks/classical_tuning.py --pretrained srdensenet-kspace-x2 gan-cpce-kspace-x2 \\
        --subjects IXI012-HH-1211_T1_2mm IXI015-HH-1258_T1_2mm nichart_Subj22_T1 nichart_Subj23_T1 \\
        --slab 16 --h-factor 0.6 --before --ants
    OMP_NUM_THREADS=1 python benchmarks/classical_tuning.py --pretrained lowfield-sim \\
        --subjects IXI012-HH-1211_T1_2mm IXI015-HH-1258_T1_2mm nichart_Subj22_T1 nichart_Subj23_T1 \\
        --slab 12 --h-factor 0.6 1.5 --before --ants

Needs ``../shared/data`` (the volumes the shipped networks' data configs name).
"""

from __future__ import annotations

import argparse
import copy
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from lfmri.checkpoints.stored_run import StoredRun
from lfmri.data.splits import split_from_dict
from lfmri.degrade import denoise3d
from lfmri.degrade.denoise3d import AntsNLM, NonLocalMeans3D, estimate_sigma
from lfmri.evaluation import classical as classical_module
from lfmri.evaluation.comparison import Evaluator, sample_mode
from lfmri.evaluation.volumes import volumes_from_datamodule
from lfmri.pretrained import resolve
from lfmri.run_options import RunOptions
from lfmri.scoring.report import MetricsTable
from quality import site  # benchmarks/quality.py: the site a subject name implies

ROOT = Path(__file__).resolve().parents[1]
PRETRAINED = ["srdensenet-kspace-x2", "gan-cpce-kspace-x2", "lowfield-sim"]


def main_estimate(degradation, lr_views) -> np.ndarray:
    """main's estimator (before this change): the MAD of the LR view itself, min over both channels."""
    lr = np.asarray(lr_views)
    if np.iscomplexobj(lr):
        return np.array([min(estimate_sigma(s.real), estimate_sigma(s.imag)) for s in lr])
    return np.array([estimate_sigma(s) for s in lr])


class Timed:
    """Wraps a denoiser: seconds spent, and the median sigma it was given."""

    def __init__(self, denoiser) -> None:
        self.denoiser, self.seconds, self.sigma = denoiser, 0.0, []

    def __call__(self, volume, sigmas):
        start = time.perf_counter()
        out = self.denoiser(volume, sigmas)
        self.seconds += time.perf_counter() - start
        self.sigma.append(float(np.median(sigmas)))
        return out


def noise_free(degradation):
    """The same degradation without noise; its draws consume the seeded generators alike, so each
    slice differs from the noisy one by the noise only (blur, gamma and noise level drawn the same)."""
    clean = copy.copy(degradation)
    if hasattr(clean, "snr"):  # lowfield: noise sigma = signal / snr
        clean.snr = (1e12, 1e12)
    else:
        clean.noise_std = (0.0, 0.0)
    return clean


def volumes(run: StoredRun, degradation, nets, subjects: list[str], slab: int):
    """The named subjects as evaluate builds its test volumes, each cut to a central slab."""
    stored = split_from_dict(run.split)
    wanted = [seg for segs in stored.values() for seg in segs if any(seg.subject in (s, f"sim-{s}") for s in subjects)]
    found = {seg.subject.removeprefix("sim-") for seg in wanted}
    if missing := sorted(set(subjects) - found):
        raise SystemExit(f"{run.source}: subjects {missing} are in none of its split's stages")
    split = {stage: [] for stage in stored}  # only the subjects asked for are read (and simulated)
    split["test"] = wanted
    overrides = {}
    data = run.config["data"]
    if data.get("synthetic_pattern"):  # simulate only the subjects asked for
        folder = Path(str(data["synthetic_pattern"])).parent
        overrides["synthetic_pattern"] = [str(folder / f"{s}.nii.gz") for s in sorted(found)]
    elif data.get("pattern"):
        folder = Path(str(data["pattern"])).parent
        overrides["pattern"] = [str(folder / f"{s}.nii.gz") for s in sorted(found)]
    dm = run.datamodule(degradation=degradation, input_mode=sample_mode(nets), split=split, split_file=None,
                        num_workers=0, **overrides)
    dm.setup("test")
    out = []
    for v in volumes_from_datamodule(dm):
        if slab:
            middle = int(np.median(v.scored))
            v.start = max(v.start, middle - slab // 2)
            v.stop = min(v.stop, v.start + slab)
            v.scored = v.scored[(v.scored >= v.start) & (v.scored < v.stop)]
        out.append(v)
    return out


def score(name: str, args) -> None:
    path = resolve(None, name)
    run = StoredRun.load(path, [])
    degradation = run.degradation()
    net = run.network()
    card = run.card.get("name") or name
    vols = volumes(run, degradation, [net], args.subjects, args.slab)
    rows = {f"nlm3d h{h}": Timed(NonLocalMeans3D(args.patch_size, args.patch_distance, h)) for h in args.h_factor}
    if args.ants:
        rows["ants"] = Timed(AntsNLM())
    tables = []
    for estimator, denoisers in [("after", rows), *([("before", {"nlm3d main": Timed(NonLocalMeans3D(5, 3, 0.3))})] if args.before else [])]:
        if estimator == "before":
            classical_module.measurement_sigmas = main_estimate
        ev = Evaluator({card: net}, degradation, int(run.config["data"]["slice_axis"]), int(run.config["data"]["seed"]),
                       options=RunOptions(device="cpu", precision="fp32", batch_size=16, progress=False),
                       classical=denoisers)
        ev.progress = False
        for v in vols:
            _, table = ev.run_volume(v)
            tables.append((estimator, denoisers, table))
        classical_module.measurement_sigmas = denoise3d.measurement_sigmas
    if args.ceiling:  # zero-fill of the same slices degraded without noise: what a perfect denoiser reaches
        clean = noise_free(degradation)
        ev = Evaluator({card: net}, clean, int(run.config["data"]["slice_axis"]), int(run.config["data"]["seed"]),
                       options=RunOptions(device="cpu", precision="fp32", batch_size=16, progress=False))
        ev.progress = False
        for v in volumes(run, clean, [net], args.subjects, args.slab):
            _, t = ev.run_volume(v)
            tables.append(("ceiling", {}, MetricsTable({**r, "method": "zero-fill, noise-free"} for r in t.rows
                                                       if r["method"] == "zerofill")))
    table, seen = MetricsTable(), set()
    for _, _, t in tables:  # the baselines and the network are scored in both passes: keep them once
        for r in t.rows:
            key = (r["method"], r["subject"], r["slice"])
            if key not in seen:
                seen.add(key)
                table.rows.append(r)
    subjects = sorted({r["subject"] for r in table.rows})
    groups = defaultdict(list)
    for s in subjects:
        groups[site(s)].append(s)
    labels = [*subjects, *(f"{g} (pooled)" for g in groups), "all (pooled)"]
    members = {**{s: [s] for s in subjects}, **{f"{g} (pooled)": m for g, m in groups.items()}, "all (pooled)": subjects}
    methods = [m for m in table.methods if m not in ("zerofill", "bicubic")]
    print(f"\n### {type(degradation).__name__} ({name}): in-brain PSNR gain over zero-fill / over bicubic (dB), "
          f"central {args.slab or 'all'} slices of each subject")
    print("| row | " + " | ".join(labels) + " | median sigma | seconds |")
    print("|---|" + "---|" * (len(labels) + 2))
    zf = {label: table.pooled(members[label])["zerofill"]["psnr_brain"][0] for label in labels}
    bc = {label: table.pooled(members[label])["bicubic"]["psnr_brain"][0] for label in labels}
    print("| zero-fill (dB) | " + " | ".join(f"{zf[label]:.2f}" for label in labels) + " | | |")
    timers = {k: v for _, d, _ in tables for k, v in d.items()}
    for m in methods:
        cells = []
        for label in labels:
            p = table.pooled(members[label])[m]["psnr_brain"][0]
            cells.append(f"{p - zf[label]:+.2f} / {p - bc[label]:+.2f}")
        t = timers.get(m)
        extra = f" {np.median(t.sigma):.4f} | {t.seconds:.0f} |" if t else " | |"
        print(f"| {m} | " + " | ".join(cells) + " |" + extra)
    slices = table.pooled(subjects)["zerofill"]["psnr_brain"][2]
    print(f"({slices} scored slices)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", nargs="+", default=PRETRAINED, help="shipped networks whose degradation to use")
    parser.add_argument("--subjects", nargs="+", required=True, help="subject names (validation ones to tune)")
    parser.add_argument("--slab", type=int, default=24, help="consecutive central slices kept per subject (0: all)")
    parser.add_argument("--patch-size", type=int, default=NonLocalMeans3D().patch_size)
    parser.add_argument("--patch-distance", type=int, default=NonLocalMeans3D().patch_distance)
    parser.add_argument("--h-factor", type=float, nargs="+", default=[NonLocalMeans3D().h_factor])
    parser.add_argument("--before", action="store_true", help="also main's estimator (the LR view's MAD), h = 0.3 sigma")
    parser.add_argument("--ants", action="store_true", help="also ANTs' adaptive NLM (pip install antspyx)")
    parser.add_argument("--ceiling", action="store_true",
                        help="also zero-fill of the noise-free degradation (what removing all the noise would gain)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"subjects {args.subjects}, slab {args.slab}, patch {args.patch_size}, distance {args.patch_distance}")
    for name in args.pretrained:
        score(name, args)


if __name__ == "__main__":

    main()
