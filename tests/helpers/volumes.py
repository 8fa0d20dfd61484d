"""Generated volumes for tests: small head-like phantoms written as NIfTI (no real data needed)."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np


def phantom(shape=(40, 48, 24), seed: int = 0) -> np.ndarray:
    """An ellipsoidal 'head' with a darker core, bright rim and smooth texture; zero background."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, n) for n in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    r = np.sqrt((x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.9) ** 2)
    core = np.sqrt((x / 0.25) ** 2 + (y / 0.3) ** 2 + (z / 0.5) ** 2)
    phase = rng.uniform(0, 2 * np.pi, 3)
    texture = 0.15 * np.sin(9 * x + phase[0]) * np.sin(7 * y + phase[1]) * np.cos(5 * z + phase[2])
    vol = np.where(r < 1, 0.7 + texture, 0.0) + np.where((r > 0.85) & (r < 1), 0.25, 0) - np.where(core < 1, 0.4, 0)
    return np.clip(vol, 0, None).astype(np.float32) * 1000


def write_phantom(path: Path, shape=(40, 48, 24), seed: int = 0, affine=None, dtype=np.float32) -> Path:
    affine = np.diag([1.0, 1.0, 1.5, 1.0]) if affine is None else affine
    img = nib.Nifti1Image(phantom(shape, seed).astype(dtype), affine)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(img, str(path))
    return path


def write_phantom_volumes(folder: Path, count: int = 4) -> Path:
    """``count`` small canonical subjects ``sub-00.nii.gz``... in ``folder`` (the end-to-end runs' data)."""
    for i in range(count):
        write_phantom(folder / f"sub-{i:02d}.nii.gz", seed=i)
    return folder


def write_phantom_dir(folder: Path) -> Path:
    """Four small subjects in ``folder``, ``sub-03`` stored in a non-canonical (P, S, R) orientation."""
    for i in range(3):
        write_phantom(folder / f"sub-{i:02d}.nii.gz", seed=i)
    ornt_affine = np.array([[0, 0, 1.5, -10], [-1.0, 0, 0, 20], [0, 1.0, 0, -5], [0, 0, 0, 1]])
    write_phantom(folder / "sub-03.nii.gz", shape=(48, 24, 40), seed=3, affine=ornt_affine)
    return folder


def oblique_affine() -> np.ndarray:
    """A rotated, non-canonical (mostly P, S, R) affine with anisotropic voxels."""
    angle = np.deg2rad(17)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    axes = np.array([[0, 0, 1.0], [-1.0, 0, 0], [0, 1.0, 0]]) @ np.diag([1.2, 1.0, 3.0])
    affine = np.eye(4)
    affine[:3, :3] = rot @ axes
    affine[:3, 3] = [12.0, -30.0, 7.5]
    return affine


def head_slices(n: int = 6, size: int = 64):
    """``n`` axial phantom slices of ``size`` x ``size`` in [0, 1], as a (n, size, size) tensor."""
    import torch

    vol = torch.from_numpy(phantom((size, size, n), seed=3) / 1000.0).permute(2, 0, 1).contiguous()
    return vol.clamp(0, 1)


def outputs(folder: Path) -> list[str]:
    """The names of the files in ``folder``, sorted (none when it does not exist)."""
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def write_lesion_phantom(path: Path, shape=(40, 48, 24), brightness: float = 2.5) -> tuple[Path, float, tuple[slice, ...]]:
    """A phantom with an enhancing 'lesion': a 6 x 6 x 4 voxel block ``brightness`` times the phantom's
    maximum, far above its 99th percentile (144 voxels, 0.3 % of the volume). Returns the path, the
    lesion's intensity and its voxels."""
    data = phantom(shape)
    value = float(brightness * data.max())
    lesion = (slice(shape[0] // 2 + 4, shape[0] // 2 + 10), slice(shape[1] // 2 - 3, shape[1] // 2 + 3),
              slice(shape[2] // 2 - 2, shape[2] // 2 + 2))
    data[lesion] = value
    assert value > np.percentile(data, 99.5)
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, np.diag([1.0, 1.0, 1.5, 1.0])), str(path))
    return path, value, lesion
