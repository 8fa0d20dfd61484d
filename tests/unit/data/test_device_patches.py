"""``data.degrade_on=device``: the loader hands over clean slices and the batch is augmented, degraded
and cut on the training device (lfmri.data.device_patches), reproducibly and as the loader path does."""

from __future__ import annotations

import math

import pytest
import torch

from lfmri.data.augment import SliceAugmentation
from lfmri.data.datasets import CleanSlices, EpochSampler, PatchDataset, PreparedSegment, SeededBatches, degraded_sample
from lfmri.data.device_patches import DevicePatches, augment_batch, crop
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation, KSpaceZeroFillDegradation


def head_slices(n: int = 6, size: int = 32) -> torch.Tensor:
    """(n, size, size) ellipses of different sizes and brightness on a black background."""
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    out = []
    for i in range(n):
        a, b = 0.5 + 0.05 * i, 0.7 - 0.04 * i
        inside = ((xx / a) ** 2 + (yy / b) ** 2) < 1
        out.append(inside * (0.4 + 0.1 * i) + inside * 0.2 * torch.cos(6 * xx + i))
    return torch.stack(out).clamp(0, 1)


def segments(hr: torch.Tensor) -> list[PreparedSegment]:
    return [PreparedSegment("s0", torch.arange(len(hr)).numpy(), hr)]


def find_origin(patch: torch.Tensor, image: torch.Tensor, step: int) -> tuple[int, int]:
    """The LR-grid corner at which ``patch`` sits in ``image`` (HR pixels ``step`` apart)."""
    size = patch.shape[-1]
    for y in range(0, image.shape[-2] - size + 1, step):
        for x in range(0, image.shape[-1] - size + 1, step):
            if torch.equal(image[..., y : y + size, x : x + size], patch):
                return y // step, x // step
    raise AssertionError("patch not found in its slice")


@pytest.mark.parametrize("degradation, mode", [
    (KSpaceDegradation(scale=2, hr_size=32, noise_std=0.0), "lr"),
    (KSpaceZeroFillDegradation(scale=2, hr_size=32, noise_std=0.0), "lr"),
    (BicubicDegradation(scale=2, hr_size=32, noise_std=0.0), "upsampled"),
])
def test_a_noise_free_unaugmented_device_patch_is_the_loader_paths_patch_of_its_slice(degradation, mode):
    """The same k-space truncation (or bicubic) on the batch as per sample: each device patch is the
    loader path's degraded slice cut at the device patch's own corner, to float precision."""
    hr = head_slices()
    batch = hr[:, None]
    patches = DevicePatches(degradation, patch_size=16, input_mode=mode)(batch, seed=5)
    step = degradation.grid_scale
    for b in range(len(hr)):
        y0, x0 = find_origin(patches["hr"][b], batch[b], step)
        loader = degraded_sample(batch[b], degradation, torch.Generator().manual_seed(0), mode)
        lr_patch = loader["lr"][..., y0 : y0 + 16 // step, x0 : x0 + 16 // step]
        torch.testing.assert_close(patches["lr"][b], lr_patch, atol=1e-5, rtol=0)
        if mode == "upsampled":
            torch.testing.assert_close(patches["lr_up"][b], loader["lr_up"][..., y0 * step : y0 * step + 16, x0 * step : x0 * step + 16],
                                       atol=1e-5, rtol=0)


def test_the_same_batch_seed_gives_the_same_patches_and_another_seed_others():
    device = DevicePatches(KSpaceDegradation(scale=2, hr_size=32), patch_size=16, input_mode="lr",
                           augment=SliceAugmentation(scale=[0.8, 1.1], gamma=[0.8, 1.2], contrast=[0.9, 1.1]))
    batch = head_slices()[:, None]
    first, again, other = device(batch, 11), device(batch.clone(), 11), device(batch, 12)
    for name in ("hr", "lr"):
        assert torch.equal(first[name], again[name])
        assert not torch.equal(first[name], other[name])
    assert first["hr"].shape == (6, 1, 16, 16) and first["lr"].shape == (6, 1, 8, 8)


def test_device_noise_has_the_loader_paths_statistics():
    """Pure background (a black slice): the LR magnitude is Rayleigh, mean sigma * sqrt(pi / 2), on
    both paths for the same noise level; per-sample levels spread over the configured range."""
    sigma = 0.03
    degradation = KSpaceDegradation(scale=2, hr_size=32, noise_std=sigma)
    black = torch.zeros(64, 1, 32, 32)
    device = DevicePatches(degradation, patch_size=16, input_mode="lr")(black, seed=3)["lr"]
    loader = torch.stack([degraded_sample(black[b], degradation, torch.Generator().manual_seed(b), "lr")["lr"] for b in range(64)])
    expected = sigma * math.sqrt(math.pi / 2)
    assert float(device.mean()) == pytest.approx(expected, rel=0.03)
    assert float(loader.mean()) == pytest.approx(expected, rel=0.03)
    ranged = DevicePatches(KSpaceDegradation(scale=2, hr_size=32, noise_std=[0.01, 0.05]), 16, "lr")(black, seed=3)["lr"]
    levels = ranged.flatten(1).mean(1) / math.sqrt(math.pi / 2)
    assert float(levels.min()) < 0.02 and float(levels.max()) > 0.04  # one level per sample, not per batch


def test_patches_are_centred_on_anatomy_as_often_as_the_loader_paths():
    hr = head_slices(n=4, size=64)
    dataset = PatchDataset(segments(hr), KSpaceDegradation(scale=2, hr_size=64), 16, "lr", seed=0, foreground_prob=0.5)
    loader_share = sum(float(dataset[(0, i)]["hr"][0, 8, 8] > 0.05) for i in range(400)) / 400
    device = DevicePatches(KSpaceDegradation(scale=2, hr_size=64), patch_size=16, input_mode="lr", foreground_prob=0.5)
    batch = hr[torch.arange(400) % 4][:, None]
    device_share = float((device(batch, seed=1)["hr"][:, 0, 8, 8] > 0.05).float().mean())
    assert abs(device_share - loader_share) < 0.1


def test_batch_augmentation_is_a_dihedral_transform_and_the_intensity_map_of_each_sample():
    augment = SliceAugmentation(flips=True, rot90=True, scale=[0.9, 0.9], gamma=[2.0, 2.0], contrast=None)
    hr = head_slices(n=8)[:, None]
    out = augment_batch(augment, hr, torch.Generator().manual_seed(4))
    seen = set()
    for b in range(len(hr)):
        candidates = {(k, lr, ud): SliceAugmentation.geometry(hr[b], (k, lr, ud)) for k in range(4) for lr in (0, 1) for ud in (0, 1)}
        matches = [t for t, image in candidates.items() if torch.allclose(out[b], (image ** 2 * 0.9).clamp(0, 1), atol=1e-6)]
        assert matches, f"sample {b} is not a dihedral transform of its slice with x**2 * 0.9"
        seen.add(tuple(SliceAugmentation.geometry(torch.arange(4.0).view(1, 2, 2), matches[0]).flatten().tolist()))
    assert len(seen) > 1  # drawn per sample


def test_crop_cuts_each_sample_at_its_own_corner():
    images = torch.arange(2 * 3 * 10 * 10, dtype=torch.float32).view(2, 3, 10, 10)
    out = crop(images, torch.tensor([0, 4]), torch.tensor([2, 5]), 3)
    assert torch.equal(out[0], images[0, :, 0:3, 2:5]) and torch.equal(out[1], images[1, :, 4:7, 5:8])


def test_the_loader_hands_over_the_loader_paths_slices_and_one_seed_per_batch_distinct_per_rank(monkeypatch):
    hr = head_slices()
    clean = CleanSlices(segments(hr), seed=7)
    collate = SeededBatches(seed=7)
    loader = PatchDataset(segments(hr), BicubicDegradation(scale=2, hr_size=32), 32, "lr", seed=7)
    for i in range(5):  # the slice the loader path degrades for the same key (a whole-slice patch: the slice itself)
        assert torch.equal(clean[(0, i)]["hr_slice"], loader[(0, i)]["hr"])
    batch = collate([clean[(0, i)] for i in range(4)])
    assert batch["hr_slice"].shape == (4, 1, 32, 32) and batch["seed"] == collate([clean[(0, i)] for i in range(4)])["seed"]
    from lfmri.data import samplers

    seeds = []
    for rank in (0, 1):  # two DDP ranks: disjoint keys, so distinct batch seeds (never the same noise)
        monkeypatch.setattr(samplers, "_rank_and_world", lambda rank=rank: (rank, 2))
        keys = list(EpochSampler(8, epoch=0))[:4]
        seeds.append(collate([clean[k] for k in keys])["seed"])
    assert seeds[0] != seeds[1]


def folder_datamodule(phantom_dir, **options):
    from lfmri.data.folder import FolderDataModule

    dm = FolderDataModule(pattern=f"{phantom_dir}/*.nii.gz", degradation=KSpaceDegradation(scale=2, hr_size=32), patch_size=16,
                          batch_size=4, eval_batch_size=4, fractions=(0.5, 0.25, 0.25), num_workers=0, patches_per_epoch=24,
                          seed=3, split_file=None, augment=SliceAugmentation(scale=[0.9, 1.1]), **options)
    dm.setup("fit")
    return dm


def test_a_device_path_run_resumed_mid_epoch_trains_on_exactly_the_patches_it_had_left(phantom_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="lfmri.data.datamodule"):
        dm = folder_datamodule(phantom_dir, degrade_on="device")
        loader = dm.train_dataloader()
    assert "training patches are augmented, degraded and cut on the training device" in caplog.text
    uninterrupted = [dm.on_after_batch_transfer(batch, 0) for batch in loader]
    assert set(uninterrupted[0]) == {"hr", "lr"} and uninterrupted[0]["lr"].shape == (4, 1, 8, 8)
    resumed_dm = folder_datamodule(phantom_dir, degrade_on="device")
    resumed_loader = resumed_dm.train_dataloader()
    resumed_loader.load_state_dict({"trained_batches": 2})  # what Lightning restores from a checkpoint
    resumed = [resumed_dm.on_after_batch_transfer(batch, 0) for batch in resumed_loader]
    assert len(uninterrupted) == 6 and len(resumed) == 4
    for a, b in zip(uninterrupted[2:], resumed):
        assert torch.equal(a["hr"], b["hr"]) and torch.equal(a["lr"], b["lr"])
    loader_path = folder_datamodule(phantom_dir)  # the loader path's batches have the same views and shapes
    first = next(iter(loader_path.train_dataloader()))
    assert {k: v.shape for k, v in first.items()} == {k: v.shape for k, v in uninterrupted[0].items()}


def test_data_the_device_path_cannot_make_keeps_the_loader_path_and_says_so_in_one_line(phantom_dir, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="lfmri.data.datamodule"):
        dm = folder_datamodule(phantom_dir, degrade_on="device", context_slices=1)
        batch = next(iter(dm.train_dataloader()))
    assert "lr_context" in batch and dm.device_patches is None
    lines = [r.getMessage() for r in caplog.records if "degrade_on=device" in r.getMessage()]
    assert lines == ["data.degrade_on=device is not available for multi-slice context (data.context_slices > 0): "
                     "training patches are degraded in the data loader"]


def test_a_training_run_on_the_device_path(phantom_dir, tmp_path):
    import json

    from lfmri.training.run import train
    from tests.helpers.config import compose
    from tests.helpers.run import TINY

    cfg = compose(*TINY, f"data.pattern={phantom_dir}/*.nii.gz", "model=srcnn", "data.degrade_on=device",
                  "trainer.max_epochs=1", "trainer.limit_train_batches=3", "trainer.limit_val_batches=1",
                  "trainer.limit_test_batches=1", "callbacks.progress_log=null", output_dir=f"{tmp_path}/run")
    train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["global_step"] == 3 and math.isfinite(record["metrics"]["train/loss"])


def test_the_64mT_simulation_keeps_the_loader_path():
    from lfmri.data.device_patches import device_support
    from lfmri.degrade.lowfield import LowFieldDegradation

    assert device_support(LowFieldDegradation(scale=2), 0, False) == "the LowFieldDegradation degradation"
    assert device_support(KSpaceZeroFillDegradation(), 0, False) is None


@pytest.mark.parametrize("flips, rot90, expected", [(True, True, 8), (False, True, 4), (True, False, 4)])
def test_batch_geometry_draws_the_loader_paths_transforms_uniformly(flips, rot90, expected):
    """flips x quarter turns (8 symmetries), quarter turns only (4 rotations, never a mirror image),
    flips only (4): each equally likely, as SliceAugmentation.hr draws them."""
    from collections import Counter

    augment = SliceAugmentation(flips=flips, rot90=rot90)
    image = torch.arange(16.0).view(1, 1, 4, 4)
    allowed = {tuple(SliceAugmentation.geometry(image[0], (k, lr, ud)).flatten().tolist())
               for k in (range(4) if rot90 else [0]) for lr in ((0, 1) if flips else (0,)) for ud in ((0, 1) if flips else (0,))}
    out = augment_batch(augment, image.expand(4000, 1, 4, 4), torch.Generator().manual_seed(0))
    counts = Counter(tuple(x.flatten().tolist()) for x in out)
    assert set(counts) == allowed and len(allowed) == expected
    assert max(counts.values()) / min(counts.values()) < 1.25


def test_resident_slices_train_without_loader_work_reproducibly_and_resume_exactly(phantom_dir):
    from lfmri.data.datasets import SliceKeys

    dm = folder_datamodule(phantom_dir, degrade_on="device", resident=True)
    loader = dm.train_dataloader()
    assert isinstance(loader.dataset, SliceKeys) and dm.resident_slices.shape[1:] == (1, 32, 32)
    batches = list(loader)
    assert set(batches[0]) == {"batch_size", "seed"}  # nothing per patch crosses the loader
    first = [dm.on_after_batch_transfer(batch, 0) for batch in batches]
    again = [dm.on_after_batch_transfer(batch, 0) for batch in batches]
    assert first[0]["lr"].shape == (4, 1, 8, 8) and all(torch.equal(a["lr"], b["lr"]) for a, b in zip(first, again))
    resumed_dm = folder_datamodule(phantom_dir, degrade_on="device", resident=True)
    resumed_loader = resumed_dm.train_dataloader()
    resumed_loader.load_state_dict({"trained_batches": 2})
    resumed = [resumed_dm.on_after_batch_transfer(batch, 0) for batch in resumed_loader]
    assert all(torch.equal(a["hr"], b["hr"]) for a, b in zip(first[2:], resumed)) and len(resumed) == 4


def test_resident_needs_the_device_path(phantom_dir):
    from lfmri.errors import ConfigError

    with pytest.raises(ConfigError, match="data.resident=true .* set data.degrade_on=device too"):
        folder_datamodule(phantom_dir, resident=True)


def test_resident_slices_that_do_not_fit_stay_in_host_memory(monkeypatch):
    from lfmri.data import device_patches

    slices = torch.zeros(10, 1, 32, 32)
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (1000, 10**9))
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(1) or self)
    kept, why = device_patches.resident_placement(slices, torch.device("cuda", 0))
    assert kept.device.type == "cpu" and pinned and "do not fit" in why and "stay in host memory" in why
