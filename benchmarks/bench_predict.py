"""``bench.py --section predict`` / ``predict-real``: ``Predictor`` on a generated volume (untiled and
tiled), and on a real volume with a trained checkpoint (today's default against the fast paths)."""

from __future__ import annotations

import time

import torch

from bench_models import CONF, build_model, peak_memory_mb


def print_predict(slices: int, volume_slices: int = 150, size: int = 256) -> None:
    """SRDenseNet x2 through ``Predictor`` on a size x size x 150 volume: untiled and tiled.

    Runs ``slices`` of the 150 (the rest would take the same time per slice) and scales up; peak
    memory is the tensor high-water mark of one batch, the part that grows with slice size.
    """
    import tempfile

    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from lfmri.checkpoints.stored_run import StoredRun
    from lfmri.inference.predictor import PredictConfig, Predictor

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["output_dir=/tmp/lfmri-bench"])
    config = OmegaConf.to_container(cfg, resolve=True)
    net = build_model("srdensenet")
    run = StoredRun.of_network(net, config, source="bench")
    lr = torch.rand(slices, 1, size, size)
    print(f"\npredict: SRDenseNet x2, {size}x{size}x{volume_slices} volume ({slices} slices run, batch 8)")
    print("| mode | s / slice | s / volume | peak memory of a batch MB |")
    print("|---|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as out:
        for label, tile in (("untiled", size), ("tiled 128, overlap 32", 128)):
            predictor = Predictor(run, PredictConfig(ckpt_path="bench", inputs=[], output_dir=out, tile_size=tile, tile_overlap=32, progress=False))
            predictor.slices(lr[:1])  # warm-up
            start = time.perf_counter()
            for first in range(0, slices, 8):
                predictor.slices(lr[first : first + 8])
            per_slice = (time.perf_counter() - start) / slices
            memory = peak_memory_mb(lambda: predictor.slices(lr[:8]))
            print(f"| {label} | {per_slice:.2f} | {per_slice * volume_slices:,.0f} | {memory:,.0f} |")


def print_predict_real(args) -> None:
    """``Predictor`` on a real volume with a trained checkpoint: today's default against the fast paths.

    "before" is predict's default until issue 15 (float32, channels_last, per-layer ``torch.cat``:
    ``fast_inference=False``). A centred run of ``--run-slices`` of the volume's central
    ``--volume-slices`` slices is predicted per repeat (the rest take the same time per slice), the
    variants alternated. Parity: the in-brain PSNR of each variant's output against today's, and
    ``lfmri.evaluation.parity.measure_bf16_parity`` (bf16 vs float32 against the HR, the volume degraded
    with the checkpoint's degradation).
    """
    import tempfile

    import numpy as np

    from lfmri.checkpoints.stored_run import StoredRun
    from lfmri.geometry.nifti import load_nifti
    from lfmri.data.normalize import percentile_intensity
    from lfmri.geometry.slicing import take_slices
    from lfmri.evaluation.parity import measure_bf16_parity
    from lfmri.scoring.metrics import brain_mask
    from lfmri.inference.predictor import PredictConfig, Predictor
    from timing import alternate, machine_state, threads

    stored = StoredRun.load(args.ckpt)
    volume = load_nifti(args.volume)
    with tempfile.TemporaryDirectory() as out:
        def predictor(precision: str, fast: bool) -> Predictor:
            p = Predictor(stored, PredictConfig(ckpt_path=args.ckpt, inputs=[], output_dir=out, precision=precision,
                                                    progress=False, preview=False))
            p.net.fast_inference = fast
            return p

        variants = {"before: fp32, channels_last (default)": predictor("fp32", False),
                    "bf16 + fast dense path": predictor("bf16", True), "bf16 + fast dense path, 1 thread": predictor("bf16", True)}
    first = next(iter(variants.values()))
    intensity = percentile_intensity(volume.data, first.percentiles, volume.source)
    lr_all = torch.from_numpy(np.ascontiguousarray(take_slices(intensity.apply(volume.data), first.slice_axis)))
    middle = len(lr_all) // 2
    lr = lr_all[middle - args.run_slices // 2 : middle - args.run_slices // 2 + args.run_slices, None]
    outputs = {}

    def run(name: str, p: Predictor):
        def call():
            # "1 thread": what each process of workers=N runs (one volume per core)
            with threads(1 if name.endswith("1 thread") else torch.get_num_threads()):
                outputs[name] = torch.cat([p.slices(lr[i : i + 8])["sr"] for i in range(0, len(lr), 8)])
        return call

    for p in variants.values():
        p.slices(lr[:1])  # warm-up: oneDNN primitives
    timings = alternate({name: run(name, p) for name, p in variants.items()}, args.repeats, warmup=0)
    state = machine_state()
    reference = outputs["before: fp32, channels_last (default)"]
    mask = brain_mask(reference[:, None].clamp(0, 1), 0.05)[:, 0]
    print(f"\npredict, {args.volume} ({tuple(volume.data.shape)}), {args.ckpt}: {args.run_slices} of a "
          f"{args.volume_slices}-slice volume per repeat ({tuple(lr.shape[-2:])} -> x{first.scale}), batch 8, "
          f"{args.repeats} repeats alternated\n")
    print("| variant | s / slice (min / median) | s / 120-slice volume (min) | speed-up vs before (min / median) | in-brain PSNR vs before's output, dB | max abs diff |")
    print("|---|---:|---:|---:|---:|---:|")
    before = timings["before: fp32, channels_last (default)"]
    for name, t in timings.items():
        diff = (outputs[name] - reference)[mask]
        psnr = float("inf") if not diff.abs().max() else float(-10 * torch.log10(diff.pow(2).mean()))
        print(f"| {name} | {t.min / len(lr):.3f} / {t.median / len(lr):.3f} | {t.min / len(lr) * args.volume_slices:,.0f} | "
              f"{before.min / t.min:.2f}x / {before.median / t.median:.2f}x | {psnr:.1f} | {float(diff.abs().max()):.2e} |")
    print(f"| _{state}_ | | | | | |")
    if args.parity:
        with threads(1):
            parity = measure_bf16_parity(args.ckpt, [args.volume])
        print(f"bf16 parity against the HR ({args.volume} degraded with the checkpoint's degradation, "
              f"{parity['slices']:.0f} slices): in-brain PSNR float32 {parity['psnr_brain_fp32']:.3f} dB, "
              f"bf16 {parity['psnr_brain_bf16']:.3f} dB, delta {parity['bf16_psnr_brain_delta']:+.4f} dB")
