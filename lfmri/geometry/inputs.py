"""The one input grammar of ``evaluate.py`` and ``lfmri-predict``: a file, a list, a folder or a glob.

    inputs=scan.nii.gz                  one file (no brackets needed)
    inputs='[a.nii.gz,b.mgz]'           a list; each entry may itself be a folder or a glob
    inputs=scans/                       every volume file in the folder (not recursive), sorted
    inputs='scans/*.nii.gz'             a glob (quote it; ** with recursion)

Entries keep their order, each folder and glob is sorted, and a file named twice is read once.
A folder without volumes or a glob matching nothing is an error naming the entry, so a typo never
silently evaluates fewer scans.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from lfmri.geometry.nifti import VOLUME_SUFFIXES, NiftiError, glob_files

GLOB_CHARS = set("*?[")


def is_volume_file(path: Path) -> bool:
    return path.name.endswith(VOLUME_SUFFIXES)


def input_entries(inputs: str | Iterable[str] | None) -> list[str]:
    """``inputs`` as a list of entries: a single string is one entry (never split into characters)."""
    if inputs is None:
        return []
    if isinstance(inputs, (str, Path)):
        return [str(inputs)]
    return [str(entry) for entry in inputs]


def expand_inputs(inputs: str | Iterable[str] | None) -> list[Path]:
    """Volume files named by ``inputs`` (see the module docstring); raises :class:`NiftiError`."""
    paths: list[Path] = []
    for entry in input_entries(inputs):
        path = Path(entry).expanduser()
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and is_volume_file(p))
            if not found:
                raise NiftiError(path, f"is a folder without volume files ({', '.join(VOLUME_SUFFIXES)})")
            paths += found
        elif GLOB_CHARS & set(entry) and not path.exists():
            found = glob_files(path)  # ** walks each folder once: a symlink loop cannot hang it
            if not found:
                raise NiftiError(entry, "matches no files")
            paths += found
        else:
            paths.append(path)  # a file; load_nifti names it if it is missing or unreadable
    return list(dict.fromkeys(paths))
