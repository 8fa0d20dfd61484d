"""DICOM series read as lfmri volumes: a folder of DICOM files is one volume per series.

Low-field scanners export DICOM: one file per slice, grouped into series by ``SeriesInstanceUID``.
A series becomes a :class:`~lfmri.geometry.nifti.Volume` exactly as a NIfTI file does: its slices
are sorted along the slice normal, checked for one grid (same rows, columns, pixel spacing and
orientation, evenly spaced positions: a missing slice shows as a gap), scaled by
``RescaleSlope``/``RescaleIntercept``, and given the affine of nibabel's DICOM convention
(:mod:`nibabel.nicom.dicomwrappers`: voxel axes row, column, slice; the third along
``cross(column cosine, row cosine)``) converted from DICOM's LPS to NIfTI's RAS. The array and
affine go through :func:`~lfmri.geometry.nifti.volume_from_image`, so orientation (canonical RAS+,
outputs written back in the series' own voxel order), validation and error messages are those of
NIfTI inputs. Outputs of DICOM inputs are written as NIfTI.

Enhanced (multi-frame) DICOM, several echoes or time points in one series, and compressed pixel
data without a pydicom decoder are refused with a message that says so; ``dcm2niix`` converts them.

(Over 300 lines on purpose: grouping files into series and reading a series are one job, sharing
the header readers and checks; split, each half would import the other's private helpers.)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.errors import InvalidDicomError
from pydicom.misc import is_dicom
from pydicom.uid import UID

from lfmri.files import safe_name
from lfmri.geometry.nifti import MEMORY_ENV, NiftiError, Volume, memory_budget, volume_from_image

# names many scanners and PACS exports give DICOM files; others are recognised by their preamble
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
# the tags a slice needs to be placed in space; without any of them the series cannot be stacked
GEOMETRY_TAGS = ("Rows", "Columns", "PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient")
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])  # DICOM's patient frame points left and posterior
# scanners write direction cosines and positions as decimal strings of at most 16 characters:
# agreement to 1e-4 is "the same", and positions may wander by 1 % of the slice spacing
ORIENTATION_TOLERANCE = 1e-4
SPACING_TOLERANCE = 0.01


@dataclass(frozen=True)
class DicomSeries:
    """One series (``SeriesInstanceUID``) of the DICOM files in a folder: one input volume.

    Args:
        folder: the folder the files are in (what the user named).
        uid: the series' ``SeriesInstanceUID`` ("" for files that lack it).
        files: the series' files, in folder order (they are sorted by position when read).
        label: the output name (the folder's name, plus series number and description where the
            folder holds several series), already safe as a file-name part.
        description: how messages tell this series from the folder's others ("" for a folder's
            only series).
    """

    folder: Path
    uid: str
    files: tuple[Path, ...]
    label: str
    description: str = ""
    problem: str = ""  # a header value that stops this series only (reading it raises NiftiError naming its file)

    def __str__(self) -> str:
        return f"{self.folder} [{self.description}]" if self.description else str(self.folder)


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM file: a DICOM file name, or the ``DICM`` preamble (files named ``IM0001``)."""
    if path.name.lower().endswith(DICOM_SUFFIXES) or path.name == "DICOMDIR":
        return True
    try:
        return is_dicom(path)
    except OSError:  # unreadable: not ours to judge here; the NIfTI reader names it
        return False


def sop_class(header: pydicom.Dataset) -> str | None:
    """The object's SOP class (what kind of DICOM object it is), from the dataset or its file meta."""
    meta = getattr(header, "file_meta", None)
    return header.get("SOPClassUID") or (meta.get("MediaStorageSOPClassUID") if meta is not None else None)


def read_header(path: Path) -> pydicom.Dataset:
    """The tags of one DICOM file without its pixels, or :class:`NiftiError` naming the file."""
    try:
        # force: files without the 128-byte preamble (older exports) are still DICOM
        header = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    except (InvalidDicomError, EOFError, OSError, ValueError, TypeError, KeyError, AttributeError) as err:
        raise NiftiError(path, f"is not a readable DICOM file ({type(err).__name__}: {err})") from err
    # force=True reads a truncated file as the tags before the cut: one without even its class is no DICOM object
    if sop_class(header) is None:
        raise NiftiError(path, "is not a readable DICOM file: it names no SOP class (truncated, or not DICOM at all)")
    return header


def is_image(header: pydicom.Dataset) -> bool:
    """Whether a DICOM object is an image (not a DICOMDIR, report, presentation state...).

    An image class without ``Rows`` (a file cut short) still counts: reading its series names it.
    """
    return "Image" in UID(str(sop_class(header))).name or ("Rows" in header and "Columns" in header)


def dicom_series(folder: Path) -> list[DicomSeries | Path]:
    """The series of the DICOM files directly in ``folder`` (not its subfolders), in series-number order.

    Args:
        folder: a folder of DICOM files.

    Returns:
        one :class:`DicomSeries` per ``SeriesInstanceUID``, then the path of every DICOM file whose
        header cannot be read (its own input, so reading it names the file); ``[]`` when the
        folder holds neither. Objects without pixels (DICOMDIR, reports) are skipped.
    """
    groups: dict[str, list[tuple[Path, pydicom.Dataset]]] = {}
    unreadable: list[Path] = []
    for path in sorted(p for p in folder.iterdir() if p.is_file() and is_dicom_file(p)):
        try:
            header = read_header(path)
        except NiftiError:
            unreadable.append(path)
            continue
        if is_image(header):
            groups.setdefault(str(header.get("SeriesInstanceUID", "")), []).append((path, header))
    if not groups:
        return list(unreadable)

    numbers = {uid: read_series_number(*groups[uid][0]) for uid in groups}  # (number or None, problem)

    def number(uid: str) -> tuple[int, str]:
        value = numbers[uid][0]
        return (value if value is not None else 1 << 30, uid)

    several = len(groups) > 1
    found: list[DicomSeries | Path] = []
    labels: list[str] = []
    for uid in sorted(groups, key=number):
        header = groups[uid][0][1]
        series_number, text = numbers[uid][0], str(header.get("SeriesDescription", "") or "").strip()
        if not several:
            label, description = safe_name(folder.resolve().name, "series"), ""
        else:
            tag = f"S{series_number}" if series_number not in (None, "") else f"uid{uid[-8:]}"
            label = safe_name("_".join(p for p in (folder.resolve().name, tag, text.replace(" ", "-")) if p), "series")
            description = f"series {series_number}" if series_number not in (None, "") else f"SeriesInstanceUID {uid}"
            description += f" {text!r}" if text else ""
        if label in labels:  # two series with one number and description: the UID tells them apart
            label = f"{label}_{safe_name(uid[-8:], 'x')}"
        labels.append(label)
        found.append(DicomSeries(folder, uid, tuple(p for p, _ in groups[uid]), label, description, numbers[uid][1]))
    return found + unreadable


def read_series_number(path: Path, header: pydicom.Dataset) -> tuple[int | None, str]:
    """(``SeriesNumber`` as an int or ``None`` when absent, the problem of a value that is no number).

    pydicom parses the IS value when it is read, and raises on text such as ``abc``: that series is
    named as a failed input, the folder's other series are still read.
    """
    try:
        value = header.get("SeriesNumber")
        return (int(value) if value not in (None, "") else None), ""
    except (TypeError, ValueError, OverflowError) as err:
        raw = header.get_item("SeriesNumber")
        shown = raw.value if raw is not None else "?"
        return None, f"has SeriesNumber {shown!r}, which is not a number ({type(err).__name__}); fix the tag or remove the file"


def _floats(header: pydicom.Dataset, tag: str, count: int, path: Path) -> np.ndarray:
    try:
        values = np.array([float(v) for v in header[tag].value], dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise NiftiError(path, f"has an unreadable {tag} ({header[tag].value!r})") from err
    if values.shape != (count,) or not np.all(np.isfinite(values)):
        raise NiftiError(path, f"has {tag} {list(values)}; expected {count} finite numbers")
    return values


def slice_normal(orientation: np.ndarray) -> np.ndarray:
    """nibabel's slice normal, ``cross(column cosine, row cosine)``: (row, column, slice) is then right-handed."""
    normal = np.cross(orientation[1], orientation[0])
    return normal / np.linalg.norm(normal)


@dataclass
class _Slice:
    path: Path
    header: pydicom.Dataset
    position: np.ndarray  # ImagePositionPatient, LPS mm
    where: float  # position along the slice normal


def _check_slices(series: DicomSeries, headers: Sequence[tuple[Path, pydicom.Dataset]]) -> tuple[list[_Slice], np.ndarray, np.ndarray]:
    """The slices sorted along the normal, the orientation (2, 3) and the pixel spacing; one grid or an error."""
    name = str(series)
    first_path, first = headers[0]
    slices = []
    for path, header in headers:
        missing = [tag for tag in GEOMETRY_TAGS if tag not in header or header[tag].value in (None, "")]
        if missing:
            raise NiftiError(path, f"lacks the DICOM tag(s) {', '.join(missing)} that place a slice in space; "
                                   "re-export the series with its geometry (or convert it with dcm2niix)")
        frames = int(header.get("NumberOfFrames", 1) or 1)
        if frames > 1:
            raise NiftiError(path, f"is a multi-frame (enhanced) DICOM image of {frames} frames; lfmri reads one "
                                   "slice per file: convert it with dcm2niix first")
        if int(header.get("SamplesPerPixel", 1) or 1) != 1:
            raise NiftiError(path, f"has {header.SamplesPerPixel} samples per pixel (colour); lfmri reads grayscale images")
        slices.append(_Slice(path, header, _floats(header, "ImagePositionPatient", 3, path), 0.0))
    orientation = _floats(first, "ImageOrientationPatient", 6, first_path).reshape(2, 3)  # row cosine, column cosine
    spacing = _floats(first, "PixelSpacing", 2, first_path)  # between rows, between columns
    size = (int(first.Rows), int(first.Columns))
    for s in slices[1:]:
        if (int(s.header.Rows), int(s.header.Columns)) != size:
            raise NiftiError(name, f"mixes image sizes: {s.path.name} has {s.header.Rows}x{s.header.Columns} pixels, "
                                   f"{first_path.name} {size[0]}x{size[1]}")
        other = _floats(s.header, "ImageOrientationPatient", 6, s.path).reshape(2, 3)
        if np.abs(other - orientation).max() > ORIENTATION_TOLERANCE:
            raise NiftiError(name, f"mixes orientations: {s.path.name} has ImageOrientationPatient {other.ravel().round(4).tolist()}, "
                                   f"{first_path.name} {orientation.ravel().round(4).tolist()} (a localizer? give one orientation per series)")
        if np.abs(_floats(s.header, "PixelSpacing", 2, s.path) - spacing).max() > ORIENTATION_TOLERANCE * spacing.max():
            raise NiftiError(name, f"mixes pixel spacings: {s.path.name} has {list(s.header.PixelSpacing)}, {first_path.name} {spacing.tolist()}")
    # each cosine of unit length and the two at right angles (a cross product of length 1 alone lets
    # a scaled, sheared pair through: 2 x 1 x sin 30 degrees = 1)
    unit = np.all(np.abs(np.linalg.norm(orientation, axis=1) - 1) <= 1e-3)
    if np.any(spacing <= 0) or not unit or abs(float(orientation[0] @ orientation[1])) > 1e-3:
        raise NiftiError(first_path, f"has PixelSpacing {spacing.tolist()} and ImageOrientationPatient "
                                     f"{orientation.ravel().tolist()}; expected positive spacings and two orthogonal unit vectors")
    normal = slice_normal(orientation)
    for s in slices:
        s.where = float(s.position @ normal)
    slices.sort(key=lambda s: s.where)
    return slices, orientation, spacing


def _slice_step(series: DicomSeries, slices: Sequence[_Slice], normal: np.ndarray) -> np.ndarray:
    """The LPS vector from one slice to the next; an error where slices repeat or are unevenly spaced."""
    name = str(series)
    if len(slices) == 1:  # one slice: its thickness, as nibabel does
        header = slices[0].header
        thickness = header.get("SpacingBetweenSlices") or header.get("SliceThickness") or 1.0
        return normal * float(thickness)
    gaps = np.diff([s.where for s in slices])
    repeated = [i for i, gap in enumerate(gaps) if gap < 1e-3]
    if repeated:
        at, positions = repeated[0], len({round(slices[i].where, 3) for i in repeated})
        raise NiftiError(name, f"has more than one image at {positions} slice position(s) ({slices[at].path.name} and "
                               f"{slices[at + 1].path.name} at {slices[at].where:.2f} mm): several echoes, time points or a "
                               "repeated file in one series; give the folder one volume per series (dcm2niix splits them)")
    usual = float(np.median(gaps))
    worst = int(np.argmax(np.abs(gaps - usual)))
    if abs(gaps[worst] - usual) > SPACING_TOLERANCE * usual:
        missing = gaps[worst] / usual - 1
        hint = f"about {missing:.0f} slice(s) missing" if gaps[worst] > usual and missing >= 0.5 else "uneven spacing"
        raise NiftiError(name, f"has slices {gaps[worst]:.3f} mm apart between {slices[worst].path.name} and "
                               f"{slices[worst + 1].path.name} where the others are {usual:.3f} mm ({hint}); "
                               "lfmri needs an evenly spaced stack: add the missing files or re-export the series")
    step = (slices[-1].position - slices[0].position) / (len(slices) - 1)
    for k, s in enumerate(slices):  # positions on one straight line (a sheared stack is fine, a jumble is not)
        off = float(np.linalg.norm(s.position - (slices[0].position + k * step)))
        if off > SPACING_TOLERANCE * usual + 1e-3:
            raise NiftiError(name, f"has {s.path.name} {off:.3f} mm off the line through the other slice positions; "
                                   "the slices do not form one stack")
    return step


def dicom_affine(orientation: np.ndarray, spacing: np.ndarray, first_position: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The RAS voxel-to-world affine of a (rows, columns, slices) stack.

    Args:
        orientation: ``ImageOrientationPatient`` as (2, 3): row cosine (along a row, i.e. as the
            column index grows), then column cosine (as the row index grows).
        spacing: ``PixelSpacing``: (between rows, between columns) in mm.
        first_position: ``ImagePositionPatient`` of the first slice (LPS mm).
        step: LPS vector from one slice to the next.
    """
    lps = np.eye(4)
    lps[:3, 0] = orientation[1] * spacing[0]  # voxel axis 0: the row index
    lps[:3, 1] = orientation[0] * spacing[1]  # voxel axis 1: the column index
    lps[:3, 2] = step
    lps[:3, 3] = first_position
    return LPS_TO_RAS @ lps


def load_dicom_series(series: DicomSeries) -> Volume:
    """Read one DICOM series as a canonical float32 :class:`Volume`, or raise :class:`NiftiError`.

    Args:
        series: a series found by :func:`dicom_series`.

    Returns:
        the volume, reoriented to RAS+ as :func:`~lfmri.geometry.nifti.load_nifti` does, with
        ``label`` = the series' output name and ``source`` = the folder (and series).
    """
    if series.problem:
        raise NiftiError(series.files[0], series.problem)
    headers = []
    for path in series.files:
        header = read_header(path)
        if is_image(header):
            headers.append((path, header))
    if not headers:
        raise NiftiError(str(series), "holds no DICOM image")
    slices, orientation, spacing = _check_slices(series, headers)
    step = _slice_step(series, slices, slice_normal(orientation))
    rows, columns = int(slices[0].header.Rows), int(slices[0].header.Columns)
    needed = rows * columns * len(slices) * 4
    if needed > memory_budget():  # before any pixel is read
        raise NiftiError(str(series), f"holds {rows}x{columns}x{len(slices)} voxels ({needed / 2**30:.1f} GiB as float32), "
                                      f"above the memory budget of {memory_budget() / 2**30:.1f} GiB (set {MEMORY_ENV} to change it)")
    data = np.empty((rows, columns, len(slices)), dtype=np.float32)
    for k, s in enumerate(slices):
        try:
            pixels = pydicom.dcmread(s.path, force=True).pixel_array
        except Exception as err:  # pydicom's decoders raise anything from RuntimeError to NotImplementedError
            syntax = getattr(getattr(s.header, "file_meta", None), "TransferSyntaxUID", None)
            kind = f" ({syntax.name})" if syntax is not None else ""
            raise NiftiError(s.path, f"has pixel data pydicom cannot decode{kind}: {type(err).__name__}: {err}; "
                                     "install the decoder it names or convert the series with dcm2niix") from err
        if pixels.shape != (rows, columns):
            raise NiftiError(s.path, f"holds pixels of shape {pixels.shape}; its header says {rows}x{columns}")
        # the stored values are not the intensities until scaled; slope and intercept may differ per slice
        slope, intercept = rescale(s.path, s.header)
        data[:, :, k] = pixels.astype(np.float64) * slope + intercept
    if str(slices[0].header.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1":
        # MONOCHROME1: the lowest value is displayed white, so bright tissue holds low numbers; turned
        # round over the series' own range (one map for every slice) so that high means bright, as
        # in MONOCHROME2 and NIfTI. pydicom offers the modality and VOI LUTs but leaves this to the caller.
        data = (data.max() + data.min()) - data
    affine = dicom_affine(orientation, spacing, slices[0].position, step)
    volume = volume_from_image(nib.Nifti1Image(data, affine), str(series))
    volume.label = series.label
    return volume


def rescale(path: Path, header: pydicom.Dataset) -> tuple[float, float]:
    """(``RescaleSlope``, ``RescaleIntercept``) of one slice: 1 and 0 when absent; a slope of 0 or one
    that is no finite number is refused (it would make every voxel the intercept), naming the file."""
    def value(tag: str, default: float) -> float:
        try:
            raw = header.get(tag)
            number = default if raw in (None, "") else float(raw)
        except (TypeError, ValueError) as err:
            raise NiftiError(path, f"has {tag} {header.get_item(tag).value!r}, which is not a number") from err
        if not np.isfinite(number):
            raise NiftiError(path, f"has {tag} {number}, not a finite number")
        return number

    slope, intercept = value("RescaleSlope", 1.0), value("RescaleIntercept", 0.0)
    if slope == 0:
        raise NiftiError(path, "has RescaleSlope 0: every voxel would read as the intercept; fix the tag (1 when the values are unscaled)")
    return slope, intercept


def dicom_file_problem(path: Path) -> str:
    """Why one DICOM file given as an input is not read on its own (its series is), as one line."""
    try:
        read_header(path)
    except NiftiError as err:
        return err.problem
    return f"is a single DICOM file; give its folder (inputs={path.parent}{os.sep}) to read the series it belongs to"
