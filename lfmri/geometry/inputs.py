"""The one input grammar of ``evaluate.py`` and ``lfmri-predict``: a file, a list, a folder or a glob.

    inputs=scan.nii.gz                  one file (no brackets needed)
    inputs='[a.nii.gz,b.mgz]'           a list; each entry may itself be a folder or a glob
    inputs=scans/                       every volume file in the folder (not recursive), sorted
    inputs=dicom/                       a folder of DICOM files (and no volume files): one volume per series
    inputs='scans/*.nii.gz'             a glob (quote it; ** with recursion)

Entries keep their order, each folder and glob is sorted, and a file named twice is read once.
A folder without volumes or a glob matching nothing is an error naming the entry, so a typo never
silently evaluates fewer scans. A DICOM folder gives one :class:`~lfmri.geometry.dicom.DicomSeries`
per ``SeriesInstanceUID`` (:mod:`lfmri.geometry.dicom`), named after the folder (plus series number
and description where it holds several); everything else is a :class:`~pathlib.Path`.
:func:`load_input` reads either kind, :func:`input_name` names its outputs.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lfmri.geometry.dicom import DicomSeries, dicom_file_problem, dicom_series, is_dicom_file, load_dicom_series
from lfmri.geometry.nifti import VOLUME_SUFFIXES, NiftiError, Volume, glob_files, load_nifti, subject_name

GLOB_CHARS = set("*?[")
Input = Path | DicomSeries  # one volume to read: a file, or a series of a DICOM folder


def is_volume_file(path: Path) -> bool:
    return path.name.endswith(VOLUME_SUFFIXES)


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
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_volume_file(p))
            series = [] if found else dicom_series(path)  # volume files win: DICOM beside them are their sources
            if not found and not series:
                subfolders = sorted(p.name for p in path.iterdir() if p.is_dir())
                hint = f"; its subfolders ({', '.join(subfolders[:3])}{', ...' if len(subfolders) > 3 else ''}) are not searched: name them as entries" if subfolders else ""
                raise NiftiError(path, f"is a folder without volume files ({', '.join(VOLUME_SUFFIXES)}) or DICOM images{hint}")
            paths += found or series
        elif GLOB_CHARS & set(entry) and not path.exists():
            found = glob_files(path)  # ** walks each folder once: a symlink loop cannot hang it
            if not found:
                raise NiftiError(entry, "matches no files")
            paths += found
        else:
            paths.append(path)  # a file; load_input names it if it is missing or unreadable
    return list(dict.fromkeys(paths))


def input_name(item: Input | Volume | str) -> str:
    """The name outputs of ``item`` are written under: a file's name without extensions, a series' label."""
    if isinstance(item, DicomSeries):
        return item.label
    if isinstance(item, Volume):
        return item.name
    return subject_name(item)


def load_input(item: Input | str) -> Volume:
    """Read one input of :func:`expand_inputs` as a canonical float32 :class:`Volume`, or raise :class:`NiftiError`."""
    if isinstance(item, DicomSeries):
        return load_dicom_series(item)
    path = Path(item)
    if path.is_file() and not is_volume_file(path) and is_dicom_file(path):
        raise NiftiError(path, dicom_file_problem(path))
    return load_nifti(path)
