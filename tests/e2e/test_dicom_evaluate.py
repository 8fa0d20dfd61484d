"""``evaluate.py`` on a folder of DICOM series: each series is scored and written as NIfTI, a broken one only reported."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from tests.helpers.dicom import write_dicom_series
from tests.helpers.run import run_script
from tests.helpers.volumes import phantom

pytestmark = pytest.mark.e2e

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "checkpoint-main-b21863f.ckpt"
AFFINE = np.array([[0.0, -1.0, 0.0, 12.0], [-1.0, 0.0, 0.0, 30.0], [0.0, 0.0, 2.0, -9.0], [0.0, 0.0, 0.0, 1.0]])


def test_evaluate_reads_each_series_of_a_dicom_folder(tmp_path):
    study = tmp_path / "study"
    write_dicom_series(study, np.round(phantom((32, 32, 8))), AFFINE, series_number=2, description="T1", prefix="A")
    files = write_dicom_series(study, np.round(phantom((32, 32, 8), seed=1)), AFFINE, series_number=3, description="T2", prefix="B")
    files[4].unlink()  # series 3 misses a slice
    out = tmp_path / "out"
    proc = run_script("evaluate.py", f"ckpt_path={FIXTURE}", f"inputs={study}", f"output_dir={out}")
    assert proc.returncode == 1, proc.stderr[-3000:]  # one input failed; the other was evaluated
    assert f"{study} [series 3 'T2']: has slices 4.000 mm apart" in proc.stdout + proc.stderr
    with open(out / "metrics.csv") as f:
        assert {row["subject"] for row in csv.DictReader(f)} == {"study_S2_T1"}
    hr, sr = nib.load(out / "study_S2_T1_hr.nii.gz"), nib.load(out / "study_S2_T1_sr.nii.gz")
    assert sr.shape == hr.shape
    np.testing.assert_allclose(sr.affine, hr.affine, atol=1e-5)
    assert not list(out.glob("study_S3_T2_*"))
