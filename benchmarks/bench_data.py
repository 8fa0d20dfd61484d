"""``bench.py --section data``: the low-field data pipeline per worker beside SRDenseNet's training consumption."""

from __future__ import annotations

import statistics
import time

import torch

from bench_foundation import timed
from lfmri.models.srdensenet import SRDenseNet


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
