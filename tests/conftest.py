"""Shared fixtures: small synthetic head-like NIfTI volumes written to tmp_path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import lfmri.training.resolvers  # noqa: F401  the configs tests compose use ${lfmri.multiple:...}

from tests.helpers.run import ROOT, run_script  # noqa: F401  (tests import these from conftest until moved)
from tests.helpers.volumes import phantom, write_phantom, write_phantom_volumes  # noqa: F401

# tests never touch the network: timm/huggingface look only in their local cache
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def phantom_dir(tmp_path: Path) -> Path:
    """Four small subjects, one stored in a non-canonical (P, S, R) orientation."""
    folder = tmp_path / "volumes"
    for i in range(3):
        write_phantom(folder / f"sub-{i:02d}.nii.gz", seed=i)
    ornt_affine = np.array([[0, 0, 1.5, -10], [-1.0, 0, 0, 20], [0, 1.0, 0, -5], [0, 0, 0, 1]])
    write_phantom(folder / "sub-03.nii.gz", shape=(48, 24, 40), seed=3, affine=ornt_affine)
    return folder


@pytest.fixture(scope="session")
def mni_volume() -> np.ndarray:
    """nilearn's MNI152 T1 (real anatomy, ships with nilearn), scaled to [0, 1] by its 99th percentile."""
    from lfmri.data.mni152 import load_mni152

    data = load_mni152(1).data
    return np.clip(data / np.percentile(data, 99), 0, 1)


@pytest.fixture
def mni_slice(mni_volume):
    import torch

    return torch.from_numpy(np.ascontiguousarray(mni_volume[:, :, 90]))
