"""Reading a paired low-field/high-field collection: one file per subject and field, or one per slice.

Layouts under ``root`` (globs and name pattern configurable):

- ``volumes``: one NIfTI per subject and field, ``lf/{subject}.nii.gz`` and ``hf/{subject}.nii.gz``;
  the subject is the ``subject`` group of ``name_regex`` matched on the file name;
- ``slices``: one NIfTI per slice, as 64 mT/3T collections ship them; ``name_regex`` has named
  groups ``subject`` and ``slice``; slices are grouped by subject, sorted by slice index, singleton
  dimensions squeezed, and stacked along ``stack_axis`` (the first slice's affine places the stack).

Problems (unmatched names, duplicates, gaps, unreadable files, one-field subjects) go to a
:class:`~lfmri.data.pair_validation.PairReport`, never stop the reading.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import nibabel as nib
import numpy as np

from lfmri.data.pair_validation import FIELDS, PairReport
from lfmri.geometry.nifti import NiftiError, Volume, check_header, glob_files, load_nifti, volume_from_image

VOLUME_REGEX = r"(?P<subject>.+?)\.nii(\.gz)?$"
SLICE_REGEX = r"(?P<subject>.+?)_(?:slice)?(?P<slice>\d+)\.nii(\.gz)?$"


def _glob(root: Path, pattern: str) -> list[Path]:
    return glob_files(root / pattern)


def _compile(regex: str, groups: Sequence[str]) -> re.Pattern:
    try:
        compiled = re.compile(regex)
    except re.error as err:
        raise ValueError(f"data.name_regex={regex!r} is not a valid regular expression: {err}") from err
    missing = [g for g in groups if g not in compiled.groupindex]
    if missing:
        raise ValueError(f"data.name_regex={regex!r} needs the named groups {list(groups)}; missing {missing}")
    return compiled


def read_volume_layout(root: Path, globs: Mapping[str, str], regex: str, report: PairReport) -> dict[str, dict[str, Volume]]:
    """``{field: {subject: Volume}}`` for one file per subject and field; problems go to ``report``."""
    pattern = _compile(regex, ["subject"])
    found: dict[str, dict[str, Volume]] = {f: {} for f in FIELDS}
    for field_name in FIELDS:
        files: dict[str, list[Path]] = {}
        for path in _glob(root, globs[field_name]):
            match = pattern.search(path.name)
            if not match:
                report.add(None, field_name, f"file name does not match data.name_regex={regex!r}", [path])
                continue
            files.setdefault(match["subject"], []).append(path)
        for subject, paths in files.items():
            if len(paths) > 1:
                report.add(subject, field_name, "several files for one subject", paths)
                continue
            try:
                found[field_name][subject] = load_nifti(paths[0])
            except NiftiError as err:
                report.add(subject, field_name, err.problem, [err.path])
    return found


def _read_slice(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A 2D slice (singleton dimensions squeezed) and its file's affine; NiftiError names the file."""
    try:
        img = nib.load(str(path))
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, reported with its name
        raise NiftiError(path, f"is not a readable NIfTI file ({type(err).__name__}: {err})") from err
    check_header(img, str(path))  # complex, RGB, degenerate affine, oversized header: before reading
    try:
        data = np.asarray(img.get_fdata(dtype=np.float32))
    except Exception as err:  # noqa: BLE001 - any reader failure is a bad file, reported with its name
        raise NiftiError(path, f"is not a readable NIfTI file ({type(err).__name__}: {err})") from err
    squeezed = data.squeeze()
    if squeezed.ndim != 2:
        raise NiftiError(path, f"has shape {data.shape}; a slice file must hold one 2D slice")
    bad = int(squeezed.size - np.count_nonzero(np.isfinite(squeezed)))
    if bad:
        raise NiftiError(path, f"contains {bad} NaN/Inf voxels")
    return squeezed, np.asarray(img.affine, dtype=np.float64)


def read_slice_layout(
    root: Path, globs: Mapping[str, str], regex: str, stack_axis: int, report: PairReport
) -> dict[str, dict[str, Volume]]:
    """``{field: {subject: Volume}}`` stacked from one file per slice; problems go to ``report``."""
    pattern = _compile(regex, ["subject", "slice"])
    found: dict[str, dict[str, Volume]] = {f: {} for f in FIELDS}
    for field_name in FIELDS:
        groups: dict[str, dict[int, list[Path]]] = {}
        for path in _glob(root, globs[field_name]):
            match = pattern.search(path.name)
            if not match:
                report.add(None, field_name, f"file name does not match data.name_regex={regex!r}", [path])
                continue
            groups.setdefault(match["subject"], {}).setdefault(int(match["slice"]), []).append(path)
        for subject, by_index in sorted(groups.items()):
            volume = _stack_subject(subject, field_name, by_index, stack_axis, report)
            if volume is not None:
                found[field_name][subject] = volume
    return found


def _stack_subject(subject: str, field_name: str, by_index: Mapping[int, list[Path]], stack_axis: int, report: PairReport) -> Volume | None:
    ok = True
    for index, paths in sorted(by_index.items()):
        if len(paths) > 1:
            report.add(subject, field_name, f"slice index {index} appears {len(paths)} times", paths)
            ok = False
    indices = sorted(by_index)
    missing = sorted(set(range(indices[0], indices[-1] + 1)) - set(indices))
    if missing:
        report.add(subject, field_name, f"missing slice indices {missing} (found {indices[0]}..{indices[-1]})",
                   [by_index[indices[0]][0].parent])
        ok = False
    slices, affines, files = [], [], []
    for index in indices:
        path = by_index[index][0]
        try:
            data, affine = _read_slice(path)
        except NiftiError as err:
            report.add(subject, field_name, err.problem, [err.path])
            ok = False
            continue
        slices.append(data)
        affines.append(affine)
        files.append(path)
    shapes = {}
    for data, path in zip(slices, files):
        shapes.setdefault(data.shape, []).append(path)
    if len(shapes) > 1:
        common = max(shapes, key=lambda s: len(shapes[s]))
        odd = [p for s, paths in shapes.items() if s != common for p in paths]
        report.add(subject, field_name, f"slices of different shapes {sorted(shapes)}; most are {common}", odd)
        ok = False
    if not ok or not slices:
        return None
    source = str(files[0].parent / f"{subject}_*")
    stacked = np.stack(slices, axis=stack_axis)
    try:
        return volume_from_image(nib.Nifti1Image(stacked, affines[0]), source)
    except NiftiError as err:
        report.add(subject, field_name, err.problem, files)
        return None


def check_pairs(found: Mapping[str, Mapping[str, Volume]], report: PairReport) -> list[str]:
    """Subjects with both fields; one-field subjects (and fields with no file at all) are reported."""
    lf, hf = set(found["lf"]), set(found["hf"])
    failed = report.bad_subjects
    for subject in sorted((lf ^ hf) - failed):
        have = "lf" if subject in lf else "hf"
        other = "hf" if have == "lf" else "lf"
        report.add(subject, other, f"present in {have} only; no {other} data", [found[have][subject].source])
    return sorted(lf & hf)
