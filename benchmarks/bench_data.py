"""``bench.py --section data``: the training data path per patch (loader and device paths, side by side) beside what
an H100 trains, and the low-field data pipeline per worker beside SRDenseNet's training consumption."""

from __future__ import annotations

import statistics
import time

import torch

from bench_foundation import timed
from lfmri.models.srdensenet import SRDenseNet


def paired_mni_patches(degradation, patch: int):
    """(training patches of the embedded MNI152 as ``data=paired_lowfield`` cuts them from a synthetic
    64 mT pair, the pair, seconds its setup took): resampled to the 3T grid, simulated, on the model grids."""
    import numpy as np

    from lfmri.data.mni152 import load_mni152
    from lfmri.data.paired_lowfield import PairedLowFieldDataModule, PairedPatchDataset, normalised
    from lfmri.data.splits import Segment
    from lfmri.geometry.nifti import Volume
    from lfmri.geometry.resample import resample_volume

    mni = load_mni152(1)
    mni.data = (mni.data / np.percentile(mni.data, 99)).clip(0, 1).astype(np.float32)
    dm = PairedLowFieldDataModule(synthetic_pattern="unused", degradation=degradation, input_mode="lr", patch_size=patch)
    start = time.perf_counter()
    hf, _ = normalised(resample_volume(mni, dm.hf_shape, dm.hf_spacing), dm.percentiles)
    lf, lf_affine, _ = degradation.simulate_volume(hf.data, hf.affine, 0)
    pair = dm.model_grids("mni", Volume(lf, lf_affine, "sim"), hf, synthetic=True)
    seconds = time.perf_counter() - start
    synthetic = [dm._prepare_pair(Segment("mni", 0, pair.hr.shape[0]), pair)]
    return PairedPatchDataset([], synthetic, degradation, patch, "lr", 0, 0.9, 0.05, 1.0), pair, seconds


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
    from lfmri.degrade.lowfield import LowFieldDegradation

    threads = torch.get_num_threads()
    deg = LowFieldDegradation(scale=2)
    torch.set_num_threads(1)
    try:
        paired, pair, per_subject = paired_mni_patches(deg, 64)
        n_slices = pair.hr.shape[0]
        segment = PreparedSegment("mni", np.arange(n_slices), torch.from_numpy(pair.hr))
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


H100_BF16_DENSE_FLOPS = 989e12  # NVIDIA H100 SXM, dense bf16 tensor-core peak (datasheet)
SHIPPED_RECIPES = ("srdensenet_kspace_x2", "gan_cpce_kspace_x2", "lowfield_sim")


def training_flops_per_patch(net: torch.nn.Module, lr_patch: int, channels: int = 1) -> float:
    """FLOPs of one training patch: the forward pass counted by torch's FlopCounterMode, times 3
    (backward = twice the forward, the usual rule for convolutional networks)."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        net(torch.rand(1, channels, lr_patch, lr_patch))
    return 3.0 * counter.get_total_flops()


def print_device_data(args) -> None:
    """Per shipped recipe, side by side in one run at one thread: what one training patch costs the
    loader on each path (``data.degrade_on=loader``: augment + degrade + crop per sample;
    ``device``: the slice index and the batch's stacking), what the device transform costs per patch
    on this CPU, the patches/s an H100 would train for the recipe's network (at 10 % and 30 % of its
    bf16 peak) and the loader workers each path needs to keep up with that. Slices: the embedded
    MNI152 (no data needed)."""
    import math

    import numpy as np
    from hydra.utils import instantiate

    from lfmri.contracts import input_mode
    from lfmri.data.datasets import CleanSlices, PatchDataset, PreparedSegment, SeededBatches, SliceKeys
    from lfmri.data.device_patches import DevicePatches, device_support
    from lfmri.data.mni152 import load_mni152
    from hydra import compose, initialize_config_dir
    from timing import alternate

    from lfmri.cli.apps import CONF_DIR
    import lfmri.training.resolvers  # noqa: F401  the configs' ${lfmri.multiple:...}

    mni = load_mni152(1).data
    mni = np.clip(mni / np.percentile(mni, 99), 0, 1).astype(np.float32)
    threads = torch.get_num_threads()
    rows = []
    for recipe in SHIPPED_RECIPES:
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            cfg = compose("train", overrides=[f"experiment={recipe}", "output_dir=/tmp/unused"])
        degradation = instantiate(cfg.degradation)
        net = instantiate(cfg.model)
        augment = instantiate(cfg.data.get("augment")) if cfg.data.get("augment") else None
        patch, batch = int(cfg.data.patch_size), int(cfg.data.batch_size)
        mode = input_mode(net)
        why = ("precomputed low-field pairs" if "paired" in str(cfg.data.get("_target_")) else
               device_support(degradation, int(cfg.data.get("context_slices", 0) or 0), bool(cfg.data.get("unpaired", False))))
        slices = torch.stack([degradation.prepare_hr(torch.from_numpy(np.ascontiguousarray(mni[:, :, z])))
                              for z in range(60, 120, 2)])
        segment = [PreparedSegment("mni", np.arange(len(slices)), slices)]
        n = 4 * batch  # patches per timed call of each variant
        torch.set_num_threads(1)
        try:
            if "paired" in str(cfg.data.get("_target_")):  # crops of the precomputed pairs (a synthetic one here)
                loader_path, _, _ = paired_mni_patches(degradation, patch)
            else:
                loader_path = PatchDataset(segment, degradation, patch, mode, seed=0, augment=augment)
            variants = {"loader path": lambda: [loader_path[(0, i)] for i in range(n)]}
            if why is None:
                clean, collate = CleanSlices(segment, seed=0), SeededBatches(0)
                transform = DevicePatches(degradation, patch, mode, augment=augment)
                variants["device path: loader"] = lambda: [collate([clean[(0, b * batch + i)] for i in range(batch)]) for b in range(4)]
                keys = SliceKeys(len(slices))
                variants["resident: loader"] = lambda: [collate(keys.__getitems__([(0, b * batch + i) for i in range(batch)])) for b in range(4)]
                hr = collate([clean[(0, i)] for i in range(batch)])["hr_slice"]
                variants["device path: transform"] = lambda: [transform(hr, seed) for seed in range(4)]
            # alternated in one process (timing.alternate): a shared machine's load hits every variant alike
            timings = alternate(variants, repeats=7)
        finally:
            torch.set_num_threads(threads)
        loader_ms = 1e3 * timings["loader path"].min / n
        device_loader_ms = 1e3 * timings["device path: loader"].min / n if why is None else None
        device_ms = 1e3 * timings["device path: transform"].min / n if why is None else None
        resident_ms = 1e3 * timings["resident: loader"].min / n if why is None else None
        lr_patch = patch // degradation.grid_scale if mode == "lr" else patch
        flops = training_flops_per_patch(net, lr_patch)
        rates = {share: share * H100_BF16_DENSE_FLOPS / flops for share in (0.1, 0.3)}
        workers = {share: math.ceil(rate * loader_ms / 1e3) for share, rate in rates.items()}
        rows.append((recipe, f"{type(degradation).__name__}, patch {patch}, batch {batch}", loader_ms, device_loader_ms, resident_ms, device_ms,
                     flops, rates, workers, why,
                     {share: math.ceil(rate * device_loader_ms / 1e3) for share, rate in rates.items()} if device_loader_ms else None))
    print("\ntraining data path per patch at one thread (loader vs device; min of 7 alternated repeats), "
          "beside what an H100 trains per second")
    print("| recipe | data | loader path: loader ms/patch | device path: loader ms/patch | resident slices: loader ms/patch "
          "| device transform on this CPU, ms/patch | training GFLOP/patch | H100 patches/s at 10 % / 30 % of bf16 peak "
          "| loader workers needed at 30 %: loader path / device path |")
    print("|---|---|---|---|---|---|---|---|---|")
    for recipe, data, loader_ms, dl_ms, res_ms, dev_ms, flops, rates, workers, why, device_workers in rows:
        device_cells = (f"{dl_ms:.4f}", f"{res_ms:.4f}", f"{dev_ms:.3f}") if why is None else (f"loader only: {why}", "-", "-")
        print(f"| {recipe} | {data} | {loader_ms:.3f} | {' | '.join(device_cells)} | {flops / 1e9:.2f} | "
              f"{rates[0.1]:,.0f} / {rates[0.3]:,.0f} | {workers[0.3]} / {device_workers[0.3] if device_workers else '-'} |")
