"""``bench.py --section foundation`` / ``inference``: degradation and patch throughput, SRDenseNet
training with and without channels_last, and the efficiency of each inference variant against a GEMM."""

from __future__ import annotations

import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

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
