"""Scans nibabel would misread or choke on, for the reader's and the entry points' refusals."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SHAPE = (16, 16, 8)  # every bad scan and the good ones beside it


def degenerate(path: Path) -> Path:
    """A scan whose affine collapses the third axis (nibabel raises OrientationError deep inside)."""
    img = nib.Nifti1Image(np.random.default_rng(0).random(SHAPE, dtype=np.float32) + 1, np.eye(4))
    singular = np.eye(4)
    singular[2, 2] = 0
    img.set_sform(singular, code=1)
    img.set_qform(None, code=0)
    nib.save(img, str(path))
    return path


def rgb(path: Path) -> Path:
    data = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    data["R"] = 50
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def complex_valued(path: Path) -> Path:
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32) + 1
    nib.save(nib.Nifti1Image((data + 1j * data).astype(np.complex64), np.eye(4)), str(path))
    return path


def huge_header(path: Path) -> Path:
    """A 1 kB file whose header claims 2000^3 voxels."""
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), str(path))
    header = nib.Nifti1Header.from_fileobj(path.open("rb"))
    header.set_data_shape((2000, 2000, 2000))
    path.write_bytes(header.binaryblock + path.read_bytes()[348:])
    return path


def datatype_zero(path: Path) -> Path:
    """A header with datatype code 0 (DT_UNKNOWN): nibabel raises HeaderDataError, which used to escape."""
    path = path.with_name(path.name.replace(".nii.gz", ".nii"))
    nib.save(nib.Nifti1Image(np.ones(SHAPE, np.float32), np.eye(4)), str(path))
    header = bytearray(path.read_bytes())
    header[70:72] = (0).to_bytes(2, "little")
    path.write_bytes(bytes(header))
    return path


def corrupt_mgz(path: Path) -> Path:
    """FreeSurfer's gzipped MGH cut short: gzip's EOFError from the reader used to escape."""
    path = path.with_name(path.name.split(".")[0] + ".mgz")
    nib.save(nib.MGHImage(np.random.default_rng(0).random(SHAPE, dtype=np.float32), np.eye(4)), str(path))
    path.write_bytes(path.read_bytes()[:40])
    return path


def folder(path: Path) -> Path:
    """A folder named like a volume (an unpacked archive) given as an input."""
    path.mkdir()
    return path


def broken_link(path: Path) -> Path:
    path.symlink_to(path.with_name("moved-away.nii.gz"))
    return path


# kind -> (writer, what the refusal names); a writer returns the path it made (its suffix may differ)
BAD = {"degenerate": (degenerate, "degenerate affine"), "rgb": (rgb, "single-channel"),
       "complex": (complex_valued, "complex voxels"), "huge": (huge_header, "memory budget"),
       "datatype0": (datatype_zero, "data code 0"), "corrupt_mgz": (corrupt_mgz, "truncated, corrupt"),
       "folder": (folder, "is a folder"), "broken_link": (broken_link, "broken symbolic link")}
