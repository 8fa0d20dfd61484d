"""data=paired_lowfield on generated collections in both layouts: geometry, validation, split, mixing."""

from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from lfmri.data.pair_validation import PairValidationError
from lfmri.degrade.degradations import BicubicDegradation
from lfmri.degrade.lowfield import LowFieldDegradation
from lfmri.errors import ConfigError
from lfmri.geometry.nifti import voxel_sizes
from tests.helpers.bad_volumes import complex_valued, degenerate
from tests.helpers.paired import (
    HF_SHAPE,
    HF_SPACING,
    LF_SHAPE,
    LF_SPACING,
    add_slice_faults,
    add_volume_faults,
    datamodule,
    write_slice_layout,
    write_volume_layout,
)
from tests.helpers.volumes import write_phantom


@pytest.mark.parametrize("layout", ["volumes", "slices"])
def test_both_layouts_give_the_same_pairs_on_the_target_grids(tmp_path, layout):
    writer = write_volume_layout if layout == "volumes" else write_slice_layout
    dm = datamodule(writer(tmp_path / layout), layout, input_mode="upsampled", lf_shape=(10, 12, 5), lf_spacing=(2.0, 2.0, 6.0))
    dm.setup("fit")
    assert sorted(dm.pairs) == ["s01", "s02", "s03", "s04"]
    pair = dm.pairs["s01"]
    # HR: target shape and voxel size (in-plane trimmed to a multiple of x2: 22 x 30 already is)
    assert pair.hr.shape == HF_SHAPE and np.allclose(voxel_sizes(pair.hr_affine), HF_SPACING)
    # LR for lr-input models: HR slice count, in-plane HR / 2 with twice the voxel size
    assert pair.lr.shape == (19, 11, 15) and np.allclose(voxel_sizes(pair.lr_affine), (1.0, 2.0, 2.0))
    assert pair.lr_up.shape == HF_SHAPE
    assert 0 <= pair.lr.min() and pair.lr.max() <= 1 and 0 <= pair.hr.min() and pair.hr.max() <= 1
    # the low-field head sits where the high-field head is: centres of mass agree within a voxel
    centre = lambda d: (np.indices(d.shape).reshape(3, -1) * d.reshape(-1)).sum(1) / d.sum()  # noqa: E731
    assert np.allclose(centre(pair.lr_up), centre(pair.hr), atol=1.0)
    # sagittal slices by default: (LR, HR) pairs with the model's shapes
    batch = next(iter(dm.val_dataloader()))
    assert batch["hr"].shape[-2:] == (22, 30) and batch["lr"].shape[-2:] == (11, 15) and batch["lr_up"].shape[-2:] == (22, 30)


def test_volume_layout_is_identical_to_slice_layout(tmp_path):
    a, b = datamodule(write_volume_layout(tmp_path / "v")), datamodule(write_slice_layout(tmp_path / "s"), "slices")
    a.setup("fit"), b.setup("fit")
    for name in a.pairs:
        assert np.allclose(a.pairs[name].hr, b.pairs[name].hr, atol=1e-5)
        assert np.allclose(a.pairs[name].lr, b.pairs[name].lr, atol=1e-5)


def test_the_split_never_puts_one_subject_in_two_sets(tmp_path):
    dm = datamodule(write_volume_layout(tmp_path / "v", [f"s{i:02d}" for i in range(6)]), split_file=str(tmp_path / "split.json"),
                    subjects={"val": ["s01", "s02"], "test": ["s05"]})
    dm.setup("fit")
    groups = {stage: {seg.subject for seg in segs} for stage, segs in dm.split.items()}
    assert groups == {"val": {"s01", "s02"}, "test": {"s05"}, "train": {"s00", "s03", "s04"}}
    seen = {stage: {s for batch in (dm.val_dataloader() if stage == "val" else dm.test_dataloader()) for s in batch["subject"]}
            for stage in ("val", "test")}
    assert seen == {"val": {"s01", "s02"}, "test": {"s05"}}
    assert {seg.subject for seg in dm.prepared["train"]} == groups["train"]
    dm2 = datamodule(tmp_path / "v")
    dm2.setup("fit")
    fractions = [{seg.subject for seg in dm2.split[stage]} for stage in ("train", "val", "test")]
    assert sum(map(len, fractions)) == 6 and len(set.union(*fractions)) == 6
    with pytest.raises(ValueError, match="unknown subjects"):
        datamodule(tmp_path / "v", subjects={"test": ["nobody"]}).setup("fit")


def test_volume_faults_are_all_reported_then_dropped_when_not_strict(tmp_path, caplog):
    root = write_volume_layout(tmp_path / "v")
    faults = add_volume_faults(root)
    with pytest.raises(PairValidationError) as info:
        datamodule(root).setup("fit")
    assert "\n" not in str(info.value) and f"the full report: {info.value.report_path}" in str(info.value)
    message = info.value.report_path.read_text()  # one line on the console, every problem in the file
    for subject, fault in faults.items():
        line = next(line for line in message.splitlines() if f"subject {subject!r}" in line)
        assert fault in line and ".nii.gz" in line, line
    assert "broken.nii.gz" in message and "data.strict=false" in str(info.value)
    with caplog.at_level(logging.WARNING):
        dm = datamodule(root, strict=False, report_file=str(tmp_path / "report.txt"))
        dm.setup("fit")
    assert sorted(dm.pairs) == ["s01", "s02", "s03", "s04"]
    assert "dropping subjects ['broken', 'nan_sub', 'only_lf']" in caplog.text
    assert "nan_sub" in (tmp_path / "report.txt").read_text()


def test_slice_faults_are_all_reported_with_their_files(tmp_path):
    root = write_slice_layout(tmp_path / "s")
    faults = add_slice_faults(root)
    with pytest.raises(PairValidationError) as info:
        datamodule(root, "slices").setup("fit")
    message = info.value.report_path.read_text()
    for subject, fault in faults.items():
        lines = [line for line in message.splitlines() if f"subject {subject!r}" in line]
        assert any(fault in line for line in lines), (subject, fault, message)
    assert "nan_2.nii.gz" in message and "odd_3.nii.gz" in message and "dup_05.nii.gz" in message
    dm = datamodule(root, "slices", strict=False)
    dm.setup("fit")
    assert sorted(dm.pairs) == ["s01", "s02", "s03", "s04"]


def test_mixed_training_draws_synthetic_patches_at_the_configured_ratio(tmp_path):
    root = write_volume_layout(tmp_path / "v")
    for i in range(2):
        write_phantom(tmp_path / "ext" / f"ixi-{i}.nii.gz", shape=HF_SHAPE, seed=10 + i, affine=np.diag([*HF_SPACING, 1.0]))
    lowfield = LowFieldDegradation(scale=2, lf_shape=LF_SHAPE, lf_spacing=LF_SPACING)
    dm = datamodule(root, degradation=lowfield, synthetic_pattern=str(tmp_path / "ext" / "*.nii.gz"), synthetic_ratio=0.3,
                    patches_per_epoch=1000, batch_size=50)
    dm.setup("fit")
    assert {seg.subject for seg in dm.synthetic} == {"sim-ixi-0", "sim-ixi-1"}
    assert all(not seg.subject.startswith("sim-") for segs in dm.prepared.values() for seg in segs)  # train only
    flags = torch.cat([batch["synthetic"] for batch in dm.train_dataloader()])
    assert len(flags) == 1000 and abs(flags.float().mean().item() - 0.3) < 0.05
    with pytest.raises(ValueError, match="degradation=lowfield"):
        datamodule(root, synthetic_pattern=str(tmp_path / "ext" / "*.nii.gz"))


def test_simulated_pairs_alone_form_the_collection(tmp_path):
    for i in range(3):
        write_phantom(tmp_path / "ext" / f"ixi-{i}.nii.gz", shape=HF_SHAPE, seed=i, affine=np.diag([*HF_SPACING, 1.0]))
    lowfield = LowFieldDegradation(scale=2, lf_shape=LF_SHAPE, lf_spacing=LF_SPACING)
    dm = datamodule(None, degradation=lowfield, synthetic_pattern=str(tmp_path / "ext" / "*.nii.gz"), fractions=(1, 1, 1))
    dm.setup("fit")
    assert {seg.subject for segs in dm.split.values() for seg in segs} == {"sim-ixi-0", "sim-ixi-1", "sim-ixi-2"}
    assert next(iter(dm.train_dataloader()))["synthetic"].all()


def test_extra_simulation_draws_reach_only_training_subjects(tmp_path):
    for i in range(4):
        write_phantom(tmp_path / "ext" / f"ixi-{i}.nii.gz", shape=HF_SHAPE, seed=i, affine=np.diag([*HF_SPACING, 1.0]))
    lowfield = LowFieldDegradation(scale=2, lf_shape=LF_SHAPE, lf_spacing=LF_SPACING)
    subjects = {"val": ["sim-ixi-2"], "test": ["sim-ixi-3"]}

    def make(draws):
        dm = datamodule(None, degradation=lowfield, synthetic_pattern=str(tmp_path / "ext" / "*.nii.gz"), subjects=subjects,
                        synthetic_draws=draws)
        dm.setup("fit")
        return dm

    one, three = make(1), make(3)
    train = [seg.subject for seg in three.prepared["train"]]
    assert sorted(train) == ["sim-ixi-0"] * 3 + ["sim-ixi-1"] * 3
    assert [seg.subject for seg in three.prepared["val"]] == ["sim-ixi-2"] and len(three.prepared["test"]) == 1
    # draw 0 (what validation and test score against) does not depend on the number of draws
    for stage in ("val", "test"):
        assert torch.equal(one.prepared[stage][0].lr, three.prepared[stage][0].lr)
    draws = [seg for seg in three.prepared["train"] if seg.subject == "sim-ixi-0"]
    assert torch.equal(draws[0].lr, one.prepared["train"][0].lr)
    # the same anatomy under a different simulation: same HR, different LR
    assert torch.equal(draws[0].hr, draws[1].hr) and not torch.allclose(draws[0].lr, draws[1].lr, atol=1e-3)
    assert not torch.allclose(draws[1].lr, draws[2].lr, atol=1e-3)
    # seeded: a second datamodule (a resumed run) draws the same simulations
    again = make(3)
    assert all(torch.equal(a.lr, b.lr) for a, b in zip(three.prepared["train"], again.prepared["train"]))
    with pytest.raises(ConfigError, match="data.synthetic_draws"):
        datamodule(None, degradation=lowfield, synthetic_pattern=str(tmp_path / "ext" / "*.nii.gz"), synthetic_draws=0)


def test_extra_draws_of_mixed_training_join_the_synthetic_pool(tmp_path):
    root = write_volume_layout(tmp_path / "v")
    for i in range(2):
        write_phantom(tmp_path / "ext" / f"ixi-{i}.nii.gz", shape=HF_SHAPE, seed=10 + i, affine=np.diag([*HF_SPACING, 1.0]))
    lowfield = LowFieldDegradation(scale=2, lf_shape=LF_SHAPE, lf_spacing=LF_SPACING)
    dm = datamodule(root, degradation=lowfield, synthetic_pattern=str(tmp_path / "ext" / "*.nii.gz"), synthetic_draws=2)
    dm.setup("fit")
    assert sorted(seg.subject for seg in dm.synthetic) == ["sim-ixi-0", "sim-ixi-0", "sim-ixi-1", "sim-ixi-1"]
    assert all(not seg.subject.startswith("sim-") for segs in dm.prepared.values() for seg in segs)


def test_lr_grid_follows_the_degradation_grid(tmp_path):
    root = write_volume_layout(tmp_path / "v")
    area, kspace = datamodule(root, degradation=BicubicDegradation()), datamodule(root)
    area.setup("fit"), kspace.setup("fit")
    # area grid: LR pixel j at HR 2j + 0.5; k-space crop of 22 -> 11 (30 -> 15): LR pixel j at HR 2j + 1
    shift = area.pairs["s01"].lr_affine[:3, 3] - kspace.pairs["s01"].lr_affine[:3, 3]
    assert np.allclose(shift, [0.0, -0.5, -0.5])
    # and the LR values follow their grid: the two differ, each matching its own baseline geometry
    assert not np.allclose(area.pairs["s01"].lr, kspace.pairs["s01"].lr)


@pytest.mark.parametrize("layout", ["volumes", "slices"])
def test_the_paired_report_names_the_same_errors_and_strict_false_drops_them(tmp_path, layout):
    from lfmri.data.pair_validation import PairValidationError
    from tests.helpers.paired import datamodule, write_slice_layout, write_volume_layout

    subjects = ("s01", "s02", "s03", "s04", "s05")
    root = (write_volume_layout if layout == "volumes" else write_slice_layout)(tmp_path / "pairs", subjects)
    if layout == "volumes":
        degenerate(root / "lf" / "s01.nii.gz")
        complex_valued(root / "hf" / "s02.nii.gz")
    else:
        degenerate(root / "lf" / "s01_0.nii.gz")
        complex_valued(root / "hf" / "s02_1.nii.gz")
    with pytest.raises(PairValidationError) as info:
        datamodule(root, layout=layout).setup("fit")
    message = info.value.report_path.read_text()
    assert "'s01'" in message and "degenerate affine" in message and "'s02'" in message and "complex voxels" in message
    dm = datamodule(root, layout=layout, strict=False)
    dm.setup("fit")
    assert sorted(dm.pairs) == ["s03", "s04", "s05"]


def test_pairs_that_are_not_one_head_are_reported(tmp_path):
    """A high field 300 mm away from its low field, or another head, trained without a word."""
    import nibabel as nib
    import numpy as np

    from tests.helpers.paired import HF_SHAPE, HF_SPACING, _save, pair

    root = write_volume_layout(tmp_path / "v", subjects=("s01", "s02", "s03", "s04", "s05", "s06"))
    hf = nib.load(str(root / "hf" / "s01.nii.gz"))
    far = hf.affine.copy()
    far[0, 3] += 300.0
    nib.save(nib.Nifti1Image(np.asarray(hf.dataobj), far), str(root / "hf" / "s01.nii.gz"))
    other = np.zeros(HF_SHAPE, np.float32)
    other[:13, :15, :20] = pair(5)[1][3:16, 3:18, 5:25]  # a smaller head in a corner of the field of view
    _save(root / "hf" / "s02.nii.gz", other, HF_SPACING)
    with pytest.raises(PairValidationError) as info:
        datamodule(root).setup("fit")
    report = info.value.report_path.read_text()
    assert "subject 's01': the low-field and high-field scans share 0% of their field of view" in report and "300 mm" in report
    assert "subject 's02': the low-field and high-field volumes do not look alike" in report
    assert "2 subject(s)" in str(info.value)
    dm = datamodule(root, strict=False)
    dm.setup("fit")
    assert sorted(dm.pairs) == ["s03", "s04", "s05", "s06"]


@pytest.mark.parametrize("input_mode", ["lr", "upsampled"])
def test_multi_slice_pairs_read_their_neighbours_a_thick_slice_apart(tmp_path, input_mode):
    """Axial slices (the 5 mm axis of the low-field grid) with one neighbour on each side: the
    neighbours are the low-field volume 5 mm below and above, i.e. 5 slices of the 1 mm grid away,
    not the grid's next slice (interpolated from the same thick slices); every loader and the
    evaluation samples carry them."""
    root = write_volume_layout(tmp_path / "v")
    dm = datamodule(root, input_mode=input_mode, slice_axis=2, context_slices=1, subjects={"val": ["s02"], "test": ["s03"]})
    dm.setup("fit")
    pair = dm.pairs["s01"]
    key = "lr_up_context" if input_mode == "upsampled" else "lr_context"
    centre = pair.lr_up if input_mode == "upsampled" else pair.lr
    stack = getattr(pair, key)
    assert stack.shape == (3, *centre.shape) and np.array_equal(stack[1], centre)
    assert np.allclose(stack[2][..., :-5], centre[..., 5:], atol=1e-5) and np.allclose(stack[0][..., 5:], centre[..., :-5], atol=1e-5)
    assert not np.allclose(stack[2][..., :-1], centre[..., 1:], atol=1e-3)
    train = next(iter(dm.train_dataloader()))
    val = next(iter(dm.val_dataloader()))
    for batch, size in ((train, 8), (val, None)):
        lr_key_size = (size // 2 if size else None) if key == "lr_context" else size
        assert batch[key].shape[1] == 3 and torch.equal(batch[key][:, 1:2], batch["lr_up" if input_mode == "upsampled" else "lr"])
        if lr_key_size:
            assert batch[key].shape[-1] == lr_key_size
    sample, _ = dm.eval_pair("s03")
    first = sample(10)
    assert torch.equal(first[key][1:2], first["lr_up" if input_mode == "upsampled" else "lr"])
