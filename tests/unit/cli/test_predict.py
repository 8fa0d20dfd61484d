"""``lfmri.cli.predict.main``: one bad scan never stops the others; nothing partial is left behind."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from lfmri.cli.predict import main as predict_main
from lfmri.geometry import nifti as io
from tests.helpers.bad_volumes import BAD, SHAPE
from tests.helpers.volumes import outputs, write_phantom


@pytest.mark.parametrize("kind", sorted(BAD))
def test_predict_runs_every_other_volume_and_exits_1(tmp_path, bicubic_checkpoint, capsys, kind):
    make, reason = BAD[kind]
    good1, good2 = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE), write_phantom(tmp_path / "c.nii.gz", shape=SHAPE, seed=1)
    bad = make(tmp_path / ("b.nii" if kind == "huge" else "b.nii.gz"))
    out = tmp_path / "out"
    status = predict_main([f"ckpt_path={bicubic_checkpoint}", f"inputs=[{good1},{bad},{good2}]", f"output_dir={out}", "progress=false"])
    assert status == 1
    assert outputs(out) == ["a_sr.nii.gz", "a_views.png", "c_sr.nii.gz", "c_views.png"]
    err = capsys.readouterr().err
    assert f"{bad}:" in err and reason in err and "Traceback" not in err


def test_full_disk_and_unwritable_folder_leave_no_partial_outputs_and_the_rerun_works(tmp_path, bicubic_checkpoint, capsys, monkeypatch):
    scans = [write_phantom(tmp_path / f"{n}.nii.gz", shape=SHAPE, seed=i) for i, n in enumerate("abc")]
    out = tmp_path / "out"
    real_save = io.save_nifti

    def full_disk_for_b(path, *args, **kwargs):
        if "b_sr" in Path(path).name:  # after b's preview PNG was written
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr("lfmri.inference.volume.save_nifti", full_disk_for_b)
    args = [f"ckpt_path={bicubic_checkpoint}", f"inputs=[{','.join(map(str, scans))}]", f"output_dir={out}", "progress=false"]
    assert predict_main(args) == 1
    assert outputs(out) == ["a_sr.nii.gz", "a_views.png", "c_sr.nii.gz", "c_views.png"]  # no orphan b_views.png
    assert "b.nii.gz: OSError: [Errno 28] No space left on device" in capsys.readouterr().err
    monkeypatch.setattr("lfmri.inference.volume.save_nifti", real_save)
    assert predict_main([*args[:1], f"inputs=[{scans[1]}]", *args[2:]]) == 0  # nothing blocks the rerun
    # an output folder that cannot be created: each volume says so, exit 1
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert predict_main([*args[:2], f"output_dir={blocker}/out", "progress=false"]) == 1
    assert "NotADirectoryError" in capsys.readouterr().err and blocker.read_text() == "x"


def test_predict_says_where_and_how_it_runs_and_estimates_the_rest(tmp_path, bicubic_checkpoint, caplog):
    scans = [write_phantom(tmp_path / f"{n}.nii.gz", shape=SHAPE, seed=i) for i, n in enumerate("ab")]
    with caplog.at_level("INFO", logger="lfmri.cli.predict"):
        assert predict_main([f"ckpt_path={bicubic_checkpoint}", f"inputs=[{scans[0]},{scans[1]}]", f"output_dir={tmp_path / 'out'}",
                             "progress=false", "preview=false", "device=cpu", "threads=1"]) == 0
    assert "predicting 2 volume(s) with" in caplog.text and "on cpu: precision fp32 (precision=auto), backend torch, 1 CPU thread" in caplog.text
    assert "1/2 volumes in " in caplog.text and "s left" in caplog.text
