"""The pair validation report: every problem of a paired collection, found before training.

Loading a paired collection never stops at the first bad file: each problem (a subject with one
field only, missing or duplicated slice indices, slices of different shapes, NaN/Inf voxels,
unreadable files, names that do not parse) is recorded with the subject, field and file it
concerns. ``strict`` then decides: stop with the whole report, or drop the subjects concerned
and log it.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lfmri.errors import DataError

log = logging.getLogger(__name__)

FIELDS = ("lf", "hf")


@dataclass(frozen=True)
class Problem:
    subject: str | None  # None: a file that could not be attributed to any subject
    field: str | None
    message: str
    files: tuple[str, ...] = ()

    def __str__(self) -> str:
        where = " ".join(part for part in (self.subject and f"subject {self.subject!r}", self.field and f"[{self.field}]") if part)
        files = f" ({', '.join(self.files[:6])}{' ...' if len(self.files) > 6 else ''})" if self.files else ""
        return f"{where or 'collection'}: {self.message}{files}"


@dataclass
class PairReport:
    root: str
    problems: list[Problem] = field(default_factory=list)

    def add(self, subject: str | None, field_name: str | None, message: str, files: Iterable[str | Path] = ()) -> None:
        self.problems.append(Problem(subject, field_name, message, tuple(str(f) for f in files)))

    @property
    def bad_subjects(self) -> set[str]:
        return {p.subject for p in self.problems if p.subject is not None}

    def __bool__(self) -> bool:
        return bool(self.problems)

    def format(self) -> str:
        lines = [f"pair validation of {self.root}: {len(self.problems)} problem(s) in {len(self.bad_subjects)} subject(s)"]
        lines += [f"  - {p}" for p in self.problems]
        return "\n".join(lines)


class PairValidationError(DataError):
    """A paired collection with problems and ``strict=true``: one line (the counts, the first
    problem, where the whole report is), the report itself in ``report_path``."""

    def __init__(self, report: PairReport, report_path: Path | None = None) -> None:
        self.report = report
        self.report_path = report_path
        where = f"; the full report: {report_path}" if report_path else ""
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        super().__init__(
            f"pair validation of {report.root}: {len(report.problems)} problem(s) in {len(report.bad_subjects)} subject(s), "
            f"first: {report.problems[0]}{more}{where}; fix these files, or pass data.strict=false to drop the subjects "
            "concerned and go on"
        )


def _failed_report_file(report: PairReport) -> Path:
    """A new file for the report of a refused collection, in the system's temporary folder.

    The run folder of a refused training is removed (an option mistake leaves nothing behind) and
    the data folder is the user's, never written: the report goes where neither is, under a name
    of its own (``mkstemp``: never an existing file).
    """
    import tempfile

    handle, name = tempfile.mkstemp(prefix="lfmri-pair-validation-", suffix=".txt")
    with os.fdopen(handle, "w") as file:
        file.write(report.format() + "\n")
    return Path(name)


def enforce(report: PairReport, strict: bool, report_file: str | Path | None = None) -> set[str]:
    """Stop on problems when ``strict`` (:class:`PairValidationError`, the report in a file of its
    own); otherwise return the subjects to drop (logged, and written to ``report_file``)."""
    if not report:
        return set()
    if strict:
        raise PairValidationError(report, _failed_report_file(report))
    if report_file:
        path = Path(report_file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(report.format() + "\n")
    log.warning("%s\ndata.strict=false: dropping subjects %s", report.format(), sorted(report.bad_subjects))
    return report.bad_subjects


# A low-field and a high-field scan of one subject cover the same head: the world-space boxes of
# the two scans (voxel corners through their affines, as nibabel reads them) must share at least
# this share of the smaller box. A high-field file 300 mm away, or from another session's origin,
# falls far below; on the default grids both fields of view are about 179 x 221 x 200 mm and
# overlap almost entirely.
MIN_OVERLAP = 0.5
# ... and look alike: the Pearson correlation of the low-field volume and the high-field volume
# averaged onto the low-field model grid (both normalised, the brain and its background) must reach
# this. The same head at 64 mT and 3T correlates well above it even at low SNR; another head, or a
# scan flipped or cut to another region, falls below.
MIN_CORRELATION = 0.5


def world_box(affine: np.ndarray, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The axis-aligned world box (lowest, highest corner, mm) around a volume's voxels."""
    corners = np.array(np.meshgrid(*[(-0.5, n - 0.5) for n in shape[:3]], indexing="ij")).reshape(3, -1)
    world = np.asarray(affine)[:3, :3] @ corners + np.asarray(affine)[:3, 3:4]
    return world.min(axis=1), world.max(axis=1)


def box_overlap(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> float:
    """Shared volume of two boxes as a share of the smaller one (0: apart, 1: one inside the other)."""
    sides = np.clip(np.minimum(a[1], b[1]) - np.maximum(a[0], b[0]), 0.0, None)
    smaller = min(float(np.prod(a[1] - a[0])), float(np.prod(b[1] - b[0])))
    return float(np.prod(sides)) / smaller if smaller > 0 else 0.0


def pair_overlap(lf_affine: np.ndarray, lf_shape: Sequence[int], hf_affine: np.ndarray, hf_shape: Sequence[int]) -> str | None:
    """Why two scans of one subject do not cover the same head, or ``None`` when they do."""
    lf_box, hf_box = world_box(lf_affine, lf_shape), world_box(hf_affine, hf_shape)
    share = box_overlap(lf_box, hf_box)
    if share >= MIN_OVERLAP:
        return None
    distance = float(np.linalg.norm((lf_box[0] + lf_box[1]) / 2 - (hf_box[0] + hf_box[1]) / 2))
    return (f"the low-field and high-field scans share {share:.0%} of their field of view (at least {MIN_OVERLAP:.0%} "
            f"needed; their centres are {distance:.0f} mm apart): not the same head in the same space (check the affines)")


def pair_similarity(lr: np.ndarray, hr: np.ndarray) -> str | None:
    """Why the low field ``lr`` (model LR grid) does not look like the high field ``hr`` (HR grid), or ``None``."""
    from scipy.ndimage import zoom

    hr_on_lr = zoom(np.asarray(hr, dtype=np.float32), [a / b for a, b in zip(lr.shape, hr.shape)], order=1, grid_mode=True,
                    mode="nearest")
    a, b = np.asarray(lr, dtype=np.float64).ravel(), hr_on_lr.astype(np.float64).ravel()
    if a.std() == 0 or b.std() == 0:
        return "one of the two fields is constant on the model grid"
    correlation = float(np.corrcoef(a, b)[0, 1])
    if correlation >= MIN_CORRELATION:
        return None
    return (f"the low-field and high-field volumes do not look alike (correlation {correlation:.2f} on the low-field grid, "
            f"at least {MIN_CORRELATION} needed): another subject's scan, or a different region or orientation?")
