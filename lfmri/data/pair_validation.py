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
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

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
