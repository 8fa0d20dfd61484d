"""Predict as a user runs it: ``python -m lfmri.cli.predict`` on a checkpoint train.py wrote (a folder
of scans, a bad input, overwrite), and ``workers=2`` (two worker processes) against ``workers=1``."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from lfmri.checkpoints.load import METADATA_KEY, load_checkpoint
from lfmri.cli.predict import run_predict
from tests.helpers.bad_volumes import datatype_zero
from tests.helpers.checkpoints import make_checkpoint
from tests.helpers.predict import TINY_MODEL, predict_config
from tests.helpers.run import TINY, check, run_script
from tests.helpers.volumes import write_phantom, write_phantom_volumes

pytestmark = pytest.mark.e2e


def test_command_line_on_a_trained_checkpoint_folder_of_scans_bad_inputs_and_overwrite(tmp_path):
    write_phantom_volumes(tmp_path / "volumes")
    run_dir = tmp_path / "run"
    check(run_script("train.py", *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}"))
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    card = load_checkpoint(ckpt)[METADATA_KEY]["card"]
    assert {"test/psnr", "test/ssim"} <= set(card["test_metrics"]) and card["slice_axis"] == 2
    assert card["data"]["percentiles"] == card["percentiles"] and card["scale"] == 2

    scans = tmp_path / "scans"
    write_phantom(scans / "a.nii.gz", shape=(32, 30, 5), seed=7)
    write_phantom(scans / "b.nii.gz", shape=(26, 34, 3), seed=8)
    (scans / "c.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "pred"
    args = ["-m", "lfmri.cli.predict", f"ckpt_path={ckpt}", f"inputs=[{scans}]", f"output_dir={out}", "progress=false"]
    proc = run_script(*args)
    assert proc.returncode == 1 and "c.nii.gz" in proc.stderr
    assert nib.load(out / "a_sr.nii.gz").shape == (64, 60, 5) and nib.load(out / "b_sr.nii.gz").shape == (52, 68, 3)
    before = (out / "a_sr.nii.gz").read_bytes()
    proc = run_script(*args[:3], f"inputs=[{scans / 'a.nii.gz'}]", *args[4:])
    assert proc.returncode == 2 and "overwrite=true" in proc.stderr  # existing outputs: the user's choice, exit 2
    assert (out / "a_sr.nii.gz").read_bytes() == before
    check(run_script(*args[:3], f"inputs=[{scans / 'a.nii.gz'}]", *args[4:], "overwrite=true"))


def test_predict_workers_give_the_single_process_outputs(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    inputs = [write_phantom(tmp_path / f"in/s{i}.nii.gz", shape=(24, 28, 6), seed=i) for i in range(3)]
    bad = datatype_zero(tmp_path / "in/bad.nii.gz")  # its reader's HeaderDataError used to stop the batch
    outputs = {}
    for workers in (1, 2):
        cfg = predict_config(tmp_path, ckpt, *inputs[:2], bad, inputs[2], workers=workers, threads=1, preview=False)
        cfg.output_dir = str(tmp_path / f"out{workers}")
        done, failed = run_predict(cfg)
        assert list(failed) == [str(bad)] and "data code 0" in failed[str(bad)] and len(done) == 3
        outputs[workers] = [np.asarray(nib.load(done[str(p)]["sr"]).dataobj) for p in inputs]
    for one, two in zip(outputs[1], outputs[2]):
        assert np.array_equal(one, two)
