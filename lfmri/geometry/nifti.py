"""NIfTI reading and writing that keeps geometry right and names the file when something is wrong.

Volumes are read with nibabel's scaling applied (``get_fdata``: many public files are uint8 with
``scl_slope``), as float32, reoriented to the closest canonical (RAS+) orientation. The original
orientation is remembered so outputs can be written back in the orientation of the input.
"""

from __future__ import annotations

import glob
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import axcodes2ornt, ornt_transform

from lfmri.files import atomic_write

log = logging.getLogger(__name__)

CANONICAL = ("R", "A", "S")
MEMORY_ENV = "LFMRI_MAX_VOLUME_GB"  # largest float32 copy of one volume that lfmri reads
# NIfTI, and FreeSurfer's MGH format (nibabel's MGHImage): read and written alike
VOLUME_SUFFIXES = (".nii", ".nii.gz", ".mgz", ".mgh")


class NiftiError(ValueError):
    """A NIfTI file that cannot be used; the message names the file and the problem."""

    def __init__(self, path: str | os.PathLike, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


@dataclass
class Volume:
    """A 3D volume in canonical RAS+ voxel order with its voxel-to-world affine."""

    data: np.ndarray
    affine: np.ndarray
    source: str
    axcodes: tuple[str, str, str] = CANONICAL  # orientation of the file it came from
    label: str | None = None  # the name where the source's file name is not it (a DICOM series: its folder)
    # NIfTI xform code of the source's affine (1 scanner, 2 aligned, 3 Talairach, 4 MNI; 0 unknown: the
    # file had no orientation, nibabel guessed one from the voxel sizes); outputs are written with it
    space_code: int = 1

    @property
    def name(self) -> str:
        return self.label or subject_name(self.source)

    @property
    def zooms(self) -> np.ndarray:
        return voxel_sizes(self.affine)


def has_volume_suffix(path: str | os.PathLike) -> bool:
    """Whether a file name ends like a volume (:data:`VOLUME_SUFFIXES`), in any case (``SCAN.NII.GZ``)."""
    return Path(path).name.lower().endswith(VOLUME_SUFFIXES)


def subject_name(path: str | os.PathLike) -> str:
    """File name without directory and NIfTI extensions (``sub-01_T1w.nii.gz`` -> ``sub-01_T1w``, any case)."""
    name = Path(path).name
    for ext in (".nii.gz", ".nii", ".mgz", ".mgh", ".gz"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


# what lfmri writes into the NIfTI ``descrip`` of its outputs: "<kind> lfmri <version> ..." (see save_nifti)
_OWN_OUTPUT = re.compile(rb"[A-Za-z0-9_.+-]+ lfmri \d")


def written_by_lfmri(path: str | os.PathLike) -> bool:
    """Whether ``path`` is an output of lfmri (predict, evaluate), from its header's provenance
    (``descrip`` = ``<kind> lfmri <version> <model> x<scale> <checkpoint>``); reads the header only.
    An unreadable file is not (its reader names the problem later)."""
    try:
        img = nib.load(str(path))
        descrip = bytes(np.asarray(img.header.get("descrip", b"")).tobytes()) if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)) else b""
    except Exception:  # any reader error: not recognisably ours
        return False
    return _OWN_OUTPUT.match(descrip) is not None


def glob_files(pattern: str | os.PathLike) -> list[Path]:
    """Files matching ``pattern``, where a ``**`` component matches any depth of folders.

    Unlike ``glob.glob(recursive=True)``, which follows a symlink loop (``a/link -> ..``) until the
    path is too long (hours on a deep tree), folders are walked once each by their real path:
    symlinked folders are still searched, loops and second routes to a folder are not.
    """
    pattern = os.path.expanduser(str(pattern))
    parts = Path(pattern).parts
    if "**" not in parts:
        matches = glob.glob(pattern)
        report_skipped(pattern, matches)
        return sorted(Path(p) for p in matches if os.path.isfile(p))
    cut = parts.index("**")
    base, rest = Path(*parts[:cut]) if cut else Path("."), parts[cut + 1 :]
    found: set[str] = set()
    skipped: list[str] = []
    for top in glob.glob(str(base)) if glob.has_magic(str(base)) else [str(base)]:
        seen: set[str] = set()
        for folder, subfolders, _ in os.walk(top, followlinks=True):
            real = os.path.realpath(folder)
            if real in seen:  # a loop or a second route: do not descend again
                subfolders[:] = []
                continue
            seen.add(real)
            tail = os.path.join(glob.escape(folder), *(rest or ["*"]))
            matches = glob.glob(tail)
            skipped.extend(p for p in matches if not os.path.isfile(p) and not os.path.isdir(p))
            found.update(p for p in matches if os.path.isfile(p))
    report_skipped(pattern, skipped)
    return sorted(Path(p) for p in found)


def report_skipped(pattern: str, matches: list[str]) -> None:
    """One warning line naming the matches of ``pattern`` that are neither files nor folders (a broken
    link, a FIFO, a device): a glob never drops a volume without a word."""
    odd = sorted(p for p in matches if not os.path.isfile(p) and not os.path.isdir(p))
    if odd:
        shown = ", ".join(f"{p} ({missing_problem(Path(p))})" for p in odd[:5])
        more = f" and {len(odd) - 5} more" if len(odd) > 5 else ""
        log.warning("%s: skipped %d match(es) that are not readable files: %s%s", pattern, len(odd), shown, more)


def voxel_sizes(affine: np.ndarray) -> np.ndarray:
    return np.sqrt((np.asarray(affine)[:3, :3] ** 2).sum(axis=0))


def file_index(axcodes: tuple[str, ...], shape: tuple[int, ...], axis: int, index: int) -> tuple[int, int]:
    """(file axis, voxel index in the file) of voxel ``index`` along ``axis`` of a canonical (RAS+)
    array of ``shape`` read from a file whose orientation was ``axcodes``.

    Messages and figures name slices as the user's viewer shows them: by the file's own voxel
    indices, not by the reoriented array lfmri works on (nibabel's orientation maths).
    """
    orientation = axcodes2ornt(tuple(axcodes))  # per file axis: (canonical axis, direction)
    file_axis = int(np.flatnonzero(orientation[:, 0] == axis)[0])
    return file_axis, int(index if orientation[file_axis, 1] > 0 else shape[axis] - 1 - index)


def memory_budget() -> int:
    """Bytes one volume's float32 copy may take: ``$LFMRI_MAX_VOLUME_GB``, else a quarter of the machine's memory."""
    if os.environ.get(MEMORY_ENV):
        return int(float(os.environ[MEMORY_ENV]) * 2**30)
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 4
    except (ValueError, OSError, AttributeError):  # not POSIX: 4 GiB
        return 4 * 2**30


DEFLATE_MAX_RATIO = 1032  # the largest compression ratio deflate (gzip) can reach


def check_header(img: nib.spatialimages.SpatialImage, source: str) -> None:
    """Refuse what nibabel would read wrongly or not at all, from the header alone (nothing is read yet).

    Complex voxels (nibabel's float conversion keeps only the real part), RGB and other structured
    types, a degenerate affine (nibabel raises deep inside reorientation), and a header claiming more
    voxels than :func:`memory_budget` or, for uncompressed files, more bytes than the file holds.
    """
    dtype = img.get_data_dtype()
    if dtype.kind == "c":
        raise NiftiError(source, f"holds complex voxels ({dtype}); lfmri reads magnitude images: save np.abs(data) first")
    if dtype.fields is not None or dtype.kind not in "biuf":
        raise NiftiError(source, f"has voxels of type {dtype} (e.g. RGB); lfmri reads single-channel grayscale images")
    voxels = int(np.prod(img.shape, dtype=np.float64))
    if voxels * 4 > memory_budget():
        raise NiftiError(
            source,
            f"claims shape {tuple(img.shape)} ({voxels * 4 / 2**30:.1f} GiB as float32), above the memory budget of "
            f"{memory_budget() / 2**30:.1f} GiB (set {MEMORY_ENV} to change it)",
        )
    file_map = getattr(img, "file_map", {}).get("image")
    filename = getattr(file_map, "filename", None)
    if filename and str(filename).lower().endswith((".gz", ".mgz")) and os.path.isfile(filename):
        # deflate compresses at most 1032:1: a 4 KB file cannot hold gigabytes of voxels, whatever its
        # header claims (refused here, before anything is allocated or decompressed)
        held = os.path.getsize(filename)
        claimed = voxels * dtype.itemsize
        if claimed > DEFLATE_MAX_RATIO * held + 2**16:
            raise NiftiError(source, f"claims shape {tuple(img.shape)} ({claimed / 2**20:.1f} MiB of voxels), more than a "
                                     f"gzip file of {held} bytes can hold (at most {DEFLATE_MAX_RATIO}:1): the header is wrong "
                                     "or the file is cut short")
    if filename and not str(filename).lower().endswith((".gz", ".mgz")) and os.path.isfile(filename):  # .mgz: gzipped MGH
        needed = int(img.header.get_data_offset()) + voxels * dtype.itemsize
        held = os.path.getsize(filename)
        if held < needed:
            raise NiftiError(source, f"is truncated: its header needs {needed} bytes, the file holds {held}")
    affine = np.asarray(img.affine, dtype=np.float64)
    zooms = voxel_sizes(affine)
    if (not np.all(np.isfinite(affine)) or np.any(zooms == 0)
            or abs(np.linalg.det(affine[:3, :3])) <= 1e-6 * float(np.prod(zooms))):
        raise NiftiError(source, f"has a degenerate affine (singular or non-finite voxel axes) {affine.round(4).tolist()}")


def volume_from_image(img: nib.spatialimages.SpatialImage, source: str) -> Volume:
    """Validate an in-memory image and return it as a canonical float32 :class:`Volume`."""
    check_header(img, source)
    shape = img.shape
    # trailing singleton dimensions (e.g. a 3D scan stored as X x Y x Z x 1) carry no data
    while len(shape) > 3 and shape[-1] == 1:
        shape = shape[:-1]
    if len(shape) > 3:
        raise NiftiError(source, f"is {len(shape)}D with shape {tuple(img.shape)}; lfmri needs a single 3D volume")
    if len(shape) < 3 or min(shape) < 1:
        raise NiftiError(source, f"has shape {tuple(img.shape)}; lfmri needs a 3D volume")
    if len(img.shape) > 3:
        img = img.slicer[(...,) + (0,) * (len(img.shape) - 3)]
    try:
        axcodes = tuple(nib.aff2axcodes(img.affine))
        canonical = nib.as_closest_canonical(img)
        data = canonical.get_fdata(dtype=np.float32)
    except MemoryError as err:
        raise NiftiError(source, f"does not fit in memory (shape {tuple(img.shape)})") from err
    except Exception as err:  # nibabel, gzip, zlib and numpy raise many types for one damaged file: all are its problem
        raise NiftiError(source, f"is truncated or corrupt ({type(err).__name__}: {err})") from err
    if any(code is None for code in axcodes):
        raise NiftiError(source, f"has a degenerate affine (axis codes {axcodes}); cannot orient it")
    bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise NiftiError(source, f"contains {bad} NaN/Inf voxels")
    if not np.any(data):
        raise NiftiError(source, "is all zeros")
    return Volume(data=data, affine=np.asarray(canonical.affine, dtype=np.float64), source=source, axcodes=axcodes,
                  space_code=space_code(img))


def space_code(img: nib.spatialimages.SpatialImage) -> int:
    """The NIfTI code of the space ``img.affine`` maps to: the sform's code, else the qform's (nibabel's
    order), 0 when both are unknown (nibabel made the affine up from the voxel sizes); 1 for MGH."""
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        return 1
    sform, qform = int(img.header["sform_code"]), int(img.header["qform_code"])
    return sform or qform


def missing_problem(path: Path) -> str:
    """Why ``path``, which is not a regular file, cannot be read: missing, a folder, a broken or looping link."""
    if path.is_symlink():
        try:
            path.resolve(strict=True)
        except RuntimeError:
            return "is a symbolic link that loops (it never reaches a file)"
        except OSError as err:
            if getattr(err, "errno", None) == 40:  # ELOOP
                return "is a symbolic link that loops (it never reaches a file)"
            return f"is a broken symbolic link (its target {os.readlink(path)} does not exist)"
    if path.is_dir():
        return "is a folder, not a volume file"
    return "does not exist" if not path.exists() else "is not a regular file"


def check_stored_voxel_sizes(path: Path, header_class: type) -> None:
    """Refuse a NIfTI header without an sform whose voxel sizes (``pixdim[1:4]``, which then place the
    voxels) are zero or not numbers, as stored: nibabel replaces a zero by 1 mm when it reads the header,
    and the volume would be placed and resampled at a spacing nobody measured."""
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    try:
        with opener(path, "rb") as file:
            stored = header_class.from_fileobj(file, check=False)
    except Exception:  # noqa: BLE001 - nibabel read it already; a second read that fails says nothing new
        return
    if int(stored["sform_code"]) > 0:
        return  # the sform places the voxels; pixdim is not read for it
    sizes = np.asarray(stored["pixdim"][1:4], dtype=np.float64)
    if np.any(sizes == 0) or not np.all(np.isfinite(sizes)):
        raise NiftiError(path, f"stores voxel sizes (pixdim[1:4]) {sizes.round(4).tolist()} and no sform: a zero or "
                               "non-number spacing, which nibabel would read as 1 mm. Set the real spacing in the header")


def warn_disagreeing_qform(path: Path, header) -> None:
    """One warning line where a header's qform and sform both claim a space and place the voxels
    differently (by more than a tenth of a voxel): lfmri, nibabel and most viewers follow the sform,
    some tools the qform, so the same file can show the anatomy in two places."""
    if int(header["sform_code"]) <= 0 or int(header["qform_code"]) <= 0:
        return
    sform, qform = header.get_sform(), header.get_qform()
    voxel = float(min(voxel_sizes(sform))) or 1.0
    corners = np.array([[i, j, k, 1.0] for i in (0, 1) for j in (0, 1) for k in (0, 1)]) * np.r_[header.get_data_shape()[:3], 1]
    apart = float(np.abs(corners @ (sform - qform).T)[:, :3].max())
    if apart > 0.1 * voxel:
        log.warning("%s: its qform and sform place the voxels up to %.2f mm apart; lfmri follows the sform (as nibabel "
                    "and most viewers do); a tool that reads the qform shows the anatomy elsewhere", path, apart)


def load_nifti(path: str | os.PathLike) -> Volume:
    """Read a 3D NIfTI file as a canonical float32 :class:`Volume`, or raise :class:`NiftiError`."""
    path = Path(path)
    if not path.is_file():
        raise NiftiError(path, missing_problem(path))
    if not has_volume_suffix(path):
        raise NiftiError(path, f"is not a NIfTI file (nor MGH; expected a name ending {', '.join(VOLUME_SUFFIXES)})")
    try:
        img = nib.load(str(path))
    except Exception as err:  # ImageFileError, HeaderDataError (datatype code 0), EOFError, zlib.error, OSError...
        raise NiftiError(path, f"is not a readable NIfTI file: truncated, corrupt or another format ({type(err).__name__}: {err})") from err
    if not isinstance(img, (nib.Nifti1Image, nib.Nifti2Image, nib.MGHImage)):
        raise NiftiError(path, f"is a {type(img).__name__}, not a NIfTI or MGH image")
    if isinstance(img, (nib.Nifti1Image, nib.Nifti2Image)):
        check_stored_voxel_sizes(path, type(img.header))
        warn_disagreeing_qform(path, img.header)
    try:
        return volume_from_image(img, str(path))
    except (NiftiError, MemoryError):
        raise
    except Exception as err:  # a header nibabel accepted but cannot apply: still this file's problem, not the run's
        raise NiftiError(path, f"has a header that cannot be read ({type(err).__name__}: {err})") from err


def save_nifti(
    path: str | os.PathLike,
    data: np.ndarray,
    affine: np.ndarray,
    axcodes: tuple[str, ...] = CANONICAL,
    overwrite: bool = False,
    description: str | None = None,
    space_code: int = 1,
) -> Path:
    """Write a canonical (RAS+) ``data``/``affine`` pair as float32 NIfTI, reoriented to ``axcodes``.

    The header's voxel sizes come from the affine, so they always match the data grid. The file
    is written to a temporary name and moved into place, so a crash never leaves half a file, and
    gets the permissions of any new file (0644 under umask 022). A ``.mgz``/``.mgh`` name writes
    FreeSurfer's MGH format. ``description`` (provenance: model, checkpoint, lfmri version) goes
    into the NIfTI ``descrip`` field, cut to its 80 bytes.

    ``space_code``: the NIfTI code of the space the affine maps to (the input's, :attr:`Volume.space_code`;
    0 when the input had no orientation: the output does not claim scanner space either). The sform
    holds the affine; the qform (rotation and voxel sizes only) holds it too unless the affine has
    shear, which a qform cannot hold: then the qform is marked unknown (code 0), never a different
    transform under the same code.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=true to replace it")
    img = nib.Nifti1Image(np.asarray(data, dtype=np.float32), np.asarray(affine, dtype=np.float64))
    if tuple(axcodes) != CANONICAL:
        img = img.as_reoriented(ornt_transform(axcodes2ornt(CANONICAL), axcodes2ornt(tuple(axcodes))))
    img.header.set_xyzt_units("mm", "sec")
    code = int(space_code)
    img.set_sform(img.affine, code=code)
    img.set_qform(img.affine, code=code)
    if code and not np.allclose(img.get_qform(), img.affine, atol=1e-4 * float(np.abs(img.affine).max())):
        img.set_qform(img.affine, code=0)  # sheared: the qform would drop the shear; the sform alone says where voxels are
    if description:
        img.header["descrip"] = description.encode("utf-8")[:80]
    if path.name.endswith((".mgz", ".mgh")):
        img = nib.MGHImage(np.asarray(img.dataobj, dtype=np.float32), img.affine)
    with atomic_write(path, overwrite=overwrite) as tmp:  # the temporary keeps the suffixes: nibabel picks the format by name
        nib.save(img, tmp)
    return path
