"""``lfmri-predict`` on DICOM folders: a NIfTI SR per series, and a broken series stops only itself.

Uses the tiny x2 checkpoint of tests/fixtures (no training): its slice axis is the canonical S axis,
which an axial DICOM stack's slice direction becomes.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from lfmri.cli.predict import main
from tests.helpers.dicom import write_dicom_series
from tests.helpers.volumes import phantom

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "checkpoint-main-b21863f.ckpt"
# an axial stack as scanners store it: rows anterior to posterior, columns right to left, 0.9 x 1.1 mm pixels
AFFINE = np.array([[0.0, -1.1, 0.0, 12.0], [-0.9, 0.0, 0.0, 30.0], [0.0, 0.0, 3.0, -9.0], [0.0, 0.0, 0.0, 1.0]])


def test_predict_writes_an_sr_nifti_per_dicom_series_and_reports_a_broken_one(tmp_path, capsys):
    scan = tmp_path / "patient01_t1"
    write_dicom_series(scan, np.round(phantom((24, 20, 6))), AFFINE, intercept=-10.0)
    broken = tmp_path / "patient02_t1"
    files = write_dicom_series(broken, np.round(phantom((24, 20, 6), seed=1)), AFFINE)
    files[2].unlink()  # a missing slice
    out = tmp_path / "out"
    status = main([f"ckpt_path={FIXTURE}", f"inputs=[{scan},{broken}]", f"output_dir={out}",
                   "device=cpu", "preview=false", "progress=false"])
    assert status == 1  # one input failed, the other was still written
    err = capsys.readouterr().err
    assert f"{broken}: has slices 6.000 mm apart" in err and "slice(s) missing" in err
    sr = nib.load(out / "patient01_t1_sr.nii.gz")
    # written in the series' own voxel order (rows, columns, slices): in-plane doubled, slices kept
    assert sr.shape == (48, 40, 6)
    np.testing.assert_allclose(sr.header.get_zooms(), (0.45, 0.55, 3.0), atol=1e-5)
    assert nib.aff2axcodes(sr.affine)[:2] == nib.aff2axcodes(AFFINE)[:2]
    assert np.isfinite(sr.get_fdata()).all() and sr.get_fdata().max() > 0
    assert sorted(p.name for p in out.iterdir()) == ["patient01_t1_sr.nii.gz"]
