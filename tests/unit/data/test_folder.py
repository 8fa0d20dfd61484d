"""``data=folder``: subject splits, errors that name the problem, workers, several globs, size checks, symlinks."""

from __future__ import annotations

import json

import pytest
import torch

from lfmri.data.folder import FolderDataModule
from lfmri.degrade.degradations import KSpaceDegradation
from tests.helpers.bad_volumes import SHAPE
from tests.helpers.volumes import write_phantom


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


def test_several_globs_and_an_explicit_subject_split(tmp_path):
    for site, seeds in (("siteA", (0, 1, 2)), ("siteB", (3, 4))):
        for s in seeds:
            write_phantom(tmp_path / site / f"{site}-{s}.nii.gz", seed=s)
    dm = FolderDataModule(
        pattern=[str(tmp_path / "siteA" / "*.nii.gz"), str(tmp_path / "siteB" / "*.nii.gz")],
        subjects={"val": ["siteA-2"], "test": ["siteB-3", "siteB-4"]},
        degradation=KSpaceDegradation(hr_size=32), patch_size=16, patches_per_epoch=8, batch_size=4,
    )
    dm.setup("fit")
    subjects = {stage: [s.subject for s in segs] for stage, segs in dm.split.items()}
    assert subjects == {"train": ["siteA-0", "siteA-1"], "val": ["siteA-2"], "test": ["siteB-3", "siteB-4"]}
    bad = FolderDataModule(pattern=str(tmp_path / "siteA" / "*.nii.gz"), subjects={"test": ["nobody"]},
                           degradation=KSpaceDegradation(hr_size=32))
    with pytest.raises(ValueError, match="nobody"):
        bad.setup("fit")
    with pytest.raises(FileNotFoundError, match="siteC"):
        FolderDataModule(pattern=[str(tmp_path / "siteA" / "*.nii.gz"), str(tmp_path / "siteC" / "*")],
                         degradation=KSpaceDegradation(hr_size=32)).setup("fit")


@pytest.mark.parametrize(("option", "value", "message"), [
    ("patches_per_epoch", 3, "data.patches_per_epoch=3 is below data.batch_size=4"),
    ("batch_size", 0, "data.batch_size=0"), ("patch_size", -16, "data.patch_size=-16"),
])
def test_data_sizes_are_checked_when_the_data_module_is_built(tmp_path, option, value, message):
    from lfmri.data.folder import FolderDataModule
    from lfmri.degrade.degradations import BicubicDegradation

    settings = {"pattern": str(tmp_path / "*.nii.gz"), "batch_size": 4, "patch_size": 16, "patches_per_epoch": 8, option: value}
    with pytest.raises(ValueError, match=message):
        FolderDataModule(degradation=BicubicDegradation(), input_mode="lr", **settings)


def test_a_recursive_pattern_through_a_symlink_loop_finds_each_file_once(tmp_path):
    from lfmri.data.folder import find_volumes

    write_phantom(tmp_path / "data" / "a.nii.gz", shape=SHAPE)
    write_phantom(tmp_path / "data" / "deep" / "b.nii.gz", shape=SHAPE)
    (tmp_path / "data" / "deep" / "loop").symlink_to(tmp_path / "data")
    (tmp_path / "data" / "deep" / "loop2").symlink_to(tmp_path / "data" / "deep")
    linked = tmp_path / "elsewhere"
    write_phantom(linked / "c.nii.gz", shape=SHAPE)
    (tmp_path / "data" / "link").symlink_to(linked)  # a symlinked folder is still searched
    found = find_volumes(str(tmp_path / "data" / "**" / "*.nii.gz"))
    assert sorted(p.name for p in found) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]


def _module(pattern, **kwargs) -> FolderDataModule:
    settings = dict(fractions=(0.5, 0.25, 0.25), degradation=KSpaceDegradation(hr_size=32), patch_size=16, patches_per_epoch=8,
                    batch_size=4)
    return FolderDataModule(pattern=pattern, **{**settings, **kwargs})


@pytest.mark.parametrize(("subjects", "empty"), [({"val": [], "test": ["sub-03"]}, "val split has"),
                                                 ({"val": ["sub-02"], "test": []}, "test split has")])
def test_an_empty_validation_or_test_split_is_refused_at_setup(phantom_dir, subjects, empty):
    """Found only when the test ran, after the whole training; now before the first step."""
    from lfmri.errors import DataError

    with pytest.raises(DataError, match=empty) as info:
        _module(str(phantom_dir / "*.nii.gz"), subjects=subjects).setup("fit")
    assert "data.fractions or data.subjects" in str(info.value)


def test_a_constant_volume_is_one_line_naming_it(tmp_path):
    import nibabel as nib
    import numpy as np

    from lfmri.errors import DataError

    for i in range(3):
        write_phantom(tmp_path / f"s{i}.nii.gz", seed=i)
    nib.save(nib.Nifti1Image(np.full((40, 48, 24), 7.0, np.float32), np.eye(4)), str(tmp_path / "flat.nii.gz"))
    with pytest.raises(DataError, match="flat.nii.gz: .*constant"):
        _module(str(tmp_path / "*.nii.gz")).setup("fit")


def test_lfmris_own_outputs_are_skipped_also_under_double_star_and_the_list_form_reads_both(tmp_path):
    from lfmri.data.folder import find_volumes
    from lfmri.errors import MissingFileError
    from lfmri.geometry.nifti import load_nifti, save_nifti

    a = write_phantom(tmp_path / "a" / "s1.nii.gz")
    b = write_phantom(tmp_path / "b" / "deep" / "s2.nii.gz", seed=1)
    volume = load_nifti(a)
    # what predict writes: its header's descrip says "sr lfmri <version> ..."
    save_nifti(tmp_path / "b" / "deep" / "s2_sr.nii.gz", volume.data, volume.affine, description="sr lfmri 1.0 tiny x2 a.ckpt")
    assert find_volumes(str(tmp_path / "**" / "*.nii.gz")) == [a, b]
    assert find_volumes([str(tmp_path / "a" / "*.nii.gz"), str(tmp_path / "b" / "**" / "*.nii.gz")]) == [a, b]
    with pytest.raises(MissingFileError, match="matches only outputs of lfmri"):
        find_volumes(str(tmp_path / "b" / "deep" / "*_sr.nii.gz"))
