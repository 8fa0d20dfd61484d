"""``lfmri.geometry.inputs``: the one input grammar (file, list, folder, glob)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


def test_a_glob_matching_nothing_is_named(tmp_path):
    from lfmri.geometry.inputs import expand_inputs
    from lfmri.geometry.nifti import NiftiError

    with pytest.raises(NiftiError, match="matches no files"):
        expand_inputs(f"{tmp_path}/*.nii.gz")
    (tmp_path / "a.nii.gz").write_bytes(b"")
    assert expand_inputs(str(tmp_path / "a.nii.gz")) == [tmp_path / "a.nii.gz"]  # a string is one entry
    assert expand_inputs([str(tmp_path), str(tmp_path / "a.nii.gz")]) == [tmp_path / "a.nii.gz"]
    shutil.rmtree(tmp_path)


def test_folder_inputs_name_broken_links_read_any_case_and_skip_temporaries_and_own_outputs(tmp_path, monkeypatch):
    import os

    import numpy as np

    from lfmri.files import temporary_name
    from lfmri.geometry.inputs import expand_inputs, load_input
    from lfmri.geometry.nifti import NiftiError, save_nifti
    from tests.helpers.volumes import write_phantom

    scans = tmp_path / "scans"
    write_phantom(scans / "a.nii.gz", shape=(8, 8, 4))
    write_phantom(scans / "UPPER.NII.GZ", shape=(8, 8, 4))
    os.symlink(scans / "gone.nii.gz", scans / "broken.nii.gz")
    os.symlink(scans / "loop.nii.gz", scans / "loop.nii.gz")
    (scans / "folder.nii.gz").mkdir()
    write_phantom(temporary_name(scans / "b_sr.nii.gz"), shape=(8, 8, 4))  # what a SIGKILL mid-write leaves
    save_nifti(scans / "a_sr.nii.gz", np.ones((8, 8, 4), np.float32), np.eye(4), description="sr lfmri 0.1.0 m x2 m.ckpt")
    found = expand_inputs(str(scans))
    assert [p.name for p in found] == ["UPPER.NII.GZ", "a.nii.gz", "broken.nii.gz", "folder.nii.gz", "loop.nii.gz"]
    assert load_input(scans / "UPPER.NII.GZ").data.shape == (8, 8, 4)
    for name, problem in [("broken", "broken symbolic link"), ("loop", "loops"), ("folder", "is a folder")]:
        with pytest.raises(NiftiError, match=problem):
            load_input(scans / f"{name}.nii.gz")
    # a folder named like a volume in a list is that entry's failure, not the run's
    assert expand_inputs([str(scans / "folder.nii.gz"), str(scans / "a.nii.gz")]) == [scans / "folder.nii.gz", scans / "a.nii.gz"]
    # one file under two spellings, or through a link, is one input
    os.symlink(scans / "a.nii.gz", tmp_path / "link.nii.gz")
    monkeypatch.chdir(scans)
    spellings = ["./a.nii.gz", "a.nii.gz", str(scans / "a.nii.gz"), "../scans/a.nii.gz", str(tmp_path / "link.nii.gz")]
    assert expand_inputs(spellings) == [Path("a.nii.gz")]


def test_every_reader_error_of_one_input_is_its_niftierror(tmp_path):
    import struct

    import nibabel as nib
    import numpy as np

    from lfmri.geometry.inputs import load_input
    from lfmri.geometry.nifti import NiftiError

    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), tmp_path / "code0.nii")
    header = bytearray((tmp_path / "code0.nii").read_bytes())
    struct.pack_into("<h", header, 70, 0)  # datatype code 0: nibabel raises HeaderDataError
    (tmp_path / "code0.nii").write_bytes(bytes(header))
    nib.save(nib.MGHImage(np.ones((4, 4, 4), np.float32), np.eye(4)), tmp_path / "cut.mgz")
    (tmp_path / "cut.mgz").write_bytes((tmp_path / "cut.mgz").read_bytes()[:30])
    for name in ("code0.nii", "cut.mgz"):
        with pytest.raises(NiftiError, match=name):
            load_input(tmp_path / name)


def test_a_folder_of_only_lfmri_outputs_says_so(tmp_path):
    import numpy as np

    from lfmri.geometry.inputs import expand_inputs
    from lfmri.geometry.nifti import NiftiError, save_nifti

    save_nifti(tmp_path / "a_sr.nii.gz", np.ones((8, 8, 4), np.float32), np.eye(4), description="sr lfmri 0.1.0 m x2 m.ckpt")
    with pytest.raises(NiftiError, match="holds only lfmri's own outputs"):
        expand_inputs(str(tmp_path))
