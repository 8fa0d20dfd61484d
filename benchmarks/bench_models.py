"""``bench.py --section models``: every network of the zoo on one 128 -> 256 slice (parameters, MACs,
latency relative to SRDenseNet, peak tensor memory)."""

from __future__ import annotations

import statistics
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

import lfmri.training.resolvers  # noqa: F401  registers the resolvers of the composed configs
from bench_foundation import timed


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
