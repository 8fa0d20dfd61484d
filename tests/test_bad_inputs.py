"""One bad scan never stops the others: predict and evaluate report it by name, leave nothing
partial behind, process the rest and exit 1; the NIfTI reader refuses what nibabel would misread."""

from __future__ import annotations

import errno
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from omegaconf import OmegaConf

from lfmri.geometry import nifti as io
from lfmri.geometry.nifti import NiftiError, load_nifti
from lfmri.cli.predict import main as predict_main
from tests.conftest import ROOT, run_script, write_phantom
from tests.test_predict import make_checkpoint

SHAPE = (16, 16, 8)


def degenerate(path: Path) -> Path:
    """A scan whose affine collapses the third axis (nibabel raises OrientationError deep inside)."""
    img = nib.Nifti1Image(np.random.default_rng(0).random(SHAPE, dtype=np.float32) + 1, np.eye(4))
    singular = np.eye(4)
    singular[2, 2] = 0
    img.set_sform(singular, code=1)
    img.set_qform(None, code=0)
    nib.save(img, str(path))
    return path


def rgb(path: Path) -> Path:
    data = np.zeros(SHAPE, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    data["R"] = 50
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    return path


def complex_valued(path: Path) -> Path:
    data = np.random.default_rng(0).random(SHAPE).astype(np.float32) + 1
    nib.save(nib.Nifti1Image((data + 1j * data).astype(np.complex64), np.eye(4)), str(path))
    return path


def huge_header(path: Path) -> Path:
    """A 1 kB file whose header claims 2000^3 voxels."""
    nib.save(nib.Nifti1Image(np.ones((4, 4, 4), np.float32), np.eye(4)), str(path))
    header = nib.Nifti1Header.from_fileobj(path.open("rb"))
    header.set_data_shape((2000, 2000, 2000))
    path.write_bytes(header.binaryblock + path.read_bytes()[348:])
    return path


BAD = {"degenerate": (degenerate, "degenerate affine"), "rgb": (rgb, "single-channel"),
       "complex": (complex_valued, "complex voxels"), "huge": (huge_header, "memory budget")}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_reader_refuses_with_the_file_and_the_reason(tmp_path, kind):
    make, reason = BAD[kind]
    suffix = ".nii" if kind == "huge" else ".nii.gz"
    path = make(tmp_path / f"{kind}{suffix}")
    with pytest.raises(NiftiError, match=reason) as err:
        load_nifti(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_a_header_larger_than_an_uncompressed_file_is_truncated_not_read(tmp_path, monkeypatch):
    path = huge_header(tmp_path / "short.nii")
    monkeypatch.setenv(io.MEMORY_ENV, "1000")  # within budget: the file itself is too short
    with pytest.raises(NiftiError, match="is truncated: its header needs"):
        load_nifti(path)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ckpt")
    return make_checkpoint(root / "bicubic.ckpt", "model=bicubic", "degradation=bicubic", "data=folder", "data.pattern=x")


def outputs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("kind", sorted(BAD))
def test_predict_runs_every_other_volume_and_exits_1(tmp_path, checkpoint, capsys, kind):
    make, reason = BAD[kind]
    good1, good2 = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE), write_phantom(tmp_path / "c.nii.gz", shape=SHAPE, seed=1)
    bad = make(tmp_path / ("b.nii" if kind == "huge" else "b.nii.gz"))
    out = tmp_path / "out"
    status = predict_main([f"ckpt_path={checkpoint}", f"inputs=[{good1},{bad},{good2}]", f"output_dir={out}", "progress=false"])
    assert status == 1
    assert outputs(out) == ["a_sr.nii.gz", "a_views.png", "c_sr.nii.gz", "c_views.png"]
    err = capsys.readouterr().err
    assert f"{bad}:" in err and reason in err and "Traceback" not in err


def test_full_disk_and_unwritable_folder_leave_no_partial_outputs_and_the_rerun_works(tmp_path, checkpoint, capsys, monkeypatch):
    scans = [write_phantom(tmp_path / f"{n}.nii.gz", shape=SHAPE, seed=i) for i, n in enumerate("abc")]
    out = tmp_path / "out"
    real_save = io.save_nifti

    def full_disk_for_b(path, *args, **kwargs):
        if "b_sr" in Path(path).name:  # after b's preview PNG was written
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr("lfmri.inference.volume.save_nifti", full_disk_for_b)
    args = [f"ckpt_path={checkpoint}", f"inputs=[{','.join(map(str, scans))}]", f"output_dir={out}", "progress=false"]
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


def test_evaluate_runs_every_other_volume_and_exits_1(tmp_path, checkpoint):
    good1, good2 = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE), write_phantom(tmp_path / "c.nii.gz", shape=SHAPE, seed=1)
    bad = degenerate(tmp_path / "b.nii.gz")
    out = tmp_path / "out"
    proc = run_script("evaluate.py", f"ckpt_path={checkpoint}", f"inputs=[{good1},{bad},{good2}]", f"output_dir={out}", "device=cpu")
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert f"{bad}: has a degenerate affine" in proc.stderr and "Traceback" not in proc.stderr
    written = outputs(out)
    assert "a_comparison.png" in written and "c_comparison.png" in written and not [n for n in written if n.startswith(("b_", ".")) and n != ".hydra"]  # Hydra's record of the evaluation, no staging leftovers
    subjects = {row.split(",")[0] for row in (out / "metrics.csv").read_text().splitlines()[1:]}
    assert subjects == {"a", "c"}


def test_evaluate_with_empty_inputs_is_an_error(tmp_path, checkpoint):
    from lfmri.evaluation.evaluator import evaluate

    cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "evaluate.yaml"),
                          {"output_dir": str(tmp_path / "out"), "ckpt_path": str(checkpoint), "inputs": [], "device": "cpu"})
    with pytest.raises(ValueError, match=r"inputs=\[\]"):
        evaluate(cfg)


@pytest.mark.parametrize("layout", ["volumes", "slices"])
def test_the_paired_report_names_the_same_errors_and_strict_false_drops_them(tmp_path, layout):
    from lfmri.data.pair_validation import PairValidationError
    from tests.paired_fixtures import write_slice_layout, write_volume_layout
    from tests.test_paired_lowfield import datamodule

    subjects = ("s01", "s02", "s03", "s04", "s05")
    root = (write_volume_layout if layout == "volumes" else write_slice_layout)(tmp_path / "pairs", subjects)
    if layout == "volumes":
        degenerate(root / "lf" / "s01.nii.gz")
        complex_valued(root / "hf" / "s02.nii.gz")
    else:
        degenerate(root / "lf" / "s01_0.nii.gz")
        complex_valued(root / "hf" / "s02_1.nii.gz")
    with pytest.raises(PairValidationError) as info:
        datamodule(root, layout=layout).setup("fit")
    message = str(info.value)
    assert "'s01'" in message and "degenerate affine" in message and "'s02'" in message and "complex voxels" in message
    dm = datamodule(root, layout=layout, strict=False)
    dm.setup("fit")
    assert sorted(dm.pairs) == ["s03", "s04", "s05"]


@pytest.mark.parametrize(("option", "message"), [
    ("batch_size=-2", "'batch_size'"), ("batch_size=0", "'batch_size'"), ("tile_size=0", "'tile_size'"),
    ("threads=0", "'threads'"), ("inputs=[]", "'inputs' is empty"), ("device=cuda:7", "'device'"),
    ("device=banana", "'device'"),
])
def test_predict_options_are_checked_before_any_work(tmp_path, capsys, checkpoint, option, message):
    from lfmri.cli.predict import parse_args
    from tests.helpers.cli import refusal

    scan = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE)
    args = [f"ckpt_path={checkpoint}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}"]
    key = option.split("=")[0]
    assert message in refusal(capsys, parse_args, [a for a in args if not a.startswith(key + "=")] + [option])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("option", "value", "message"), [
    ("patches_per_epoch", 3, "data.patches_per_epoch=3 is below data.batch_size=4"),
    ("batch_size", 0, "data.batch_size=0"), ("patch_size", -16, "data.patch_size=-16"),
])
def test_data_sizes_are_checked_when_the_data_module_is_built(tmp_path, option, value, message):
    from lfmri.degrade.degradations import BicubicDegradation
    from lfmri.data.folder import FolderDataModule

    settings = {"pattern": str(tmp_path / "*.nii.gz"), "batch_size": 4, "patch_size": 16, "patches_per_epoch": 8, option: value}
    with pytest.raises(ValueError, match=message):
        FolderDataModule(degradation=BicubicDegradation(), input_mode="lr", **settings)


def test_a_recursive_pattern_through_a_symlink_loop_finds_each_file_once(tmp_path):
    from lfmri.data.folder import find_volumes

    write_phantom(tmp_path / "data" / "a.nii.gz", shape=SHAPE)
    write_phantom(tmp_path / "data" / "deep" / "b.nii.gz", shape=SHAPE)
    (tmp_path / "data" / "deep" / "loop").symlink_to(tmp_path / "data")
    (tmp_path / "data" / "deep" / "loop2").symlink_to(tmp_path / "data" / "deep")
    linked = tmp_path / "elsewhere"
    write_phantom(linked / "c.nii.gz", shape=SHAPE)
    (tmp_path / "data" / "link").symlink_to(linked)  # a symlinked folder is still searched
    found = find_volumes(str(tmp_path / "data" / "**" / "*.nii.gz"))
    assert sorted(p.name for p in found) == ["a.nii.gz", "b.nii.gz", "c.nii.gz"]
