"""A degradation added as one class + one YAML gets the same output grid from evaluate and predict.

evaluate.py degrades an HR volume and writes the SR on the grid of the prepared HR target; predict
reads that LR volume as a scan and must place its SR on the very same grid. Both go through
lfmri.geometry.affines.output_affines; this checks it with a degradation whose LR grid is neither
of the stock ones (tests/helpers/degradations.py: decimation, LR pixel j on HR pixel 2j).
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from tests.helpers.run import ROOT, TINY, check, run_script
from tests.helpers.volumes import write_phantom

pytestmark = pytest.mark.e2e

SEARCHPATH = f"hydra.searchpath=[file://{ROOT}/tests/helpers/conf]"


def test_evaluate_and_predict_place_a_new_degradation_identically(tmp_path):
    volumes = tmp_path / "volumes"
    for i in range(4):
        write_phantom(volumes / f"sub-{i:02d}.nii.gz", seed=i)
    run_dir = tmp_path / "run"
    check(run_script("train.py", *TINY, "degradation=decimate", SEARCHPATH, f"data.pattern={volumes}/*.nii.gz",
                     "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}"))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    trust = "trust_targets=[tests.helpers]"  # the class lives outside lfmri: the user trusts it by name
    scan = tmp_path / "hr" / "subject.nii.gz"
    write_phantom(scan, shape=(44, 40, 12), seed=7, affine=np.array([[0.9, 0, 0, -20], [0, 1.1, 0, -22], [0, 0, 3.0, -15], [0, 0, 0, 1]]))
    evaluated = tmp_path / "evaluated"
    check(run_script("evaluate.py", f"ckpt_path={ckpt}", f"inputs={scan}", f"output_dir={evaluated}", trust,
                     f"hydra.run.dir={tmp_path}/eval_run"))
    predicted = tmp_path / "predicted"
    check(run_script("-m", "lfmri.cli.predict", f"ckpt_path={ckpt}", f"inputs={evaluated}/subject_lr.nii.gz",
                     f"output_dir={predicted}", trust, "preview=false"))
    sr_evaluate = nib.load(evaluated / "subject_sr.nii.gz")
    sr_predict = nib.load(predicted / "subject_lr_sr.nii.gz")
    assert sr_evaluate.shape == sr_predict.shape
    np.testing.assert_allclose(sr_predict.affine, sr_evaluate.affine, atol=1e-6)
    # and the grid is the decimation's: LR voxel (0, 0) sits on SR voxel (0, 0), not half a voxel off
    lr = nib.load(evaluated / "subject_lr.nii.gz")
    np.testing.assert_allclose(lr.affine[:3, 3], sr_evaluate.affine[:3, 3], atol=1e-6)
