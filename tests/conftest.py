"""Fixtures every test folder can use: small synthetic head-like NIfTI volumes and real anatomy.

What tests share beyond fixtures lives in ``tests/helpers`` (builders, tiny configs, the one config
composer); test modules import from there, never from each other or from this file.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from tests.helpers.volumes import write_phantom_dir

# tests never touch the network: timm/huggingface look only in their local cache
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_collection_modifyitems(config, items):
    """Unit tests first, end-to-end runs after (stable within each): a broken unit shows in the first
    minutes, not after the trainings. ``make test`` runs the modules on two workers (pytest-xdist,
    ``--dist loadfile``: a module and its module-scoped trained fixtures stay on one worker), which
    take modules in this order."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is not None)


@pytest.fixture
def phantom_dir(tmp_path: Path) -> Path:
    """Four small subjects, one stored in a non-canonical (P, S, R) orientation."""
    return write_phantom_dir(tmp_path / "volumes")


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


@pytest.fixture(scope="module")
def bicubic_checkpoint(tmp_path_factory) -> Path:
    """An untrained (bicubic) checkpoint as train.py writes it: the cheapest model predict and evaluate load."""
    from tests.helpers.checkpoints import make_checkpoint

    root = tmp_path_factory.mktemp("ckpt")
    return make_checkpoint(root / "bicubic.ckpt", "model=bicubic", "degradation=bicubic", "data=folder", "data.pattern=x")


@pytest.fixture
def sigint_raises():
    """SIGINT raises KeyboardInterrupt in this test, as Ctrl-C does on a terminal, even when the suite was
    started in the background (``nohup``, ``cmd &`` in a script): such a process starts with SIGINT
    ignored, Python keeps it so, and a test of the Ctrl-C path would see nothing happen."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)
