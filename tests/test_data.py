import json

import numpy as np
import pytest
import torch

from lfmri.data.datasets import EpochSampler, PatchDataset, PreparedSegment, ShapeBatchSampler, SliceDataset
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation
from lfmri.data.folder import FolderDataModule
from lfmri.data.mni152 import MNI152DataModule
from lfmri.data.normalize import percentile_intensity
from lfmri.geometry.slicing import foreground_fraction, put_slices, take_slices
from lfmri.data.splits import Segment, slab_split, split_from_dict, split_to_dict, subject_split
from tests.conftest import write_phantom


def test_percentile_normalisation_maps_to_unit_range_and_restores():
    data = np.arange(1000, dtype=np.float32).reshape(10, 10, 10)
    intensity = percentile_intensity(data, (1, 99), "vol")
    norm = intensity.apply(data)
    assert norm.min() == 0 and norm.max() == 1
    assert (norm == 1).sum() == pytest.approx(10, abs=1)
    inside = (norm > 0) & (norm < 1)
    np.testing.assert_allclose(intensity.restore(norm)[inside], data[inside], rtol=1e-5)
    with pytest.raises(ValueError, match="vol: intensity percentiles"):
        percentile_intensity(np.ones((3, 3, 3)), (1, 99), "vol")
    with pytest.raises(ValueError, match="percentiles"):
        percentile_intensity(data, (99, 1), "vol")


def test_slicing_round_trip_and_selection():
    data = np.zeros((4, 5, 6), np.float32)
    data[:, :, 2:4] = 1.0
    data[0, 0, 5] = 1.0  # a speck: below the minimum fraction
    for axis in range(3):
        assert np.array_equal(put_slices(take_slices(data, axis), axis), data)
    assert take_slices(data, 2).shape == (6, 4, 5)
    # the rule SliceDataModule.selected_slices applies (min_foreground_fraction)
    assert list(np.flatnonzero(foreground_fraction(data, 2, threshold=0.5) >= 0.1)) == [2, 3]


def test_subject_split_is_disjoint_seeded_and_complete():
    lengths = {f"s{i}": 10 + i for i in range(10)}
    split = subject_split(lengths, (0.8, 0.1, 0.1), seed=3)
    names = {stage: [seg.subject for seg in segs] for stage, segs in split.items()}
    assert len(names["val"]) == 1 and len(names["test"]) == 1 and len(names["train"]) == 8
    assert set(names["train"]).isdisjoint(names["val"]) and set(names["train"]).isdisjoint(names["test"])
    assert sorted(sum(names.values(), [])) == sorted(lengths)
    assert all(seg.stop == lengths[seg.subject] and seg.start == 0 for segs in split.values() for seg in segs)
    assert subject_split(lengths, (0.8, 0.1, 0.1), seed=3) == split
    assert subject_split(lengths, (0.8, 0.1, 0.1), seed=4) != split
    assert split_from_dict(json.loads(json.dumps(split_to_dict(split)))) == split
    with pytest.raises(ValueError, match="at least 3 volumes"):
        subject_split({"a": 1, "b": 1}, (0.8, 0.1, 0.1), 0)


def test_slab_split_keeps_gaps_between_sets():
    split = slab_split("mni", np.arange(10, 110), {"val": (0.2, 0.3), "test": (0.6, 0.8)}, gap=3)
    assert split["val"] == [Segment("mni", 30, 40)] and split["test"] == [Segment("mni", 70, 90)]
    train = {i for seg in split["train"] for i in range(seg.start, seg.stop)}
    held = set(range(27, 43)) | set(range(67, 93))
    assert train.isdisjoint(held)
    assert train == set(range(10, 110)) - held
    with pytest.raises(ValueError, match="overlap"):
        slab_split("mni", np.arange(100), {"val": (0.2, 0.5), "test": (0.4, 0.8)}, gap=0)


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


def test_folder_datamodule_splits_by_subject_and_writes_the_split(phantom_dir, tmp_path):
    split_file = tmp_path / "run" / "split.json"
    dm = FolderDataModule(
        pattern=str(phantom_dir / "*.nii.gz"),
        fractions=(0.5, 0.25, 0.25),
        degradation=KSpaceDegradation(hr_size=32),
        patch_size=16,
        patches_per_epoch=8,
        batch_size=4,
        split_file=str(split_file),
    )
    dm.trainer = type("T", (), {"is_global_zero": True, "current_epoch": 0})()
    dm.setup("fit")
    written = json.loads(split_file.read_text())
    subjects = {stage: {s["subject"] for s in segs} for stage, segs in written.items()}
    assert sum(len(s) for s in subjects.values()) == 4
    assert subjects["train"].isdisjoint(subjects["test"]) and subjects["val"].isdisjoint(subjects["test"])
    batch = next(iter(dm.train_dataloader()))
    assert batch["hr"].shape == (4, 1, 16, 16) and batch["lr"].shape == (4, 1, 8, 8)
    val = next(iter(dm.val_dataloader()))
    assert val["hr"].shape[-2:] == (32, 32) and val["lr_complex"].is_complex()
    # the non-canonical subject was reoriented: every volume has the same canonical shape
    assert {nv.volume.data.shape for nv in dm.volumes.values()} == {(40, 48, 24)}


def test_folder_datamodule_errors_name_the_problem(tmp_path):
    deg = KSpaceDegradation(hr_size=32)
    with pytest.raises(FileNotFoundError, match="matches no files"):
        FolderDataModule(pattern=str(tmp_path / "*.nii.gz"), degradation=deg).setup()
    write_phantom(tmp_path / "a" / "x.nii.gz")
    write_phantom(tmp_path / "b" / "x.nii.gz")
    write_phantom(tmp_path / "b" / "y.nii.gz")
    with pytest.raises(ValueError, match="two volumes are named 'x'"):
        FolderDataModule(pattern=str(tmp_path / "*" / "*.nii.gz"), degradation=deg).setup()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "bad.nii.gz").write_bytes(b"nope")
    with pytest.raises(ValueError, match="bad.nii.gz"):
        FolderDataModule(pattern=str(tmp_path / "c" / "*.nii.gz"), degradation=deg).setup()


def test_mni152_demo_split_has_disjoint_slabs():
    dm = MNI152DataModule(degradation=KSpaceDegradation(), patches_per_epoch=4, batch_size=4)
    dm.setup()
    ranges = {stage: [range(s.start, s.stop) for s in segs] for stage, segs in dm.split.items()}
    train = {i for r in ranges["train"] for i in r}
    for stage in ("val", "test"):
        held = set(ranges[stage][0])
        assert held and train.isdisjoint(range(min(held) - 3, max(held) + 4))
    assert all(len(p.hr) > 5 for segs in dm.prepared.values() for p in segs[:1])
    assert dm.prepared["val"][0].hr.shape[-2:] == (128, 128)


def test_training_batches_do_not_depend_on_the_number_of_workers(phantom_dir):
    def batches(workers):
        dm = FolderDataModule(
            pattern=str(phantom_dir / "*.nii.gz"),
            degradation=KSpaceDegradation(hr_size=32),
            patch_size=16,
            patches_per_epoch=12,
            batch_size=4,
            num_workers=workers,
            seed=5,
        )
        dm.setup("fit")
        return [b["lr"] for b in dm.train_dataloader()]

    single, multi = batches(0), batches(2)
    assert len(single) == 3
    assert all(torch.equal(a, b) for a, b in zip(single, multi))
