"""fastMRI HDF5: the reader (RSS and k-space) and the data module's de Leeuw pairs."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from lfmri.data.fastmri import FastMRIDataModule, read_fastmri
from lfmri.degrade.degradations import KSpaceDegradation
from lfmri.degrade.kspace import fft2c
from lfmri.geometry.nifti import NiftiError
from tests.helpers.volumes import phantom


def write_fastmri(path: Path, seed: int, coils: int = 4, shape=(40, 36), crop=(32, 32)) -> np.ndarray:
    """A multi-coil fastMRI-style file: smooth coil sensitivities times a head, its k-space and RSS."""
    head = phantom((*shape, 3), seed).transpose(2, 0, 1) / 1000  # (slices, H, W)
    yy = np.linspace(-1, 1, shape[0])[:, None]
    sens = np.stack([np.exp(-((yy - np.cos(c)) ** 2) - (np.linspace(-1, 1, shape[1])[None] - np.sin(c)) ** 2) for c in range(coils)])
    coil_images = torch.from_numpy(head[:, None] * sens[None]).to(torch.complex64)
    kspace = fft2c(coil_images).numpy()
    rss = np.sqrt((np.abs(coil_images.numpy()) ** 2).sum(1))
    h0, w0 = (shape[0] - crop[0]) // 2, (shape[1] - crop[1]) // 2
    recon = rss[:, h0 : h0 + crop[0], w0 : w0 + crop[1]].astype(np.float32)
    with h5py.File(path, "w") as f:
        f["kspace"] = kspace
        f["reconstruction_rss"] = recon
    return recon


def test_fastmri_reader_from_rss_and_from_kspace(tmp_path):
    recon = write_fastmri(tmp_path / "file_brain_001.h5", seed=0)
    stored = read_fastmri(tmp_path / "file_brain_001.h5")
    assert stored.data.shape == (32, 32, 3) and np.allclose(stored.data, recon.transpose(1, 2, 0))
    combined = read_fastmri(tmp_path / "file_brain_001.h5", source="kspace", crop=(32, 32))
    assert np.allclose(combined.data, stored.data, atol=1e-4 * recon.max())
    with h5py.File(tmp_path / "no_rss.h5", "w") as f:
        f["kspace"] = np.zeros((1, 1, 4, 4), np.complex64)
    with pytest.raises(NiftiError, match=r"no_rss.h5: has no 'reconstruction_rss' dataset.*data.source=kspace"):
        read_fastmri(tmp_path / "no_rss.h5")


def test_fastmri_datamodule_gives_the_de_leeuw_pairs(tmp_path):
    for i in range(3):
        write_fastmri(tmp_path / f"file_brain_{i:03d}.h5", seed=i, shape=(160, 144), crop=(128, 128))
    dm = FastMRIDataModule(root=str(tmp_path), source="kspace", crop=(128, 128), degradation=KSpaceDegradation(),
                           fractions=(1, 1, 1), batch_size=2, patch_size=32)
    dm.setup("fit")
    assert len(dm.volumes) == 3 and {seg.subject for segs in dm.split.values() for seg in segs} == set(dm.volumes)
    batch = next(iter(dm.val_dataloader()))
    assert batch["hr"].shape[-2:] == (128, 128) and batch["lr"].shape[-2:] == (64, 64)
