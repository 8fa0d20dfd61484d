"""fastMRI brain HDF5 files as HR volumes (the de Leeuw den Bouter et al. 2022 setup).

Each ``.h5`` file is one subject: ``source=reconstruction_rss`` reads the stored root-sum-of-squares
reconstruction (slices, H, W); ``source=kspace`` reconstructs it from the multi-coil ``kspace``
(slices, coils, H, W): centred inverse FFT per coil, root-sum-of-squares over coils, centre crop to
``crop`` (fastMRI's 320 x 320 removes the readout oversampling). There is no geometry in these
files, so volumes get unit voxels. With ``degradation=kspace`` (hr_size 128, scale 2) this is the
paper's protocol: HR 128 x 128 by k-space cropping, LR = its central 64 x 64 plus complex noise.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch

from lfmri.data.datamodule import NormalisedVolume, SliceDataModule
from lfmri.geometry.nifti import NiftiError, Volume
from lfmri.degrade.kspace import center_crop_or_pad, ifft2c
from lfmri.data.splits import Split, subject_split

SOURCES = ("reconstruction_rss", "kspace")


def rss_from_kspace(kspace: np.ndarray) -> np.ndarray:
    """(slices, coils, H, W) complex k-space -> (slices, H, W) root-sum-of-squares magnitude."""
    coils = ifft2c(torch.from_numpy(np.ascontiguousarray(kspace)).to(torch.complex64))
    return coils.abs().square().sum(dim=1).sqrt().numpy()


def read_fastmri(path: str | Path, source: str = "reconstruction_rss", crop: Sequence[int] | None = (320, 320)) -> Volume:
    """One fastMRI file as a (H, W, slices) :class:`Volume`; errors name the file and the key."""
    import h5py

    if source not in SOURCES:
        raise ValueError(f"data.source must be one of {list(SOURCES)}, got {source!r}")
    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            if source not in f:
                raise NiftiError(path, f"has no {source!r} dataset (keys: {sorted(f.keys())}); try data.source=" +
                                 ("kspace" if source == "reconstruction_rss" else "reconstruction_rss"))
            raw = f[source][()]
    except OSError as err:
        raise NiftiError(path, f"is not a readable HDF5 file ({err})") from err
    if source == "kspace":
        if raw.ndim == 3:  # single-coil files: (slices, H, W)
            raw = raw[:, None]
        if raw.ndim != 4 or not np.iscomplexobj(raw):
            raise NiftiError(path, f"kspace has shape {raw.shape} ({raw.dtype}); expected complex (slices, coils, H, W)")
        images = rss_from_kspace(raw)
        if crop is not None:
            images = center_crop_or_pad(torch.from_numpy(images), tuple(int(n) for n in crop)).numpy()
    else:
        if raw.ndim != 3:
            raise NiftiError(path, f"reconstruction_rss has shape {raw.shape}; expected (slices, H, W)")
        images = raw
    data = np.ascontiguousarray(np.moveaxis(np.asarray(images, dtype=np.float32), 0, -1))
    if not np.all(np.isfinite(data)):
        raise NiftiError(path, f"{source} contains NaN/Inf values")
    return Volume(data=data, affine=np.eye(4), source=str(path))


class FastMRIDataModule(SliceDataModule):
    """fastMRI brain files under ``root`` matching ``pattern``, one subject each, split by subject."""

    def __init__(self, root: str, pattern: str = "*.h5", source: str = "reconstruction_rss",
                 crop: Sequence[int] | None = (320, 320), fractions: Sequence[float] = (0.8, 0.1, 0.1), **kwargs) -> None:
        super().__init__(**kwargs)
        if source not in SOURCES:
            raise ValueError(f"data.source must be one of {list(SOURCES)}, got {source!r}")
        self.root = Path(root).expanduser()
        self.pattern = pattern
        self.source = source
        self.crop = tuple(crop) if crop is not None else None
        self.fractions = tuple(fractions)

    def load_volumes(self) -> list[Volume]:
        paths = sorted(p for p in self.root.glob(self.pattern) if p.is_file())
        if not paths:
            raise FileNotFoundError(f"no fastMRI file matches {str(self.root / self.pattern)!r} (data.root, data.pattern)")
        return [read_fastmri(p, self.source, self.crop) for p in paths]

    def default_split(self, volumes: Mapping[str, NormalisedVolume]) -> Split:
        lengths = {name: nv.volume.data.shape[self.slice_axis] for name, nv in volumes.items()}
        return subject_split(lengths, self.fractions, self.seed)
