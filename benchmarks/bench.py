"""lfmri benchmark: degradation throughput, SRDenseNet training throughput, inference latency and
achieved GFLOP/s against a large float32 matrix product, and a table of every model of the zoo
(parameters, multiply-accumulates, latency relative to SRDenseNet, peak memory), and ``predict``
on a 256 x 256 x 150 volume with and without tiling, in one run.

    python benchmarks/bench.py [--steps 10] [--repeats 5] [--section foundation|inference|models|predict|data|all]
    python benchmarks/bench.py --section predict-real --ckpt CKPT --volume SCAN.nii.gz [--run-slices 16]

Figures to quote are the ratios (machine-independent-ish): absolute times only mean something for
the machine printed in the header. Ratios in ``foundation``/``inference``/``predict-real`` come from
variants alternated with their reference in one process (``timing.py``), min and median, with the
load average and thread count printed beside them.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))  # timing.py beside this file

import lfmri.training.resolvers  # noqa: E402,F401  registers the resolvers of the composed configs
from lfmri.data.datasets import PatchDataset, PreparedSegment
from lfmri.degrade.degradations import KSpaceDegradation
from lfmri.models.srdensenet import SRDenseNet


def timed(fn, repeats: int) -> list[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def degradation_throughput(slices: torch.Tensor, repeats: int) -> tuple[float, float]:
    """(whole 128x128 LR/HR pairs per second, training patch pairs per second) on one core."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        deg = KSpaceDegradation()
        hr = deg.prepare_hr(slices)
        gen = torch.Generator().manual_seed(0)

        def pairs():
            for i in range(len(hr)):
                deg.degrade(hr[i], gen)

        pair_rate = len(hr) / statistics.median(timed(pairs, repeats))
        dataset = PatchDataset([PreparedSegment("bench", torch.arange(len(hr)).numpy(), hr)], deg, 32, "lr", seed=0)
        patch_rate = 200 / statistics.median(timed(lambda: [dataset[(0, i)] for i in range(200)], repeats))
        return pair_rate, patch_rate
    finally:
        torch.set_num_threads(threads)


def memory_format(channels_last: bool) -> torch.memory_format:
    return torch.channels_last if channels_last else torch.contiguous_format


def training_throughput(steps: int, channels_last: bool, batch: int = 20) -> float:
    fmt = memory_format(channels_last)
    net = SRDenseNet().to(memory_format=fmt)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    x, y = torch.rand(batch, 1, 16, 16).contiguous(memory_format=fmt), torch.rand(batch, 1, 32, 32)

    def step():
        loss = torch.nn.functional.mse_loss(net(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    timed(step, 3)  # warm-up
    return batch / statistics.median(timed(step, steps))


def inference(repeats: int, channels_last: bool) -> tuple[float, float]:
    """(median seconds, GFLOP) of SRDenseNet x2 on one 128x128 LR slice -> 256x256."""
    fmt = memory_format(channels_last)
    net = SRDenseNet().eval().to(memory_format=fmt)
    x = torch.rand(1, 1, 128, 128).contiguous(memory_format=fmt)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            net(x)
        timed(lambda: net(x), 2)
        seconds = statistics.median(timed(lambda: net(x), repeats))
    return seconds, counter.get_total_flops() / 1e9


def matmul_gflops(repeats: int, n: int = 2048) -> float:
    a, b = torch.rand(n, n), torch.rand(n, n)
    timed(lambda: a @ b, 2)
    return 2 * n**3 / statistics.median(timed(lambda: a @ b, repeats)) / 1e9


MODELS = ["srdensenet", "srcnn", "fsrcnn", "espcn", "vdsr", "mrln", "cpce", "circle", "amir"]
CONF = Path(__file__).resolve().parents[1] / "conf"


def build_model(name: str) -> torch.nn.Module:
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=["output_dir=/tmp/lfmri-bench", f"model={name}"])
    return instantiate(cfg.model).eval()


def slice_input(model: torch.nn.Module) -> torch.Tensor:
    """A 128x128 LR slice, or its 256x256 HR-grid version for pre-upsampled models."""
    from lfmri.contracts import input_mode

    size = 256 if input_mode(model) == "upsampled" else 128
    return torch.rand(1, 1, size, size)


def peak_memory_mb(fn) -> float:
    """Peak bytes of tensors alive during ``fn()``, from the profiler's allocation events.

    Replaying every allocation and free in time order gives the high-water mark of tensor memory
    (what bounds the slice size a machine can take), independent of the C allocator's caching.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak / 2**20


def model_table(repeats: int) -> list[tuple]:
    """(name, parameters, GMAC, ms, latency / SRDenseNet, peak MB) for a 128->256 slice."""
    from lfmri.inference.network import channels_last_forward, predict

    rows = {}
    for name in MODELS:
        model = build_model(name)
        forward = channels_last_forward(model)
        x = slice_input(model)
        with torch.no_grad():
            with FlopCounterMode(display=False) as counter:
                predict(model, x, forward=forward)
            timed(lambda: predict(model, x, forward=forward), 1)
            seconds = statistics.median(timed(lambda: predict(model, x, forward=forward), repeats))
            memory = peak_memory_mb(lambda: predict(model, x, forward=forward))
        params = sum(p.numel() for p in model.parameters())
        rows[name] = (params, counter.get_total_flops() / 2e9, seconds, memory)
    reference = rows["srdensenet"][2]
    return [
        (name, params, gmac, seconds * 1e3, seconds / reference, memory)
        for name, (params, gmac, seconds, memory) in rows.items()
    ]


def print_model_table(repeats: int) -> None:
    print("\nModels, one 128x128 LR slice -> 256x256 (pre-upsampled models read the 256x256 grid);")
    print("lfmri's inference path (channels_last, padding); MACs from torch's FLOP counter (convs, matmuls)")
    print("| model | parameters | GMAC | latency ms | latency / SRDenseNet | peak memory MB |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, params, gmac, ms, ratio, mem in model_table(repeats):
        print(f"| {name} | {params:,} | {gmac:.2f} | {ms:,.0f} | {ratio:.2f} | {mem:,.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--section", choices=["foundation", "inference", "models", "predict", "data", "all", "predict-real"], default="all",
                        help="predict-real (not in all): --ckpt and --volume, a trained checkpoint on a real volume")
    parser.add_argument("--ckpt", help="predict-real: a trained checkpoint")
    parser.add_argument("--volume", help="predict-real: a real NIfTI volume")
    parser.add_argument("--run-slices", type=int, default=16, help="predict-real: slices predicted per repeat")
    parser.add_argument("--parity", action=argparse.BooleanOptionalAction, default=True, help="predict-real: also measure bf16 parity against the HR")
    parser.add_argument("--volume-slices", type=int, default=150, help="slices of the predict volume actually run (predict); "
                        "slices of the real volume the per-volume time is given for (predict-real)")
    args = parser.parse_args()
    from timing import machine_state

    print(f"machine: {platform.processor() or platform.machine()}; {machine_state()}")
    if args.section in ("foundation", "all"):
        print_foundation(args)
    if args.section == "inference":  # the inference-efficiency table of foundation alone
        print_inference_efficiency(args.repeats)
    if args.section in ("models", "all"):
        print_model_table(max(3, args.repeats // 3))
    if args.section in ("predict", "all"):
        print_predict(args.volume_slices)
    if args.section in ("data", "all"):
        print_data(args)
    if args.section == "predict-real":
        if not (args.ckpt and args.volume):
            parser.error("--section predict-real needs --ckpt and --volume")
        print_predict_real(args)


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


def inference_variants(threads: int, slice_size: int = 128) -> tuple[dict, float]:
    """SRDenseNet x2 inference variants on one slice, each a no-argument call, and the forward FLOP.

    "before" is the network as it ran until issue 15 (per-layer ``torch.cat``, ``nn.Conv2d``
    reconstruction: ``fast_inference=False``); the others are what ``lfmri.inference.network.network_forward``
    runs now. All share one set of weights.
    """
    from lfmri.inference.network import bf16_supported, network_forward, onnxruntime_forward

    torch.manual_seed(0)
    weights = SRDenseNet().state_dict()

    def net(fast: bool, channels_last: bool) -> SRDenseNet:
        model = SRDenseNet().eval()
        model.load_state_dict(weights)
        model.fast_inference = fast
        return model.to(memory_format=memory_format(channels_last))

    x = torch.rand(1, 1, slice_size, slice_size)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(False, False)(x)
    calls = {}
    for label, fast, cl in (("before: NCHW", False, False), ("before: channels_last (default)", False, True),
                            ("preallocated dense, NCHW", True, False), ("channels_last + GEMM reconstruction", True, True)):
        forward = network_forward(net(fast, cl), "cpu", "fp32", channels_last=cl)
        calls[label] = (lambda f=forward: f(x))
    if bf16_supported("cpu"):
        bf16 = network_forward(net(True, True), "cpu", "bf16")
        calls["bf16 autocast, channels_last"] = lambda: bf16(x)
    ort = onnxruntime_forward(net(True, False), threads=threads)
    calls["ONNX Runtime (float32)"] = lambda: ort(x)
    return calls, counter.get_total_flops()


def print_inference_efficiency(repeats: int, thread_counts=(1, 2)) -> None:
    """Achieved FLOP/s of each inference variant / the same process's 2048^3 float32 GEMM rate.

    Every variant, the float32 GEMM and the bf16 GEMM are alternated in one process (see
    ``timing.py``), at each thread count; the table gives min- and median-based ratios.
    """
    from timing import alternate, gemm, machine_state, rate_ratio, threads

    print("\nSRDenseNet x2 inference, one 128 -> 256 slice; efficiency = achieved FLOP/s / float32 2048^3 GEMM FLOP/s,")
    print(f"all rows of a thread count alternated in one process, {repeats} repeats (min / median)\n")
    print("| variant | threads | ms (min / median) | efficiency (min / median) | speed-up vs before, channels_last (min / median) |")
    print("|---|---:|---:|---:|---:|")
    for n in thread_counts:
        with threads(n), torch.no_grad():
            calls, flop = inference_variants(n)
            fp32_gemm, gemm_flop = gemm()
            bf16_gemm, _ = gemm(dtype=torch.bfloat16)
            timings = alternate({"GEMM float32": fp32_gemm, "GEMM bf16": bf16_gemm, **calls}, repeats)
            state = machine_state()
        ref, before = timings["GEMM float32"], timings["before: channels_last (default)"]
        for label, t in timings.items():
            work = gemm_flop if label.startswith("GEMM") else flop
            eff = rate_ratio(work, t, gemm_flop, ref)
            speed = (before.min / t.min, before.median / t.median)
            shown = "" if label.startswith("GEMM") else f"{speed[0]:.2f}x / {speed[1]:.2f}x"
            print(f"| {label} | {n} | {t.min * 1e3:,.0f} / {t.median * 1e3:,.0f} | {eff[0]:.2f} / {eff[1]:.2f} | {shown} |")
        print(f"| _{state}_ | | | | |")


def print_training_ratio(steps: int) -> None:
    """SRDenseNet training patches/s, NCHW and channels_last alternated step by step."""
    from timing import alternate, machine_state

    steppers = {}
    for cl in (False, True):
        fmt = memory_format(cl)
        torch.manual_seed(0)
        net = SRDenseNet().to(memory_format=fmt)
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        x, y = torch.rand(20, 1, 16, 16).contiguous(memory_format=fmt), torch.rand(20, 1, 32, 32)

        def step(net=net, opt=opt, x=x, y=y):
            loss = torch.nn.functional.mse_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        steppers["channels_last" if cl else "NCHW"] = step
    t = alternate(steppers, steps, warmup=2)
    print("\nSRDenseNet training, batch 20 of 16 -> 32 patches, steps alternated")
    for label, timing in t.items():
        print(f"  {label}: {20 / timing.min:,.1f} / {20 / timing.median:,.1f} patches/s (best / median)")
    print(f"  channels_last speed-up: {t['NCHW'].min / t['channels_last'].min:.2f}x / {t['NCHW'].median / t['channels_last'].median:.2f}x"
          f"  ({machine_state()})")


def print_foundation(args) -> None:
    from lfmri.data.mni152 import load_mni152

    volume = load_mni152(1).data
    volume = (volume / volume.max()).clip(0, 1)
    slices = torch.from_numpy(volume[:, :, 60:124].transpose(2, 0, 1).copy())
    pairs, patches = degradation_throughput(slices, args.repeats)
    print(f"k-space degradation, 128->64 slice pairs / s / core: {pairs:,.0f}")
    print(f"training patch pairs (32/16) generated / s / core: {patches:,.0f}")
    print_training_ratio(args.steps)
    print_inference_efficiency(args.repeats)


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


def print_data(args) -> None:
    """Low-field data pipeline per worker (one thread) beside SRDenseNet's training consumption.

    Paired / mixed data (``data=paired_lowfield``) do the heavy work once per subject at setup:
    resampling to the 3T grid, the low-field simulation (for synthetic pairs) and the model grids;
    training patches are then crops. Slice data with ``degradation=lowfield`` simulate every patch
    on the fly from a whole slice. Both are compared with the patches per second SRDenseNet trains on
    with the ``experiment=lowfield_pairs`` recipe (batch 16, 64/32 patches) and the default one.
    """
    import math

    import numpy as np

    from lfmri.data.datasets import PatchDataset, PreparedSegment
    from lfmri.geometry.nifti import Volume
    from lfmri.degrade.lowfield import LowFieldDegradation
    from lfmri.data.mni152 import load_mni152
    from lfmri.data.paired_lowfield import PairedLowFieldDataModule, PairedPatchDataset, normalised
    from lfmri.geometry.resample import resample_volume
    from lfmri.data.splits import Segment

    threads = torch.get_num_threads()
    mni = load_mni152(1)
    mni.data = (mni.data / np.percentile(mni.data, 99)).clip(0, 1).astype(np.float32)
    deg = LowFieldDegradation(scale=2)
    dm = PairedLowFieldDataModule(synthetic_pattern="unused", degradation=deg, input_mode="lr", patch_size=64)
    torch.set_num_threads(1)
    try:
        start = time.perf_counter()
        hf, _ = normalised(resample_volume(mni, dm.hf_shape, dm.hf_spacing), dm.percentiles)
        lf, lf_affine, _ = deg.simulate_volume(hf.data, hf.affine, 0)
        pair = dm.model_grids("mni", Volume(lf, lf_affine, "sim"), hf, synthetic=True)
        per_subject = time.perf_counter() - start
        n_slices = pair.hr.shape[0]
        segment = PreparedSegment("mni", np.arange(n_slices), torch.from_numpy(pair.hr))
        synthetic = [dm._prepare_pair(Segment("mni", 0, n_slices), pair)]
        paired = PairedPatchDataset([], synthetic, deg, 64, "lr", 0, 0.9, 0.05, 1.0)
        crop_rate = 200 / statistics.median(timed(lambda: [paired[(0, i)] for i in range(200)], 3))
        slice_patches = PatchDataset([segment], deg, 64, "lr", seed=0)
        on_the_fly = 20 / statistics.median(timed(lambda: [slice_patches[(0, i)] for i in range(20)], 3))
    finally:
        torch.set_num_threads(threads)
    net = SRDenseNet().to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), 1e-3)

    def consumption(batch: int, lr_patch: int) -> float:
        x = torch.rand(batch, 1, lr_patch, lr_patch).contiguous(memory_format=torch.channels_last)
        y = torch.rand(batch, 1, 2 * lr_patch, 2 * lr_patch)

        def step():
            loss = torch.nn.functional.l1_loss(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        timed(step, 2)
        return batch / statistics.median(timed(step, max(3, args.steps // 4)))

    train = {"64/32, batch 16 (lowfield_pairs)": consumption(16, 32), "32/16, batch 20 (default)": consumption(20, 16)}
    rows = [
        (f"per subject at setup: 3T resample + 64 mT simulation + model grids, s ({n_slices} sagittal slices)", f"{per_subject:.2f}"),
        ("  = slice pairs / s / worker (amortised setup)", f"{n_slices / per_subject:,.1f}"),
        ("paired training patches (64/32) cropped / s / worker", f"{crop_rate:,.0f}"),
        ("on-the-fly degradation=lowfield patches (64/32 from 220x200 slices) / s / worker", f"{on_the_fly:,.1f}"),
    ]
    for label, rate in train.items():
        rows += [
            (f"[{torch.get_num_threads()} threads] SRDenseNet training consumes, patches / s, {label}", f"{rate:,.1f}"),
            ("  workers needed: paired crops / on-the-fly lowfield", f"{math.ceil(rate / crop_rate)} / {math.ceil(rate / on_the_fly)}"),
        ]
    print("\ndata pipeline (low-field simulation included) vs training consumption")
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value:>10}")


if __name__ == "__main__":
    main()
