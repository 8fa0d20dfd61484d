"""DICOM series as inputs: geometry against nibabel, intensity scaling, file order, and clear refusals.

Series are generated with pydicom from a phantom (tests/helpers/dicom.py) with a known RAS affine;
the same array and affine written as NIfTI is what the DICOM series must read as.
"""

from __future__ import annotations

import random
import warnings

import nibabel as nib
import numpy as np
import pydicom
import pytest

from lfmri.geometry.dicom import DicomSeries, dicom_series
from lfmri.geometry.inputs import expand_inputs, input_name, load_input
from lfmri.geometry.nifti import NiftiError, volume_from_image
from tests.helpers.dicom import LPS, write_dicom_series
from tests.helpers.volumes import phantom, write_phantom

with warnings.catch_warnings():  # nibabel calls its DICOM readers experimental; the test uses only their geometry
    warnings.simplefilter("ignore", UserWarning)
    from nibabel.nicom.dicomwrappers import wrapper_from_file

SHAPE = (20, 24, 8)  # rows, columns, slices
SLOPE, INTERCEPT = 0.5, -100.0


def scan_data(seed: int = 0) -> np.ndarray:
    """A phantom whose values the stored uint16 and the rescale reproduce exactly."""
    return np.round(phantom(SHAPE, seed) / SLOPE) * SLOPE


def rotation(ax: float, az: float) -> np.ndarray:
    a, z = np.radians(ax), np.radians(az)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(z), -np.sin(z), 0], [np.sin(z), np.cos(z), 0], [0, 0, 1]])
    return rz @ rx


def scan_affine(oblique: bool) -> np.ndarray:
    """RAS affine of an axial stack: rows run anterior to posterior, columns right to left (as scanners store it)."""
    axes = np.array([[0.0, -1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]).T * [0.9, 1.1, 3.0]  # columns: row, column, slice steps
    affine = np.eye(4)
    affine[:3, :3] = (rotation(20, 10) if oblique else np.eye(3)) @ axes
    affine[:3, 3] = [12.5, -30.25, -18.0]
    return affine


def as_nifti(data: np.ndarray, affine: np.ndarray):
    return volume_from_image(nib.Nifti1Image(data.astype(np.float32), affine), "reference")


@pytest.mark.parametrize("oblique", [False, True])
def test_a_series_reads_as_the_same_geometry_written_as_nifti(tmp_path, oblique):
    data, affine = scan_data(), scan_affine(oblique)
    files = write_dicom_series(tmp_path / "t1_axial", data, affine, SLOPE, INTERCEPT)
    (series,) = expand_inputs(str(tmp_path / "t1_axial"))
    assert isinstance(series, DicomSeries) and input_name(series) == "t1_axial"
    volume = load_input(series)
    reference = as_nifti(data, affine)
    assert volume.data.shape == reference.data.shape
    # in-plane the file's own voxel order; slices go along nibabel's DICOM normal, whichever order they were written in
    assert volume.axcodes[:2] == reference.axcodes[:2]
    np.testing.assert_allclose(volume.affine, reference.affine, atol=1e-5)  # DICOM keeps 10 significant digits
    np.testing.assert_allclose(volume.zooms, reference.zooms, atol=1e-6)
    np.testing.assert_array_equal(volume.data, reference.data)  # intensity scaling exact
    assert volume.name == "t1_axial" and volume.source == str(tmp_path / "t1_axial")
    # and every file's pixels sit where nibabel's DICOM reader says they are
    inverse = np.linalg.inv(volume.affine)
    for path in files[::3]:
        wrapper = wrapper_from_file(str(path))
        pixels = wrapper.get_data()  # rescaled, (rows, columns)
        for r, c in [(3, 5), (10, 12), (17, 20)]:
            world = LPS @ wrapper.affine @ [r, c, 0, 1]
            index = tuple(np.round(inverse @ world)[:3].astype(int))
            assert volume.data[index] == pytest.approx(pixels[r, c])


def test_slope_and_intercept_are_applied_per_slice(tmp_path):
    data = scan_data()
    write_dicom_series(tmp_path / "scan", data, scan_affine(False), SLOPE, INTERCEPT)
    raw = load_input(expand_inputs(str(tmp_path / "scan"))[0]).data
    assert raw.min() == 0 and raw.max() == pytest.approx(data.max())  # stored 200 + 2 * value, read back as value
    first = min((tmp_path / "scan").iterdir())
    d = pydicom.dcmread(first)
    d.RescaleSlope, d.RescaleIntercept = "1", "0"  # that slice stored as is: read without the others' scaling
    d.save_as(first)
    changed = load_input(expand_inputs(str(tmp_path / "scan"))[0]).data
    moved = changed != raw
    assert moved.sum() == SHAPE[0] * SHAPE[1]  # one whole slice, background included
    np.testing.assert_array_equal(changed[moved], (raw[moved] - INTERCEPT) / SLOPE)


def test_file_order_and_names_do_not_matter(tmp_path):
    data, affine = scan_data(), scan_affine(True)
    ordered = tmp_path / "ordered"
    write_dicom_series(ordered, data, affine, SLOPE, INTERCEPT)
    shuffled = tmp_path / "shuffled"
    files = write_dicom_series(shuffled, data, affine, SLOPE, INTERCEPT)
    names = [f"{random.Random(1).getrandbits(32):08x}{i}.dcm" for i in range(len(files))]
    random.Random(2).shuffle(names)
    for path, name in zip(files, names):
        path.rename(shuffled / name)
    a, b = (load_input(expand_inputs(str(p))[0]) for p in (ordered, shuffled))
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_allclose(a.affine, b.affine)


def test_a_missing_slice_is_named_as_a_gap(tmp_path):
    files = write_dicom_series(tmp_path / "gap", scan_data(), scan_affine(False), SLOPE, INTERCEPT)
    files[3].unlink()
    with pytest.raises(NiftiError, match=r"gap: has slices 6\.000 mm apart between IM000[24] and IM000[24] where the others are 3\.000 mm \(about 1 slice\(s\) missing\)"):
        load_input(expand_inputs(str(tmp_path / "gap"))[0])


def test_mixed_orientations_in_one_series_are_refused(tmp_path):
    uid = pydicom.uid.generate_uid()
    write_dicom_series(tmp_path / "localizer", scan_data(), scan_affine(False), SLOPE, INTERCEPT, series_uid=uid)
    write_dicom_series(tmp_path / "localizer", scan_data(), scan_affine(True), SLOPE, INTERCEPT, series_uid=uid, prefix="OB")
    (series,) = expand_inputs(str(tmp_path / "localizer"))
    with pytest.raises(NiftiError, match=r"^.*localizer: mixes orientations: "):
        load_input(series)


def test_repeated_positions_and_missing_tags_are_named(tmp_path):
    uid = pydicom.uid.generate_uid()
    echoes = tmp_path / "echoes"
    for prefix in ("E1_", "E2_"):  # two echoes in one series: two images per position
        write_dicom_series(echoes, scan_data(), scan_affine(False), SLOPE, INTERCEPT, series_uid=uid, prefix=prefix)
    with pytest.raises(NiftiError, match=r"echoes: has more than one image at 8 slice position\(s\) .*several echoes"):
        load_input(expand_inputs(str(echoes))[0])
    files = write_dicom_series(tmp_path / "stripped", scan_data(), scan_affine(False), SLOPE, INTERCEPT)
    d = pydicom.dcmread(files[2])
    del d.ImagePositionPatient
    d.save_as(files[2])
    with pytest.raises(NiftiError, match=r"IM0002: lacks the DICOM tag\(s\) ImagePositionPatient"):
        load_input(expand_inputs(str(tmp_path / "stripped"))[0])


def test_a_folder_of_several_series_gives_one_named_volume_each(tmp_path):
    study = tmp_path / "study"
    write_dicom_series(study, scan_data(0), scan_affine(False), SLOPE, INTERCEPT, series_number=3, description="T1 axial", prefix="A")
    write_dicom_series(study, scan_data(1), scan_affine(True), SLOPE, INTERCEPT, series_number=5, description="T2 oblique", prefix="B")
    (study / "DICOMDIR").write_bytes(b"\0" * 128 + b"DICM")  # an index, not an image: skipped (unreadable: its own input)
    found = expand_inputs(str(study))
    series = [s for s in found if isinstance(s, DicomSeries)]
    assert [input_name(s) for s in series] == ["study_S3_T1-axial", "study_S5_T2-oblique"]
    assert str(series[0]) == f"{study} [series 3 'T1 axial']"
    np.testing.assert_array_equal(load_input(series[1]).data, as_nifti(scan_data(1), scan_affine(True)).data)


def test_nifti_files_beside_dicom_win_and_a_single_dicom_file_points_to_its_folder(tmp_path):
    files = write_dicom_series(tmp_path / "mixed", scan_data(), scan_affine(False), SLOPE, INTERCEPT)
    write_phantom(tmp_path / "mixed" / "converted.nii.gz", shape=(10, 12, 4))
    assert expand_inputs(str(tmp_path / "mixed")) == [tmp_path / "mixed" / "converted.nii.gz"]
    with pytest.raises(NiftiError, match=r"IM0000: is a single DICOM file; give its folder \(inputs=.*mixed/\)"):
        load_input(expand_inputs(str(files[0]))[0])
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "notes.txt").write_text("no images")
    with pytest.raises(NiftiError, match=r"empty: is a folder without volume files .* or DICOM images$"):
        expand_inputs(str(tmp_path / "empty"))
    (tmp_path / "study" / "t1").mkdir(parents=True)  # series folders of a study: not searched, but named
    with pytest.raises(NiftiError, match=r"study: .* or DICOM images; its subfolders \(t1\) are not searched"):
        expand_inputs(str(tmp_path / "study"))


def test_an_unreadable_dicom_file_is_its_own_failed_input_and_a_cut_slice_is_named(tmp_path):
    files = write_dicom_series(tmp_path / "scan", scan_data(), scan_affine(False), SLOPE, INTERCEPT)
    (tmp_path / "scan" / "broken.dcm").write_bytes(b"\0" * 128 + b"DICM\x02\x00")  # a preamble, then nothing
    found = dicom_series(tmp_path / "scan")
    assert isinstance(found[0], DicomSeries) and found[1] == tmp_path / "scan" / "broken.dcm"
    load_input(found[0])  # the series itself reads
    with pytest.raises(NiftiError, match=r"broken\.dcm: is not a readable DICOM file: it names no SOP class"):
        load_input(found[1])
    files[4].write_bytes(files[4].read_bytes()[:700])  # cut inside the header, after the SOP class
    with pytest.raises(NiftiError, match=r"IM0004: lacks the DICOM tag\(s\) .*Rows"):
        load_input(dicom_series(tmp_path / "scan")[0])


def _retag(paths, change) -> None:
    for path in paths:
        header = pydicom.dcmread(path)
        change(header)
        header.save_as(path)


def test_monochrome1_is_turned_round_so_that_bright_tissue_is_high():
    import tempfile
    from pathlib import Path

    from lfmri.geometry.dicom import load_dicom_series

    data = phantom((20, 22, 6))
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        plain = write_dicom_series(folder / "m2", data, np.diag([1.0, 1.0, 2.0, 1.0]))
        inverted = write_dicom_series(folder / "m1", data.max() - data, np.diag([1.0, 1.0, 2.0, 1.0]))
        _retag(inverted, lambda h: setattr(h, "PhotometricInterpretation", "MONOCHROME1"))
        [m2], [m1] = dicom_series(plain[0].parent), dicom_series(inverted[0].parent)
        a, b = load_dicom_series(m2).data, load_dicom_series(m1).data
    assert np.corrcoef(a.ravel(), b.ravel())[0, 1] > 0.999  # the same image, the same way up


@pytest.mark.parametrize(("tag", "value", "said"), [("RescaleSlope", "0", "RescaleSlope 0"), ("RescaleSlope", "nan", "RescaleSlope nan")])
def test_a_rescale_slope_of_zero_is_refused_naming_the_file(tmp_path, tag, value, said):
    from lfmri.geometry.dicom import load_dicom_series

    paths = write_dicom_series(tmp_path / "s", phantom((20, 22, 4)), np.diag([1.0, 1.0, 2.0, 1.0]))
    _retag(paths[1:2], lambda h: setattr(h, tag, value))
    [series] = dicom_series(tmp_path / "s")
    with pytest.raises(NiftiError, match=said) as info:
        load_dicom_series(series)
    assert info.value.path == str(paths[1])


def test_a_series_number_that_is_no_number_stops_its_series_only(tmp_path):
    from lfmri.geometry.dicom import load_dicom_series

    folder = tmp_path / "study"
    write_dicom_series(folder, phantom((20, 22, 4)), np.diag([1.0, 1.0, 2.0, 1.0]), series_number=1)
    bad = write_dicom_series(folder, phantom((20, 22, 4)), np.diag([1.0, 1.0, 2.0, 1.0]), series_number=99, prefix="B")
    tag = b"\x20\x00\x11\x00IS\x02\x0099"  # (0020,0011) SeriesNumber, IS, 2 bytes: pydicom refuses to write "ab" itself
    for path in bad:
        raw = path.read_bytes()
        assert tag in raw
        path.write_bytes(raw.replace(tag, b"\x20\x00\x11\x00IS\x02\x00ab"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydicom's own warning about the value
        good, broken = dicom_series(folder)
        assert load_dicom_series(good).data.shape == (20, 22, 4)
        with pytest.raises(NiftiError, match="SeriesNumber 'ab', which is not a number") as info:
            load_dicom_series(broken)
    assert info.value.path == str(bad[0])


def test_scaled_sheared_orientation_cosines_are_refused_even_when_their_cross_product_has_length_one(tmp_path):
    """A row cosine of length 2 at 30 degrees to the column cosine: |r x c| = 2 x 1 x sin 30 = 1."""
    files = write_dicom_series(tmp_path / "sheared", scan_data(), scan_affine(False), SLOPE, INTERCEPT)
    row, column = np.array([2.0, 0.0, 0.0]), np.array([np.cos(np.pi / 6), np.sin(np.pi / 6), 0.0])
    assert np.isclose(np.linalg.norm(np.cross(row, column)), 1.0)
    for path in files:
        d = pydicom.dcmread(path)
        d.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *column)]
        d.save_as(path)
    with pytest.raises(NiftiError, match=r"expected positive spacings and two orthogonal unit vectors"):
        load_input(expand_inputs(str(tmp_path / "sheared"))[0])
