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
    # an output folder that cannot be created
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(SystemExit) as stopped:  # refused before any work, one line (was a bare errno per volume, exit 1)
        predict_main([*args[:2], f"output_dir={blocker}/out", "progress=false"])
    assert stopped.value.code == 2 and f"{blocker} is a file, not a folder" in capsys.readouterr().err and blocker.read_text() == "x"


def _tiny_checkpoint(path: Path, change=None) -> Path:
    """The tiny SRDenseNet as train.py writes it; ``change(checkpoint)`` edits it first."""
    import torch

    from tests.helpers.checkpoints import make_checkpoint
    from tests.helpers.predict import TINY_MODEL

    make_checkpoint(path, *TINY_MODEL)
    if change is not None:
        checkpoint = torch.load(path, weights_only=True)
        change(checkpoint)
        torch.save(checkpoint, path)
    return path


def _nan_weights(checkpoint):
    key = next(iter(checkpoint["state_dict"]))
    checkpoint["state_dict"][key][...] = float("nan")


def _missing_weights(checkpoint):
    checkpoint["state_dict"].pop(next(iter(checkpoint["state_dict"])))


def _other_shape(checkpoint):
    key = next(k for k, v in checkpoint["state_dict"].items() if v.ndim == 4)
    checkpoint["state_dict"][key] = checkpoint["state_dict"][key][:1].clone()


def _unknown_keyword(checkpoint):
    checkpoint["lfmri"]["config"]["model"]["layers_per_bock"] = 3


def _scale_mismatch(checkpoint):
    checkpoint["lfmri"]["config"]["degradation"].update(scale=3, hr_size=[96, 96])


CHECKPOINT_PROBLEMS = {"nan": (_nan_weights, "NaN/Inf"), "missing": (_missing_weights, "do not fit"),
                       "shape": (_other_shape, "do not fit"), "keyword": (_unknown_keyword, "cannot build"),
                       "scale": (_scale_mismatch, "x2 but the degradation is x3")}


@pytest.mark.parametrize("kind", sorted(CHECKPOINT_PROBLEMS))
def test_unusable_checkpoints_are_one_line_naming_the_file(tmp_path, capsys, kind):
    """NaN weights (a diverged last.ckpt) used to write an all-NaN volume with exit 0; the others were tracebacks."""
    change, reason = CHECKPOINT_PROBLEMS[kind]
    ckpt = _tiny_checkpoint(tmp_path / "m.ckpt", change)
    scan = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE)
    with pytest.raises(SystemExit) as stopped:
        predict_main([f"ckpt_path={ckpt}", f"inputs={scan}", f"output_dir={tmp_path / 'out'}", "progress=false"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and f"{ckpt}:" in err and reason in err and "Traceback" not in err, err
    assert not (tmp_path / "out").exists()


def test_options_that_cannot_work_are_refused_before_any_work(tmp_path, capsys):
    ckpt = _tiny_checkpoint(tmp_path / "m.ckpt")
    scan = write_phantom(tmp_path / "a.nii.gz", shape=(40, 40, 2))
    blocker = tmp_path / "file"
    blocker.write_text("x")
    base = [f"ckpt_path={ckpt}", f"inputs={scan}", "progress=false"]
    cases = {
        "tile_overlap": ["tile_size=16", "tile_overlap=16", f"output_dir={tmp_path / 'o1'}"],  # used to fail per input, exit 1
        "an existing file": [f"output_dir={blocker}"],
        "a file, not": [f"output_dir={blocker}/sub"],
        "onnx_path": ["backend=onnxruntime", f"onnx_path={tmp_path / 'missing.onnx'}", f"output_dir={tmp_path / 'o2'}"],
        "tile_size=8 is smaller than what SRDenseNet sees": ["tile_size=8", "tile_overlap=0", f"output_dir={tmp_path / 'o3'}"],
    }
    for reason, options in cases.items():
        with pytest.raises(SystemExit) as stopped:
            predict_main([*base, *options])
        err = capsys.readouterr().err
        assert stopped.value.code == 2 and reason in err and "Traceback" not in err, err
    assert blocker.read_text() == "x" and not [p for p in tmp_path.iterdir() if p.name.startswith("o")]
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"not onnx")
    with pytest.raises(SystemExit) as stopped:
        predict_main([*base, "backend=onnxruntime", f"onnx_path={corrupt}", f"output_dir={tmp_path / 'o4'}"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "is not an ONNX export" in err and "Traceback" not in err, err


def test_a_second_run_into_the_same_folder_never_replaces_the_first_ones_files(tmp_path, bicubic_checkpoint, capsys, monkeypatch):
    """Both runs pass the check before their work; the first finishes while the second computes. The
    second used to replace the first's file and exit 0."""
    scan = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE)
    out = tmp_path / "out"
    real_save = io.save_nifti

    def first_run_finishes_meanwhile(path, *args, **kwargs):
        (out / "a_sr.nii.gz").write_bytes(b"the first run's result")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr("lfmri.inference.volume.save_nifti", first_run_finishes_meanwhile)
    status = predict_main([f"ckpt_path={bicubic_checkpoint}", f"inputs={scan}", f"output_dir={out}", "progress=false"])
    err = capsys.readouterr().err
    assert status == 2 and "a_sr.nii.gz appeared while this run was writing it" in err and "not written" in err
    assert (out / "a_sr.nii.gz").read_bytes() == b"the first run's result"
    assert outputs(out) == ["a_sr.nii.gz"]  # this run's preview was taken back, no temporaries


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_a_signal_mid_write_leaves_no_temporaries_and_ends_in_one_line(tmp_path, bicubic_checkpoint, capsys, monkeypatch, signum, sigint_raises):
    """SIGTERM used to leave hidden temporary NIfTI files forever; Ctrl-C printed a traceback."""
    import os
    import signal

    scans = [write_phantom(tmp_path / f"{n}.nii.gz", shape=SHAPE, seed=i) for i, n in enumerate("ab")]
    out = tmp_path / "out"
    real_save = io.save_nifti

    def signal_during_b(path, *args, **kwargs):
        if "b_sr" in Path(path).name:  # b's preview is staged, its volume half written
            Path(path).write_bytes(b"half")
            os.kill(os.getpid(), getattr(signal, signum))
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr("lfmri.inference.volume.save_nifti", signal_during_b)
    status = predict_main([f"ckpt_path={bicubic_checkpoint}", f"inputs=[{scans[0]},{scans[1]}]", f"output_dir={out}", "progress=false"])
    err = capsys.readouterr().err
    assert status == 128 + getattr(signal, signum) and f"interrupted ({signum})" in err and "Traceback" not in err
    assert outputs(out) == ["a_sr.nii.gz", "a_views.png"]  # a is complete, nothing of b, no hidden files
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_volumes_too_thin_in_the_networks_plane_and_folders_used_as_output_dir(tmp_path, bicubic_checkpoint, capsys):
    """A single coronal slice given to an axially trained network was cut into 1-pixel strips and
    super-resolved in the wrong plane; an input folder used as output_dir fed the outputs back in."""
    import nibabel as nib
    import numpy as np

    scans = tmp_path / "scans"
    scans.mkdir()
    rng = np.random.default_rng(0)
    for name, shape in [("coronal", (24, 1, 20)), ("axial", (24, 20, 1))]:
        nib.save(nib.Nifti1Image(rng.random(shape, dtype=np.float32) + 0.5, np.eye(4)), scans / f"{name}.nii.gz")
    args = [f"ckpt_path={bicubic_checkpoint}", f"inputs={scans}", f"output_dir={scans}", "progress=false"]
    assert predict_main(args) == 1
    err = capsys.readouterr().err
    assert "coronal.nii.gz: has shape (24, 1, 20): 1 along y in the plane the network works in" in err
    assert nib.load(scans / "axial_sr.nii.gz").shape == (48, 40, 1)
    assert predict_main([*args, "overwrite=true"]) == 1  # the folder now holds axial_sr.nii.gz: skipped, not predicted
    captured = capsys.readouterr()
    assert "axial_sr" not in captured.err.replace(f"{scans}/axial_sr.nii.gz: an output of lfmri", "")
    assert not (scans / "axial_sr_sr.nii.gz").exists()


def test_predict_says_where_and_how_it_runs_and_estimates_the_rest(tmp_path, bicubic_checkpoint, caplog):
    scans = [write_phantom(tmp_path / f"{n}.nii.gz", shape=SHAPE, seed=i) for i, n in enumerate("ab")]
    with caplog.at_level("INFO", logger="lfmri.cli.predict"):
        assert predict_main([f"ckpt_path={bicubic_checkpoint}", f"inputs=[{scans[0]},{scans[1]}]", f"output_dir={tmp_path / 'out'}",
                             "progress=false", "preview=false", "device=cpu", "threads=1"]) == 0
    assert "predicting 2 volume(s) with" in caplog.text and "on cpu: precision fp32 (precision=auto), backend torch, 1 CPU thread" in caplog.text
    assert "1/2 volumes in " in caplog.text and "s left" in caplog.text
