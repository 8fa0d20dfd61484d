"""HR NIfTI volumes from a glob (e.g. IXI T1), split by subject with fractions and a seed."""

from __future__ import annotations

import glob
from collections.abc import Mapping, Sequence
from pathlib import Path

from lfmri.data.datamodule import NormalisedVolume, SliceDataModule
from lfmri.errors import ConfigError, MissingFileError
from lfmri.data.io import Volume, load_nifti
from lfmri.data.splits import Split, subject_split


def find_volumes(pattern: str) -> list[Path]:
    if not pattern:
        raise ConfigError("data.pattern is required for data=folder, e.g. data.pattern='/data/IXI-T1/*.nii.gz'")
    paths = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser()), recursive=True))
    paths = [p for p in paths if p.is_file()]
    if not paths:
        raise MissingFileError(f"data.pattern={pattern!r} matches no files")
    return paths


class FolderDataModule(SliceDataModule):
    def __init__(self, pattern: str, fractions: Sequence[float] = (0.8, 0.1, 0.1), **kwargs) -> None:
        super().__init__(**kwargs)
        self.pattern = pattern
        self.fractions = tuple(fractions)

    def load_volumes(self) -> list[Volume]:
        return [load_nifti(path) for path in find_volumes(self.pattern)]

    def default_split(self, volumes: Mapping[str, NormalisedVolume]) -> Split:
        lengths = {name: nv.volume.data.shape[self.slice_axis] for name, nv in volumes.items()}
        return subject_split(lengths, self.fractions, self.seed)
