"""The embedded default data: nilearn's MNI152 T1 template (ICBM 2009a), usable offline.

One brain only, so this is a demo split: contiguous val and test slabs of the same volume with
gaps around them, training on the rest. Numbers from it show that the pipeline works; they are
not a generalisation estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from lfmri.data.datamodule import NormalisedVolume, SliceDataModule
from lfmri.geometry.nifti import Volume, volume_from_image
from lfmri.data.splits import Segment, Split, slab_split

SUBJECT = "mni152"


def load_mni152(resolution: int = 1) -> Volume:
    """nilearn's MNI152 T1 template (skull-stripped) at 1 or 2 mm; ships inside nilearn."""
    from nilearn.datasets import load_mni152_template

    if resolution not in (1, 2):
        raise ValueError(f"data.resolution must be 1 or 2 (mm), got {resolution!r}")
    return volume_from_image(load_mni152_template(resolution=resolution), f"{SUBJECT}.nii.gz")


class MNI152DataModule(SliceDataModule):
    def __init__(
        self,
        resolution: int = 1,
        slabs: Mapping[str, Sequence[float]] | None = None,
        gap: int = 3,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        self.resolution = resolution
        self.slabs = dict(slabs) if slabs is not None else {"val": (0.25, 0.35), "test": (0.55, 0.7)}
        self.gap = int(gap)

    def load_volumes(self) -> list[Volume]:
        return [load_mni152(self.resolution)]

    def default_split(self, volumes: Mapping[str, NormalisedVolume]) -> Split:
        data = volumes[SUBJECT].volume.data
        full = self.selected_slices(data, Segment(SUBJECT, 0, data.shape[self.slice_axis]))
        return slab_split(SUBJECT, full, self.slabs, self.gap)

