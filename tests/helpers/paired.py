"""Generated paired low-field/high-field collections in both layouts, with the faults users meet,
and the ``data=paired_lowfield`` data module on their grids."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from tests.helpers.volumes import phantom

LF_SHAPE, LF_SPACING = (12, 14, 6), (1.6, 1.6, 5.0)
HF_SHAPE, HF_SPACING = (19, 22, 30), (1.0, 1.0, 1.0)
# small target grids for train.py runs on these fixtures (sagittal HR slices 22 x 30)
GRID_OVERRIDES = [
    "data.lf_shape=[12,14,6]", "data.lf_spacing=[1.6,1.6,5.0]",
    "data.hf_shape=[19,22,30]", "data.hf_spacing=[1.0,1.0,1.0]",
    "data.patch_size=8", "data.batch_size=4", "data.eval_batch_size=4", "data.num_workers=0",
    "data.fractions=[0.5,0.25,0.25]",
]


def _save(path: Path, data: np.ndarray, spacing) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data.astype(np.float32), np.diag([*spacing, 1.0])), str(path))
    return path


def pair(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The same head on the low-field and the high-field grid (low field: darker and noisy)."""
    hf = phantom(HF_SHAPE, seed)
    lf = phantom(LF_SHAPE, seed) ** 1.2
    lf = lf + np.random.default_rng(seed).normal(0, 20, LF_SHAPE)
    return np.abs(lf), hf


def write_volume_layout(root: Path, subjects=("s01", "s02", "s03", "s04")) -> Path:
    for i, name in enumerate(subjects):
        lf, hf = pair(i)
        _save(root / "lf" / f"{name}.nii.gz", lf, LF_SPACING)
        _save(root / "hf" / f"{name}.nii.gz", hf, HF_SPACING)
    return root


def write_slice_layout(root: Path, subjects=("s01", "s02", "s03", "s04")) -> Path:
    """One file per axial slice, ``{subject}_{index}.nii.gz`` with unpadded indices (listing order
    is 0, 1, 10, 11, ..., 2: shuffled) and a singleton depth dimension."""
    for i, name in enumerate(subjects):
        for field, data, spacing in zip(("lf", "hf"), pair(i), (LF_SPACING, HF_SPACING)):
            for k in range(data.shape[2]):
                _save(root / field / f"{name}_{k}.nii.gz", data[:, :, k : k + 1], spacing)
    return root


def add_volume_faults(root: Path) -> dict[str, str]:
    """One subject with low field only, a NaN volume, an unreadable file; subject -> fault."""
    lf, hf = pair(7)
    _save(root / "lf" / "only_lf.nii.gz", lf, LF_SPACING)
    bad = hf.copy()
    bad[3, 4, 5] = np.nan
    _save(root / "lf" / "nan_sub.nii.gz", lf, LF_SPACING)
    _save(root / "hf" / "nan_sub.nii.gz", bad, HF_SPACING)
    _save(root / "lf" / "broken.nii.gz", lf, LF_SPACING)
    (root / "hf" / "broken.nii.gz").write_bytes(b"\x1f\x8b this is not a gzip stream")
    return {"only_lf": "present in lf only", "nan_sub": "NaN/Inf", "broken": "not a readable"}


def add_slice_faults(root: Path) -> dict[str, str]:
    """Missing slice, NaN slice, a slice of another shape, a duplicated index, hf-only subject."""
    for name in ("gap", "nan", "odd", "dup"):
        write_slice_layout(root, subjects=(name,))
    (root / "hf" / "gap_4.nii.gz").unlink()
    nan = nib.load(str(root / "lf" / "nan_2.nii.gz"))
    data = np.asarray(nan.get_fdata()).copy()
    data[1, 1, 0] = np.nan
    _save(root / "lf" / "nan_2.nii.gz", data, LF_SPACING)
    _save(root / "hf" / "odd_3.nii.gz", np.ones((10, 10, 1)), HF_SPACING)
    _save(root / "hf" / "dup_05.nii.gz", np.ones((19, 22, 1)), HF_SPACING)  # index 5 twice
    _, hf = pair(9)
    for k in range(hf.shape[2]):
        _save(root / "hf" / f"hfonly_{k}.nii.gz", hf[:, :, k : k + 1], HF_SPACING)
    return {"gap": "missing slice indices [4]", "nan": "NaN/Inf", "odd": "different shapes", "dup": "slice index 5 appears 2 times",
            "hfonly": "present in hf only"}


def datamodule(root, layout="volumes", degradation=None, input_mode="lr", **kwargs):
    """A :class:`~lfmri.data.paired_lowfield.PairedLowFieldDataModule` on the fixtures' grids (``kwargs`` override)."""
    from lfmri.data.paired_lowfield import PairedLowFieldDataModule
    from lfmri.degrade.degradations import KSpaceDegradation

    settings = dict(lf_shape=LF_SHAPE, lf_spacing=LF_SPACING, hf_shape=HF_SHAPE, hf_spacing=HF_SPACING, patch_size=8,
                    batch_size=4, eval_batch_size=4, fractions=(0.5, 0.25, 0.25), num_workers=0)
    settings.update(kwargs)
    return PairedLowFieldDataModule(root=str(root) if root else None, layout=layout, degradation=degradation or KSpaceDegradation(),
                                    input_mode=input_mode, **settings)
