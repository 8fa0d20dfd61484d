"""``lfmri.data.datasets``: patches seeded by key and aligned, samplers, slice batches, unpaired patches, ranks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lfmri.data.datasets import EpochSampler, PatchDataset, PreparedSegment, ShapeBatchSampler, SliceDataset
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation


def prepared(n=6, size=64, scale=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    hr = torch.zeros(n, size, size)
    hr[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 0.5 + 0.3 * torch.rand(n, size // 2, size // 2, generator=g)
    return [PreparedSegment("subj", np.arange(10, 10 + n), hr)]


def test_patch_dataset_is_deterministic_by_key_and_aligned():
    deg = KSpaceDegradation(noise_std=0.0, hr_size=64)
    ds = PatchDataset(prepared(), deg, patch_size=16, input_mode="upsampled", seed=1, foreground_prob=1.0)
    a, b, c = ds[(0, 5)], ds[(0, 5)], ds[(1, 5)]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["hr"], c["hr"])
    assert a["hr"].shape == (1, 16, 16) and a["lr"].shape == (1, 8, 8) and a["lr_up"].shape == (1, 16, 16)
    assert "lr_complex" not in a
    # the LR patch is the degradation of the HR slice cropped at the origin the HR patch implies
    for key in [(0, i) for i in range(20)]:
        s = ds[key]
        for hr in ds.hr:
            lr_full, _ = deg.degrade(hr, torch.Generator())
            hits = (hr.unfold(0, 16, 1).unfold(1, 16, 1) == s["hr"][0]).all(-1).all(-1).nonzero()
            if len(hits):
                y, x = hits[0].tolist()
                assert y % 2 == 0 and x % 2 == 0
                assert torch.allclose(lr_full[y // 2 : y // 2 + 8, x // 2 : x // 2 + 8], s["lr"][0], atol=1e-5)
                break
        else:
            pytest.fail("HR patch not found in any slice")


def test_patches_come_from_volumes_of_different_sizes():
    # a folder of scans whose slices differ in size, under a degradation that keeps each slice's size
    # (bicubic, hr_size null): every slice is drawn from, each patch from its own slice's grid
    deg = BicubicDegradation(scale=2)
    small, large = prepared(n=3, size=40, seed=1)[0], prepared(n=3, size=64, seed=2)[0]
    segs = [PreparedSegment("a", small.slice_indices, small.hr), PreparedSegment("b", large.slice_indices, large.hr)]
    ds = PatchDataset(segs, deg, patch_size=16, input_mode="lr", seed=0, foreground_prob=1.0)
    assert len(ds) == 6
    drawn = [ds[(0, i)] for i in range(40)]
    assert all(s["hr"].shape == (1, 16, 16) and s["lr"].shape == (1, 8, 8) for s in drawn)
    with pytest.raises(ValueError, match=r"larger than the HR slices \(40, 40\)"):
        PatchDataset(segs, deg, patch_size=48, input_mode="lr", seed=0)


def test_patches_are_biased_towards_anatomy():
    deg = KSpaceDegradation(noise_std=0.0, hr_size=64)
    segs = prepared(size=64)
    biased = PatchDataset(segs, deg, 16, "lr", seed=0, foreground_prob=0.9)
    uniform = PatchDataset(segs, deg, 16, "lr", seed=0, foreground_prob=0.0)
    frac = lambda ds: np.mean([(ds[(0, i)]["hr"] > 0.05).float().mean().item() for i in range(200)])  # noqa: E731
    # the anatomy covers a quarter of the slice; patches centred on it are mostly anatomy
    assert frac(biased) > 0.6 and frac(uniform) < 0.4


def test_epoch_sampler_yields_epoch_keys():
    sampler = EpochSampler(5, epoch=2)
    assert list(sampler) == [(2, i) for i in range(5)]
    sampler.set_epoch(3)
    assert list(sampler)[0] == (3, 0) and len(sampler) == 5


def test_slice_dataset_fixes_the_degradation_per_slice_and_batches_by_shape():
    deg = BicubicDegradation(noise_std=0.05)
    segs = prepared(n=3) + [PreparedSegment("other", np.arange(3), torch.rand(3, 32, 48))]
    ds = SliceDataset(segs, deg, "lr", seed=7)
    first, again = ds[1], ds[1]
    assert torch.equal(first["lr"], again["lr"]) and first["subject"] == "subj" and first["slice"] == 11
    assert SliceDataset(segs, deg, "lr", seed=8)[1]["lr"].ne(first["lr"]).any()
    batches = list(ShapeBatchSampler(ds, batch_size=2))
    assert batches == [[0, 1], [2], [3, 4], [5]]


def test_unpaired_patches_come_from_another_subject():
    from lfmri.degrade.degradations import KSpaceZeroFillDegradation

    segments = [
        PreparedSegment(name, torch.arange(3).numpy(), torch.full((3, 32, 32), value))
        for name, value in (("a", 0.2), ("b", 0.8))
    ]
    degradation = KSpaceZeroFillDegradation(scale=2, hr_size=32)
    paired = PatchDataset(segments, degradation, 16, "upsampled", seed=0, foreground_prob=0.0)
    unpaired = PatchDataset(segments, degradation, 16, "upsampled", seed=0, foreground_prob=0.0, unpaired=True)
    for i in range(8):
        p, u = paired[(0, i)], unpaired[(0, i)]
        assert torch.equal(p["lr_up"], u["lr_up"]) and u["hr"].shape == p["hr"].shape
        lr_subject, hr_subject = round(float(u["lr_up"].mean()), 1), round(float(u["hr"].mean()), 1)
        assert {lr_subject, hr_subject} == {0.2, 0.8}


def test_samplers_split_work_over_ranks_without_repeats(monkeypatch):
    from lfmri.data import samplers
    from lfmri.data.datasets import EpochSampler, PreparedSegment, ShapeBatchSampler, SliceDataset

    segments = [PreparedSegment("a", torch.arange(7).numpy(), torch.zeros(7, 8, 8)),
                PreparedSegment("b", torch.arange(5).numpy(), torch.zeros(5, 6, 6))]
    dataset = SliceDataset(segments, degradation=None, input_mode="lr", seed=0)
    seen, keys = [], []
    for rank in range(3):
        monkeypatch.setattr(samplers, "_rank_and_world", lambda rank=rank: (rank, 3))
        seen += [i for batch in ShapeBatchSampler(dataset, 2) for i in batch]
        sampler = EpochSampler(10, epoch=4)
        keys += list(sampler)
        assert len(sampler) == len(list(sampler))
    assert sorted(seen) == list(range(12))
    assert sorted(keys) == [(4, i) for i in range(10)]


def with_context(segments, context):
    """The segments as a multi-slice datamodule prepares them: every slice is also a neighbour."""
    return [PreparedSegment(s.subject, s.slice_indices, s.hr, context=context, stack=s.hr, stack_start=int(s.slice_indices[0]))
            for s in segments]


def test_two_dimensional_samples_are_the_plain_degraded_slice():
    # context_slices=0 is the behaviour from before multi-slice input: the sample is degraded_sample
    # of the drawn slice with the patch's own generator, and carries no neighbour views
    from lfmri.data.datasets import degraded_sample, derive_seed, slice_generator

    deg = KSpaceDegradation(noise_std=(0.01, 0.05), hr_size=64)
    segments = prepared()
    patches = PatchDataset(segments, deg, patch_size=64, input_mode="lr", seed=3)
    gen = torch.Generator().manual_seed(derive_seed("patch", 3, 0, 2))
    index = int(torch.randint(len(patches.hr), (1,), generator=gen))
    expected = degraded_sample(patches.hr[index][None], deg, gen, "lr")
    got = patches[(0, 2)]
    assert set(got) == {"hr", "lr"} and torch.equal(got["hr"], expected["hr"]) and torch.equal(got["lr"], expected["lr"])
    whole = SliceDataset(segments, deg, "lr", seed=3)[4]
    reference = degraded_sample(segments[0].hr[4][None], deg, slice_generator(3, "subj", 14), "lr")
    assert "lr_context" not in whole and all(torch.equal(whole[k], reference[k]) for k in reference)


@pytest.mark.parametrize("mode", ["lr", "upsampled"])
def test_evaluation_neighbours_are_the_volume_s_own_degraded_slices(mode):
    deg = KSpaceDegradation(noise_std=(0.01, 0.05), hr_size=64)
    flat = SliceDataset(prepared(), deg, mode, seed=3)
    multi = SliceDataset(with_context(prepared(), 2), deg, mode, seed=3)
    key = "lr_up" if mode == "upsampled" else "lr"
    for i in range(6):
        sample = multi[i]
        assert sample["lr_context"].shape == (5, 32, 32)
        # the centre is the 2D sample; each neighbour is that slice's own 2D sample (own seed, own noise)
        assert torch.equal(sample["lr"], flat[i]["lr"]) and torch.equal(sample["hr"], flat[i]["hr"])
        rows = [min(max(i + d, 0), 5) for d in range(-2, 3)]
        expected = torch.cat([flat[r][key] for r in rows])
        assert torch.equal(sample[f"{key}_context" if mode == "lr" else "lr_up_context"], expected)
    # noise is independent between neighbours: two slices of the same anatomy differ
    assert not torch.equal(multi[2]["lr_context"][1], multi[3]["lr_context"][1] * 0 + multi[2]["lr_context"][2])


def test_training_neighbours_share_the_augmentation_and_keep_their_own_noise():
    from lfmri.data.augment import SliceAugmentation

    deg = KSpaceDegradation(noise_std=0.03, hr_size=64)
    same = torch.zeros(5, 64, 64)
    same[:, 8:40, 16:56] = 0.6  # identical anatomy in every slice, off-centre so flips show
    segments = [PreparedSegment("subj", np.arange(5), same, context=1, stack=same, stack_start=0)]
    aug = SliceAugmentation(flips=True, rot90=True)
    patches = PatchDataset(segments, deg, patch_size=64, input_mode="lr", seed=0, augment=aug)
    for key in [(0, i) for i in range(8)]:
        s = patches[key]
        assert s["lr_context"].shape == (3, 32, 32) and torch.equal(s["lr_context"][1:2], s["lr"])
        for channel in s["lr_context"]:
            # every neighbour shows the same (augmented) anatomy as the centre, up to its noise
            assert torch.corrcoef(torch.stack([channel.flatten(), s["lr"][0].flatten()]))[0, 1] > 0.9
        assert not torch.equal(s["lr_context"][0], s["lr_context"][2])  # own noise per slice
    edge = patches.rows[0]  # slice 0: its lower neighbour is itself, the very same LR slice
    stack, rows, _ = edge[0].neighbours(edge[1])
    assert rows == [0, 0, 1] and len(stack) == 2
