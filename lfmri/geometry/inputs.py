"""The one input grammar of ``evaluate.py`` and ``lfmri-predict``: a file, a list, a folder or a glob.

    inputs=scan.nii.gz                  one file (no brackets needed)
    inputs='[a.nii.gz,b.mgz]'           a list; each entry may itself be a folder or a glob
    inputs=scans/                       every volume file in the folder (not recursive), sorted
    inputs=dicom/                       a folder of DICOM files (and no volume files): one volume per series
    inputs='scans/*.nii.gz'             a glob (quote it; ** with recursion)

Entries keep their order, each folder and glob is sorted, and a file named twice is read once (also
under two spellings: ``./a.nii.gz`` and ``a.nii.gz``, or a symbolic link and its target). Names match
in any case (``SCAN.NII.GZ``). In folders and globs, broken or looping links named like volumes are
inputs (each fails by name), while the hidden temporaries of an interrupted write
(:func:`lfmri.files.is_temporary`) and lfmri's own outputs (recognised by their header's provenance,
:func:`~lfmri.geometry.nifti.written_by_lfmri`: a folder used as its own ``output_dir``) are skipped
with a message.
A folder without volumes or a glob matching nothing is an error naming the entry, so a typo never
silently evaluates fewer scans. A DICOM folder gives one :class:`~lfmri.geometry.dicom.DicomSeries`
per ``SeriesInstanceUID`` (:mod:`lfmri.geometry.dicom`), named after the folder (plus series number
and description where it holds several); everything else is a :class:`~pathlib.Path`.
:func:`load_input` reads either kind, :func:`input_name` names its outputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

from lfmri.files import is_temporary
from lfmri.geometry.dicom import DicomSeries, dicom_file_problem, dicom_series, is_dicom_file, load_dicom_series
from lfmri.geometry.nifti import (VOLUME_SUFFIXES, NiftiError, Volume, glob_files, has_volume_suffix, load_nifti,
                                  subject_name, written_by_lfmri)

log = logging.getLogger(__name__)

GLOB_CHARS = set("*?[")
Input = Path | DicomSeries  # one volume to read: a file, or a series of a DICOM folder


def is_volume_file(path: Path) -> bool:
    return has_volume_suffix(path)


def found_volumes(paths: Iterable[Path], volumes_only: bool = True) -> list[Path]:
    """The volume inputs among the entries of a folder or glob, sorted.

    Entries named like volumes count even when they are not readable files (a broken or looping
    link, a folder named ``x.nii.gz``): the reader then reports each by name rather than the run
    skipping it without a word. Temporaries of an interrupted write and lfmri's own outputs are skipped.
    ``volumes_only=False`` (a glob's matches) keeps other files too, for the reader to name.
    """
    found = []
    for path in sorted(paths):
        if not is_volume_file(path):
            if not volumes_only and path.is_file():
                found.append(path)
            continue
        if is_temporary(path):
            log.info("skipped %s: a temporary file left by an interrupted write", path)
        elif path.is_file() and written_by_lfmri(path):
            log.warning("skipped %s: an output of lfmri (its header's provenance says so), not a scan", path)
        else:
            found.append(path)
    return found


def same_file_key(item: Input) -> object:
    """What makes two inputs the same: a file's real path (two spellings, a link and its target)."""
    if isinstance(item, Path):
        try:
            return os.path.realpath(item)
        except (OSError, RuntimeError):  # a looping link: its own spelling
            return os.path.abspath(item)
    return item


def input_entries(inputs: str | Iterable[str] | None) -> list[str]:
    """``inputs`` as a list of entries: a single string is one entry (never split into characters)."""
    if inputs is None:
        return []
    if isinstance(inputs, (str, Path)):
        return [str(inputs)]
    return [str(entry) for entry in inputs]


def expand_inputs(inputs: str | Iterable[str] | None) -> list[Input]:
    """Volume files and DICOM series named by ``inputs`` (see the module docstring); raises :class:`NiftiError`."""
    paths: list[Input] = []
    for entry in input_entries(inputs):
        path = Path(entry).expanduser()
        if path.is_dir() and not is_volume_file(path):
            found = found_volumes(path.iterdir())
            series = [] if found else dicom_series(path)  # volume files win: DICOM beside them are their sources
            if not found and not series and any(is_volume_file(p) for p in path.iterdir()):
                raise NiftiError(path, "holds only lfmri's own outputs and temporaries of interrupted writes (skipped as inputs)")
            if not found and not series:
                subfolders = sorted(p.name for p in path.iterdir() if p.is_dir())
                hint = f"; its subfolders ({', '.join(subfolders[:3])}{', ...' if len(subfolders) > 3 else ''}) are not searched: name them as entries" if subfolders else ""
                raise NiftiError(path, f"is a folder without volume files ({', '.join(VOLUME_SUFFIXES)}) or DICOM images{hint}")
            paths += found or series
        elif GLOB_CHARS & set(entry) and not path.exists():
            matched = glob_files(path)  # ** walks each folder once: a symlink loop cannot hang it
            if not matched:
                raise NiftiError(entry, "matches no files")
            paths += found_volumes(matched, volumes_only=False)
        else:
            paths.append(path)  # a file (or a folder named like one); load_input names it if it is missing or unreadable
    unique: dict[object, Input] = {}
    for item in paths:
        unique.setdefault(same_file_key(item), item)
    return list(unique.values())


def input_name(item: Input | Volume | str) -> str:
    """The name outputs of ``item`` are written under: a file's name without extensions, a series' label."""
    if isinstance(item, DicomSeries):
        return item.label
    if isinstance(item, Volume):
        return item.name
    return subject_name(item)


def load_input(item: Input | str) -> Volume:
    """Read one input of :func:`expand_inputs` as a canonical float32 :class:`Volume`, or raise :class:`NiftiError`.

    Whatever the readers (nibabel, pydicom, gzip, the file system) raise for this input becomes
    its :class:`NiftiError`, so one damaged input never stops a batch (``MemoryError`` stays itself).
    """
    try:
        if isinstance(item, DicomSeries):
            return load_dicom_series(item)
        path = Path(item)
        if path.is_file() and not is_volume_file(path) and is_dicom_file(path):
            raise NiftiError(path, dicom_file_problem(path))
        return load_nifti(path)
    except (NiftiError, MemoryError):
        raise
    except Exception as err:  # a reader's own exception type: still this input's problem
        raise NiftiError(str(getattr(item, "label", item)), f"cannot be read ({type(err).__name__}: {err})") from err
