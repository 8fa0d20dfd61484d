"""``lfmri.geometry.inputs``: the one input grammar (file, list, folder, glob)."""

from __future__ import annotations

import shutil

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
