"""HR NIfTI volumes from one or several globs (sites, contrasts), split by subject.

The split comes from fractions and a seed, or from explicit subject lists (``data.subjects``),
which is how a report keeps chosen subjects, e.g. a whole site, unseen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from lfmri.data.datamodule import NormalisedVolume, SliceDataModule
from lfmri.geometry.inputs import found_volumes
from lfmri.geometry.nifti import Volume, glob_files, load_nifti
from lfmri.errors import ConfigError, MissingFileError
from lfmri.data.splits import Split, explicit_split, subject_split


def find_volumes(pattern: str | Sequence[str]) -> list[Path]:
    """Files matched by a glob or a list of globs (each must match something), sorted, unique."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern or [])
    if not patterns or not all(patterns):
        raise ConfigError(
            "data.pattern is required for data=folder, e.g. data.pattern='/data/IXI-T1/*.nii.gz' "
            "or a list: data.pattern='[/data/siteA/*.nii.gz,/data/siteB/*.nii.gz]'"
        )
    paths: set[Path] = set()
    for one in patterns:
        matched = glob_files(one)
        if not matched:
            raise MissingFileError(f"data.pattern={one!r} matches no files; check the path (quote the glob)")
        # as predict and evaluate do: lfmri's own outputs (NAME_sr.nii.gz, by their header's provenance)
        # and the temporaries of an interrupted write are no training scans, also under ``**``
        found = found_volumes(matched, volumes_only=False)
        if not found:
            raise MissingFileError(f"data.pattern={one!r} matches only outputs of lfmri or temporary files "
                                   f"({', '.join(p.name for p in matched[:3])}{' ...' if len(matched) > 3 else ''}), no scans")
        paths.update(found)
    return sorted(paths)


class FolderDataModule(SliceDataModule):
    """HR volumes from ``pattern`` (a glob or a list of globs), degraded on the fly.

    Args:
        pattern: glob, or list of globs, of NIfTI volumes (one subject per file).
        fractions: (train, val, test) shares of subjects for a seeded random split.
        subjects: explicit split ``{train: [...], val: [...], test: [...]}`` by subject name (the
            file name without extension); ``train`` defaults to every subject not named. Takes
            precedence over ``fractions``.
        **kwargs: the options of :class:`~lfmri.data.datamodule.SliceDataModule`.
    """

    def __init__(
        self,
        pattern: str | Sequence[str],
        fractions: Sequence[float] = (0.8, 0.1, 0.1),
        subjects: Mapping[str, Sequence[str]] | None = None,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.pattern = pattern if isinstance(pattern, str) or pattern is None else list(pattern)
        self.fractions = tuple(fractions)
        self.subjects = {k: list(v or []) for k, v in subjects.items()} if subjects else None

    def load_volumes(self) -> list[Volume]:
        return [load_nifti(path) for path in find_volumes(self.pattern)]

    def default_split(self, volumes: Mapping[str, NormalisedVolume]) -> Split:
        lengths = {name: nv.volume.data.shape[self.slice_axis] for name, nv in volumes.items()}
        if self.subjects:
            return explicit_split(lengths, self.subjects)
        return subject_split(lengths, self.fractions, self.seed)
