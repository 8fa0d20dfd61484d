"""``lfmri.geometry.nifti``: round trips keep orientation and world coordinates; bad files are refused by name."""

from __future__ import annotations

import gzip

import nibabel as nib
import numpy as np
import pytest

from lfmri.geometry import nifti as io
from lfmri.geometry.nifti import NiftiError, load_nifti, save_nifti, subject_name, voxel_sizes
from tests.helpers.bad_volumes import BAD, huge_header

OBLIQUE = np.array(
    [
        [0.0, 0.0, 2.5, -40.0],
        [-0.9 * np.cos(0.3), 0.9 * np.sin(0.3), 0.0, 30.0],
        [0.9 * np.sin(0.3), 0.9 * np.cos(0.3), 0.0, -12.0],
        [0.0, 0.0, 0.0, 1.0],
    ]
)


def world(affine, index):
    return (affine @ np.r_[index, 1.0])[:3]


def test_round_trip_keeps_data_orientation_and_world_coordinates(tmp_path):
    data = np.random.default_rng(0).random((6, 7, 5)).astype(np.float32) + 0.1
    nib.save(nib.Nifti1Image(data, OBLIQUE), tmp_path / "in.nii.gz")

    vol = load_nifti(tmp_path / "in.nii.gz")
    assert nib.aff2axcodes(vol.affine) == ("R", "A", "S")
    assert vol.axcodes == nib.aff2axcodes(OBLIQUE)
    assert vol.data.dtype == np.float32
    # every canonical voxel sits at the same world position as the original voxel with its value
    orig = nib.load(tmp_path / "in.nii.gz")
    inv = np.linalg.inv(orig.affine)
    for idx in [(0, 0, 0), (2, 3, 1), tuple(np.array(vol.data.shape) - 1)]:
        src = np.rint((inv @ np.r_[world(vol.affine, idx), 1])[:3]).astype(int)
        assert vol.data[idx] == pytest.approx(data[tuple(src)])

    save_nifti(tmp_path / "out.nii.gz", vol.data, vol.affine, vol.axcodes)
    back = nib.load(tmp_path / "out.nii.gz")
    assert nib.aff2axcodes(back.affine) == nib.aff2axcodes(OBLIQUE)
    np.testing.assert_allclose(back.affine, OBLIQUE, atol=1e-5)
    np.testing.assert_allclose(back.get_fdata(), data, atol=1e-6)
    np.testing.assert_allclose(back.header.get_zooms(), voxel_sizes(OBLIQUE), atol=1e-5)
    assert back.get_data_dtype() == np.float32


def test_scaled_uint8_is_read_with_its_scale_factors(tmp_path):
    img = nib.Nifti1Image(np.full((4, 4, 4), 10, dtype=np.uint8), np.eye(4))
    img.header.set_slope_inter(2.5, 1.0)
    nib.save(img, tmp_path / "u8.nii")
    assert load_nifti(tmp_path / "u8.nii").data.max() == pytest.approx(26.0)


def test_trailing_singleton_dimension_is_accepted(tmp_path):
    nib.save(nib.Nifti1Image(np.ones((3, 4, 5, 1), np.float32), np.eye(4)), tmp_path / "v.nii.gz")
    assert load_nifti(tmp_path / "v.nii.gz").data.shape == (3, 4, 5)


def _write_bad(tmp_path, kind):
    path = tmp_path / f"{kind}.nii.gz"
    good = nib.Nifti1Image(np.ones((8, 8, 8), np.float32), np.eye(4))
    if kind == "corrupt":
        path.write_bytes(b"\x1f\x8b" + b"garbage" * 50)
    elif kind == "truncated":
        nib.save(good, tmp_path / "full.nii.gz")
        raw = gzip.decompress((tmp_path / "full.nii.gz").read_bytes())
        path.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    elif kind == "not_nifti":
        path = tmp_path / "notes.txt"
        path.write_text("hello")
    elif kind == "text_named_nii":
        path = tmp_path / "text.nii"
        path.write_text("hello, not an image" * 30)
    elif kind == "4d":
        nib.save(nib.Nifti1Image(np.ones((4, 4, 4, 3), np.float32), np.eye(4)), path)
    elif kind == "2d":
        nib.save(nib.Nifti1Image(np.ones((4, 4), np.float32), np.eye(4)), path)
    elif kind == "zeros":
        nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), path)
    elif kind in ("nan", "inf"):
        data = np.ones((4, 4, 4), np.float32)
        data[1, 2, 3] = np.nan if kind == "nan" else np.inf
        nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    elif kind == "missing":
        pass
    return path


@pytest.mark.parametrize(
    "kind, message",
    [
        ("corrupt", "not a readable NIfTI"),
        ("truncated", "truncated or corrupt"),
        ("not_nifti", "not a NIfTI file"),
        ("text_named_nii", "not a readable NIfTI"),
        ("4d", "4D"),
        ("2d", "needs a 3D volume"),
        ("zeros", "all zeros"),
        ("nan", "NaN/Inf"),
        ("inf", "NaN/Inf"),
        ("missing", "does not exist"),
    ],
)
def test_bad_files_raise_one_clear_error_naming_the_file(tmp_path, kind, message):
    path = _write_bad(tmp_path, kind)
    with pytest.raises(NiftiError) as info:
        load_nifti(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_save_refuses_to_overwrite_unless_asked(tmp_path):
    path = tmp_path / "out.nii.gz"
    save_nifti(path, np.ones((2, 2, 2)), np.eye(4))
    with pytest.raises(FileExistsError, match="overwrite"):
        save_nifti(path, np.zeros((2, 2, 2)), np.eye(4))
    assert nib.load(path).get_fdata().max() == 1
    save_nifti(path, np.full((2, 2, 2), 3.0), np.eye(4), overwrite=True)
    assert nib.load(path).get_fdata().max() == 3
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]  # no temporary left behind


def test_subject_name_strips_nifti_extensions():
    assert subject_name("/a/b/sub-01_T1w.nii.gz") == "sub-01_T1w"
    assert subject_name("scan.nii") == "scan"


@pytest.mark.parametrize("kind", sorted(BAD))
def test_reader_refuses_with_the_file_and_the_reason(tmp_path, kind):
    make, reason = BAD[kind]
    suffix = ".nii" if kind == "huge" else ".nii.gz"
    path = make(tmp_path / f"{kind}{suffix}")
    with pytest.raises(NiftiError, match=reason) as err:
        load_nifti(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_header_larger_than_an_uncompressed_file_is_truncated_not_read(tmp_path, monkeypatch):
    path = huge_header(tmp_path / "short.nii")
    monkeypatch.setenv(io.MEMORY_ENV, "1000")  # within budget: the file itself is too short
    with pytest.raises(NiftiError, match="is truncated: its header needs"):
        load_nifti(path)


def test_file_index_names_a_canonical_slice_as_the_file_does(tmp_path):
    import nibabel as nib
    import numpy as np

    from lfmri.geometry.nifti import file_index, load_nifti

    data = np.zeros((5, 6, 7), dtype=np.float32)
    data[1, 4, 2] = 1.0  # a marker at file voxel (i, j, k) = (1, 4, 2)
    affine = np.array([[0, 0, -1.0, 0], [-1.0, 0, 0, 0], [0, 1.0, 0, 0], [0, 0, 0, 1]])  # file axes: P, S, L
    nib.save(nib.Nifti1Image(data, affine), tmp_path / "x.nii.gz")
    volume = load_nifti(tmp_path / "x.nii.gz")
    assert volume.axcodes == ("P", "S", "L")
    found = [int(n[0]) for n in np.nonzero(volume.data == 1.0)]  # canonical (x, y, z)
    for axis in range(3):
        file_axis, at = file_index(volume.axcodes, volume.data.shape, axis, found[axis])
        assert at == (1, 4, 2)[file_axis]
    assert [file_index(volume.axcodes, volume.data.shape, a, 0)[0] for a in range(3)] == [2, 0, 1]


def test_outputs_keep_the_input_space_code_and_qform_and_sform_never_disagree(tmp_path):
    """A sheared affine used to get a qform without the shear, both marked scanner space; an input
    without orientation codes got nibabel's guess written as scanner space."""
    import nibabel as nib
    import numpy as np

    from lfmri.geometry.nifti import load_nifti, save_nifti

    data = np.random.default_rng(0).random((6, 7, 5)).astype(np.float32) + 1
    sheared = np.array([[1.0, 0.3, 0, -3], [0, 1.2, 0, -4], [0, 0, 2.0, 5], [0, 0, 0, 1]])
    img = nib.Nifti1Image(data, sheared)
    img.set_sform(sheared, code=1)
    img.set_qform(None, code=0)
    nib.save(img, tmp_path / "sheared.nii.gz")
    volume = load_nifti(tmp_path / "sheared.nii.gz")
    assert volume.space_code == 1
    save_nifti(tmp_path / "out.nii.gz", volume.data, volume.affine, volume.axcodes, space_code=volume.space_code)
    header = nib.load(tmp_path / "out.nii.gz").header
    assert np.allclose(header.get_sform(), sheared) and int(header["sform_code"]) == 1
    assert int(header["qform_code"]) == 0  # a qform cannot hold the shear: unknown, not a different transform

    plain = nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))
    plain.set_sform(None, code=0)
    plain.set_qform(None, code=0)
    nib.save(plain, tmp_path / "nocodes.nii")
    volume = load_nifti(tmp_path / "nocodes.nii")
    assert volume.space_code == 0
    save_nifti(tmp_path / "out2.nii.gz", volume.data, volume.affine, volume.axcodes, space_code=volume.space_code)
    header = nib.load(tmp_path / "out2.nii.gz").header
    assert int(header["sform_code"]) == 0 and int(header["qform_code"]) == 0

    aligned = nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0]))  # nibabel's default: sform code 2 (aligned)
    nib.save(aligned, tmp_path / "aligned.nii.gz")
    volume = load_nifti(tmp_path / "aligned.nii.gz")
    save_nifti(tmp_path / "out3.nii.gz", volume.data, volume.affine, volume.axcodes, space_code=volume.space_code)
    header = nib.load(tmp_path / "out3.nii.gz").header
    assert int(header["sform_code"]) == int(header["qform_code"]) == 2
    assert np.allclose(header.get_qform(), header.get_sform())


def test_headers_that_cannot_be_true_are_refused_before_anything_is_read(tmp_path):
    """A 73-byte .nii.gz whose header claims 1200 x 1200 x 900 float32 (4.8 GiB: deflate holds at most
    1032:1), and a header without an sform whose stored voxel size is 0 (nibabel would read 1 mm)."""
    import gzip
    import io
    import time

    import nibabel as nib
    import numpy as np
    import pytest

    from lfmri.geometry.nifti import NiftiError, load_nifti

    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((1200, 1200, 900))
    block = io.BytesIO()
    header.write_to(block)
    (tmp_path / "bomb.nii.gz").write_bytes(gzip.compress(block.getvalue() + b"\0" * 1000))
    start = time.perf_counter()
    with pytest.raises(NiftiError, match=r"bomb.nii.gz: claims shape \(1200, 1200, 900\) .* more than a gzip file of \d+ bytes can hold"):
        load_nifti(tmp_path / "bomb.nii.gz")
    assert time.perf_counter() - start < 2
    data = np.random.default_rng(0).random((8, 8, 8), dtype=np.float32) + 1
    stored = nib.Nifti1Image(data, np.diag([2.0, 2.0, 3.0, 1.0])).header.copy()
    stored.set_sform(None, code=0)
    stored["pixdim"][3] = 0
    stored.set_data_offset(352)
    # the bytes as a careless writer leaves them (nibabel's own writer would correct the zero)
    (tmp_path / "flat.nii.gz").write_bytes(gzip.compress(stored.binaryblock + b"\0" * 4 + data.tobytes()))
    with pytest.raises(NiftiError, match=r"flat.nii.gz: stores voxel sizes \(pixdim\[1:4\]\) \[2.0, 2.0, 0.0\] and no sform"):
        load_nifti(tmp_path / "flat.nii.gz")


def test_a_qform_that_disagrees_with_the_sform_is_said_in_one_warning(tmp_path, caplog):
    import logging

    import nibabel as nib
    import numpy as np

    from lfmri.geometry.nifti import load_nifti

    img = nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 8), dtype=np.float32) + 1, np.diag([2.0, 2.0, 3.0, 1.0]))
    img.set_qform(np.diag([2.0, 2.0, 3.0, 1.0]) + np.array([[0, 0, 0, 5.0], [0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]), code=1)
    img.set_sform(np.diag([2.0, 2.0, 3.0, 1.0]), code=1)
    nib.save(img, tmp_path / "two.nii.gz")
    with caplog.at_level(logging.WARNING, logger="lfmri.geometry.nifti"):
        volume = load_nifti(tmp_path / "two.nii.gz")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "qform and sform place the voxels up to 5.00 mm apart" in lines[0]
    assert np.allclose(volume.affine[:3, 3], 0)  # the sform's placement


def test_a_glob_names_the_matches_it_skips(tmp_path, caplog):
    import logging
    import os

    import nibabel as nib
    import numpy as np

    from lfmri.geometry.nifti import glob_files

    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), tmp_path / "a.nii.gz")
    os.symlink(tmp_path / "gone.nii.gz", tmp_path / "b.nii.gz")
    os.mkfifo(tmp_path / "c.nii.gz")
    with caplog.at_level(logging.WARNING, logger="lfmri.geometry.nifti"):
        assert glob_files(tmp_path / "*.nii.gz") == [tmp_path / "a.nii.gz"]
        assert glob_files(tmp_path / "**" / "*.nii.gz") == [tmp_path / "a.nii.gz"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2 and all("skipped 2 match(es) that are not readable files" in line for line in lines)
    assert "b.nii.gz (is a broken symbolic link" in lines[0] and "c.nii.gz (is not a regular file)" in lines[0]
