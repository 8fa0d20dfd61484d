"""Hostile inputs and faults against ``lfmri-predict``, ``evaluate``, training and stored configs: a table of what each class gets.

    python benchmarks/hostile.py [--only CLASS] [--keep DIR]

Generates 100+ cases in a temporary folder (tiny volumes, an untrained tiny SRDenseNet and a bicubic
checkpoint written like train.py writes them), runs each in this process (``lfmri.cli.predict.main``,
``lfmri.cli.common.run_entry`` around ``lfmri.evaluation.evaluator.evaluate``: the code the entry points
run) and judges the outcome:

- clear: the expected exit status, a message naming the file or option, no traceback, nothing left behind;
- traceback: an exception escaped, or a traceback was printed;
- silent wrong output: exit 0 (or a written file) where the output is wrong (NaN, the wrong plane, a
  geometry that claims what the input did not, lfmri's own output read back as a scan);
- lost result: a file another run wrote was replaced, or a finished result disappeared;
- debris: a hidden temporary file left in a folder;
- unclear: refused, but with another exit status or without naming what is wrong;
- file effect: a file was written or read (an environment variable, a copy) because of data: a stored
  config's ``${...}``, a file name, a stored path (classes 6 and 7, the training side and stored configs).

Classes 8-10 are the training side: ``train.py`` run as a subprocess on tiny phantoms (data that cannot
be trained on, refused before the first step with one line and no run folder; the other tools'
options, DICOM fields and sweep summaries; runs stopped by Ctrl-C, SIGKILL inside a checkpoint write
and a resume of a finished run, which must end exactly like an uninterrupted run). They take a few
minutes each: ``--only 8`` (9, 10) runs one.

Prints one row per case and the table per class; exit status 1 if any case is not clear.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import logging
import os
import signal
import struct
import sys
import tempfile
import traceback
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import nibabel as nib  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from lfmri.files import is_temporary, temporary_name  # noqa: E402

SHAPE = (20, 22, 6)
CLASSES = ["1 lost results", "2 one bad file in a batch", "3 silent wrong output", "4 debris", "5 user mistakes",
           "6 stored configs are data", "7 a run owns what it creates",
           "8 training data checks", "9 training-side tools", "10 resume from any stop"]


class LogTap(logging.Handler):
    """Every log line of the case being run (predict's per-input messages are logs)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


TAP = LogTap()


@dataclass
class Run:
    code: int | None
    text: str  # stderr, stdout and log lines
    escaped: str | None  # the traceback of an exception that escaped the entry point


def call(entry: Callable[[], object]) -> Run:
    TAP.lines.clear()
    err, out = io.StringIO(), io.StringIO()
    escaped = None
    code = 0
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            result = entry()
            code = result if isinstance(result, int) else 0
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else (0 if stop.code is None else 2)
        except BaseException:  # noqa: BLE001 - anything escaping is what this benchmark counts
            escaped = traceback.format_exc()
            code = None
    return Run(code, err.getvalue() + out.getvalue() + "\n".join(TAP.lines), escaped)


def predict(*options: str) -> Run:
    from lfmri.cli.predict import main

    return call(lambda: main(["progress=false", *options]))


def evaluate(**values) -> Run:
    from lfmri.cli.common import check_evaluate, run_entry
    from lfmri.evaluation.evaluator import evaluate as run_evaluate
    from omegaconf import OmegaConf

    cfg = OmegaConf.load(ROOT / "conf" / "evaluate.yaml")
    cfg.pop("hydra")
    cfg = OmegaConf.merge(cfg, {"device": "cpu", "progress": False, **values})

    def entry():
        try:
            check_evaluate(cfg, Path(cfg.output_dir), True)  # what the RunChecks Hydra callback runs first
        except Exception as err:
            from lfmri.errors import UserError
            from lfmri.geometry.nifti import NiftiError

            if isinstance(err, (UserError, NiftiError)):
                print(f"evaluate.py: error: {err}", file=sys.stderr)
                raise SystemExit(2) from None
            raise
        table = run_entry("evaluate.py", run_evaluate, cfg)
        if table.failures:  # what evaluate.py prints and returns
            print(f"{len(table.failures)} input(s) failed:", file=sys.stderr)
            for message in table.failures.values():
                print(f"  {message}", file=sys.stderr)
            return 1
        return 0

    return call(entry)


# ---------------------------------------------------------------- files


def phantom(shape=SHAPE, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*(np.linspace(-1, 1, n) for n in shape), indexing="ij"))
    head = (np.sqrt((grid[:2] ** 2).sum(0)) < 0.8) * (1 + 0.2 * rng.random(shape))
    return (head + 0.05 * rng.random(shape)).astype(np.float32)


def write(path: Path, data=None, affine=None, dtype=np.float32, codes=(None, None)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = phantom() if data is None else data
    img = nib.Nifti1Image(np.asarray(data).astype(dtype), np.diag([1.0, 1.0, 2.0, 1.0]) if affine is None else affine)
    if codes[0] is not None:
        img.set_sform(img.affine if codes[0] else None, code=codes[0])
    if codes[1] is not None:
        img.set_qform(img.affine if codes[1] else None, code=codes[1])
    nib.save(img, str(path))
    return path


def patch_header(path: Path, offset: int, fmt: str, value) -> Path:
    raw = bytearray(path.read_bytes())
    struct.pack_into(fmt, raw, offset, value)
    path.write_bytes(bytes(raw))
    return path


def gz_bytes(data: bytes) -> bytes:
    import gzip

    return gzip.compress(data)


def bad_files(folder: Path) -> dict[str, tuple[Path, str | None]]:
    """name -> (file, what the refusal must name): class 2's inputs. ``None``: a damaged field that
    nibabel repairs or the NIfTI standard says to ignore (bitpix, pixdim under an sform, a NaN slope):
    the right outcome is the scan read and predicted, with finite output."""
    f = folder
    f.mkdir(parents=True, exist_ok=True)
    good_bytes = write(f / "_good.nii").read_bytes()
    cases: dict[str, tuple[Path, str]] = {}

    def nii(name: str, raw: bytes, reason: str) -> None:
        (f / name).write_bytes(raw)
        cases[name] = (f / name, reason)

    def header(name: str, offset: int, fmt: str, value, reason: str) -> None:
        raw = bytearray(good_bytes)
        struct.pack_into(fmt, raw, offset, value)
        nii(name, bytes(raw), reason)

    header("dtype0.nii", 70, "<h", 0, "data code 0")
    header("dtype255.nii", 70, "<h", 255, "")
    header("dtype_rgba.nii", 70, "<h", 2304, "")
    header("bitpix_wrong.nii", 72, "<h", 8, None)
    header("dim0_zero.nii", 40, "<h", 0, "")
    header("dim0_eight.nii", 40, "<h", 8, "")
    header("dim_negative.nii", 42, "<h", -5, "")
    header("dim_zero.nii", 44, "<h", 0, "")
    header("pixdim_zero.nii", 80, "<f", 0.0, None)
    header("pixdim_nan.nii", 80, "<f", float("nan"), None)
    header("vox_offset_huge.nii", 108, "<f", 1e9, "")
    header("vox_offset_small.nii", 108, "<f", 10.0, "")
    header("slope_nan.nii", 112, "<f", float("nan"), None)
    header("srow_nan.nii", 280, "<f", float("nan"), "")
    header("quatern_nan.nii", 256, "<f", float("nan"), None)
    header("sizeof_hdr_wrong.nii", 0, "<i", 12345, None)
    header("magic_wrong.nii", 344, "4s", b"xyz\0", "")
    header("extension_flag.nii", 348, "<i", 1, None)  # says an extension follows, none does
    nii("empty.nii.gz", b"", "")
    nii("empty.nii", b"", "")
    nii("random.nii.gz", os.urandom(4000), "")
    nii("random_gz.nii.gz", gz_bytes(os.urandom(4000)), "")
    nii("text.nii.gz", b"hello, I am not a scan\n" * 40, "")
    nii("truncated_header.nii", good_bytes[:200], "")
    nii("truncated_data.nii", good_bytes[: len(good_bytes) // 2], "truncated")
    nii("gz_truncated.nii.gz", gz_bytes(good_bytes)[:300], "")
    nii("gz_trailing_garbage.nii.gz", gz_bytes(good_bytes) + b"garbage", None)
    nii("gz_of_half.nii.gz", gz_bytes(good_bytes[: len(good_bytes) // 2]), "")
    nii("uncompressed_named_gz.nii.gz", good_bytes, "")  # nibabel reads it: a correct answer is a result
    cases.pop("uncompressed_named_gz.nii.gz")
    (f / "uncompressed_named_gz.nii.gz").unlink()
    mgz = f / "_good.mgz"
    nib.save(nib.MGHImage(phantom(), np.eye(4)), str(mgz))
    mgz_bytes = mgz.read_bytes()
    nii("mgz_cut40.mgz", mgz_bytes[:40], "")
    nii("mgz_cut_half.mgz", mgz_bytes[: len(mgz_bytes) // 2], "")
    nii("mgz_random.mgz", os.urandom(2000), "")
    nii("mgz_gz_random.mgz", gz_bytes(os.urandom(2000)), "")
    raw = bytearray(gz_module_decompress(mgz_bytes))
    struct.pack_into(">i", raw, 20, 99)  # MGH type code 99
    nii("mgz_type99.mgz", gz_bytes(bytes(raw)), "")
    raw = bytearray(gz_module_decompress(mgz_bytes))
    struct.pack_into(">i", raw, 4, -3)  # negative width
    nii("mgz_negative_dim.mgz", gz_bytes(bytes(raw)), "")
    nii("mgh_cut.mgh", gz_module_decompress(mgz_bytes)[:500], "")
    nii("nifti_named_mgz.mgz", gz_bytes(good_bytes), "")
    # data that reads but is no scan
    for name, data, reason in [("nan_voxels.nii", np.where(phantom() > 0.5, np.nan, 1.0), "NaN/Inf"),
                               ("inf_voxels.nii", np.where(phantom() > 0.5, np.inf, 1.0), "NaN/Inf"),
                               ("all_zero.nii", np.zeros(SHAPE), "all zeros"),
                               ("constant.nii", np.full(SHAPE, 7.0), "constant"),
                               ("four_d.nii", np.stack([phantom(), phantom()], -1), "4D"),
                               ("five_d.nii", phantom()[..., None, None].repeat(2, -1), ""),
                               ("two_d.nii", phantom()[:, :, 0], "3D"),
                               ("one_voxel.nii", np.ones((1, 1, 1)), ""),
                               ("line.nii", np.ones((1, 1, 40)), ""),
                               ("coronal_single_slice.nii", phantom((20, 1, 22)), "in the plane the network works in"),
                               ("sagittal_single_slice.nii", phantom((1, 20, 22)), "in the plane the network works in"),
                               ("tiny_4x4x4.nii", phantom((4, 4, 4)), "at least")]:
        write(f / name, data)
        cases[name] = (f / name, reason)
    write(f / "complex.nii", phantom() + 1j * phantom(), dtype=np.complex64)
    cases["complex.nii"] = (f / "complex.nii", "complex")
    img = nib.Nifti1Image(phantom(), np.eye(4))
    img.set_sform(np.diag([1.0, 0.0, 1.0, 1.0]), code=1)  # the third... second axis collapsed
    img.set_qform(None, code=0)
    nib.save(img, str(f / "singular_affine.nii"))
    cases["singular_affine.nii"] = (f / "singular_affine.nii", "degenerate")
    (f / "folder.nii.gz").mkdir()
    cases["folder.nii.gz"] = (f / "folder.nii.gz", "is a folder")
    (f / "broken_link.nii.gz").symlink_to(f / "gone.nii.gz")
    cases["broken_link.nii.gz"] = (f / "broken_link.nii.gz", "broken symbolic link")
    (f / "loop_link.nii.gz").symlink_to(f / "loop_link.nii.gz")
    cases["loop_link.nii.gz"] = (f / "loop_link.nii.gz", "loops")
    os.mkfifo(f / "fifo.nii.gz")
    cases["fifo.nii.gz"] = (f / "fifo.nii.gz", "not a regular file")
    nii("dicom_named_nii.nii", b"\0" * 128 + b"DICM" + b"\x02\x00\x10\x00UI\x04\x001.2\0", "")
    mgz.unlink()
    (f / "_good.nii").unlink()
    return cases


def subject(path: Path) -> str:
    from lfmri.geometry.nifti import subject_name

    return subject_name(path)


def gz_module_decompress(data: bytes) -> bytes:
    import gzip

    return gzip.decompress(data)


# ---------------------------------------------------------------- checkpoints


def checkpoints(folder: Path) -> dict[str, Path]:
    from tests.helpers.checkpoints import make_checkpoint
    from tests.helpers.predict import TINY_MODEL

    folder.mkdir(parents=True, exist_ok=True)
    tiny = make_checkpoint(folder / "tiny.ckpt", *TINY_MODEL)
    bicubic = make_checkpoint(folder / "bicubic.ckpt", "model=bicubic", "degradation=bicubic", "data=folder", "data.pattern=x")
    out = {"tiny": tiny, "bicubic": bicubic}

    def variant(name: str, change: Callable[[dict], None]) -> None:
        checkpoint = torch.load(tiny, weights_only=True)
        change(checkpoint)
        torch.save(checkpoint, folder / f"{name}.ckpt")
        out[name] = folder / f"{name}.ckpt"

    first = lambda c: next(iter(c["state_dict"]))  # noqa: E731
    conv = lambda c: next(k for k, v in c["state_dict"].items() if v.ndim == 4)  # noqa: E731
    variant("nan", lambda c: c["state_dict"][first(c)].fill_(float("nan")))
    variant("inf_one", lambda c: c["state_dict"][conv(c)].view(-1).__setitem__(0, float("inf")))
    variant("huge_weights", lambda c: [v.mul_(1e30) for v in c["state_dict"].values() if v.is_floating_point()])
    variant("missing_key", lambda c: c["state_dict"].pop(first(c)))
    variant("extra_key", lambda c: c["state_dict"].__setitem__("net.extra.weight", torch.zeros(3)))
    variant("shape", lambda c: c["state_dict"].__setitem__(conv(c), c["state_dict"][conv(c)][:1].clone()))
    variant("keyword", lambda c: c["lfmri"]["config"]["model"].__setitem__("nonsense", 1))
    variant("bad_value", lambda c: c["lfmri"]["config"]["model"].__setitem__("growth", "many"))
    variant("scale", lambda c: c["lfmri"]["config"]["degradation"].update(scale=3, hr_size=[96, 96]))
    variant("hr_size", lambda c: c["lfmri"]["config"]["degradation"].update(hr_size=[33, 33]))
    variant("target_missing", lambda c: c["lfmri"]["config"]["model"].__setitem__("_target_", "lfmri.models.srdensenet.Nope"))
    variant("no_state_dict", lambda c: c.pop("state_dict"))
    variant("schema", lambda c: c["lfmri"].__setitem__("schema", 99))
    variant("no_metadata", lambda c: c.pop("lfmri"))
    variant("slice_axis", lambda c: c["lfmri"]["config"]["data"].__setitem__("slice_axis", 7))
    (folder / "empty.ckpt").write_bytes(b"")
    (folder / "random.ckpt").write_bytes(os.urandom(3000))
    (folder / "truncated.ckpt").write_bytes(tiny.read_bytes()[:2000])
    (folder / "dir.ckpt").mkdir()
    torch.save({"weights": torch.zeros(3)}, folder / "plain.ckpt")
    for name in ("empty", "random", "truncated", "dir", "plain"):
        out[name] = folder / f"{name}.ckpt"
    return out


# ---------------------------------------------------------------- judging


@dataclass
class Result:
    klass: str
    case: str
    verdict: str
    note: str = ""


def leftovers(*folders: Path) -> list[str]:
    return [p.name for folder in folders if folder.is_dir() for p in folder.iterdir() if is_temporary(p)]


def judge_refusal(run: Run, codes: set[int], names: list[str], folders: list[Path] = ()) -> tuple[str, str]:
    if run.escaped is not None or "Traceback (most recent call last)" in run.text:
        return "traceback", (run.escaped or run.text).strip().splitlines()[-1][:160]
    junk = leftovers(*folders)
    if junk:
        return "debris", ", ".join(junk)[:160]
    missing = [n for n in names if n and n not in run.text]
    if run.code not in codes or missing:
        if run.code == 0:
            return "silent wrong output", f"exit 0; expected a refusal naming {names}"
        return "unclear", f"exit {run.code}, expected {sorted(codes)}; missing {missing}: {run.text.strip()[-200:]}"
    return "clear", f"exit {run.code}"


def finite_output(path: Path) -> bool:
    return path.is_file() and bool(np.isfinite(np.asarray(nib.load(path).dataobj)).all())


# ---------------------------------------------------------------- the classes


def class_lost(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    import lfmri.inference.volume as volume_module
    from lfmri.geometry.nifti import save_nifti

    results = []
    scan = write(tmp / "scans" / "a.nii.gz")
    other = write(tmp / "scans" / "b.nii.gz", phantom(seed=1))

    def race(name: str, out: Path, extra: list[str], meanwhile: Callable[[Path], None], kept: Callable[[], bool]) -> None:
        def racing(path, *args, **kwargs):
            meanwhile(out)
            return save_nifti(path, *args, **kwargs)

        volume_module.save_nifti = racing
        try:
            run = predict(f"ckpt_path={ckpts['bicubic']}", f"output_dir={out}", *extra)
        finally:
            volume_module.save_nifti = save_nifti
        verdict, note = judge_refusal(run, {2}, ["appeared while this run was writing"], [out])
        if verdict == "clear" and not kept():
            verdict, note = "lost result", "the other run's file was replaced"
        results.append(Result(CLASSES[0], name, verdict, note))

    def first_run(out: Path, name="a_sr.nii.gz") -> None:
        out.mkdir(parents=True, exist_ok=True)
        if not (out / name).exists():
            (out / name).write_bytes(b"first run")

    race("second predict run into the same folder (sr)", tmp / "l1", [f"inputs={scan}"], first_run,
         lambda: (tmp / "l1" / "a_sr.nii.gz").read_bytes() == b"first run")
    race("second run, preview written first by the other", tmp / "l2", [f"inputs={scan}"], lambda o: first_run(o, "a_views.png"),
         lambda: (tmp / "l2" / "a_views.png").read_bytes() == b"first run" and not (tmp / "l2" / "a_sr.nii.gz").exists())
    race("second run, tta uncertainty map taken", tmp / "l3", [f"inputs={scan}", "tta=true"], lambda o: first_run(o, "a_uncertainty.nii.gz"),
         lambda: (tmp / "l3" / "a_uncertainty.nii.gz").read_bytes() == b"first run")
    race("second run of a 2-input batch (one input taken)", tmp / "l4", [f"inputs=[{scan},{other}]"], first_run,
         lambda: (tmp / "l4" / "a_sr.nii.gz").read_bytes() == b"first run" and (tmp / "l4" / "b_sr.nii.gz").is_file())
    race("second run, .mgz output", tmp / "l5", [f"inputs={write_mgz(tmp / 'scans' / 'm.mgz')}"], lambda o: first_run(o, "m_sr.mgz"),
         lambda: (tmp / "l5" / "m_sr.mgz").read_bytes() == b"first run")
    # evaluate: the second evaluation's tables must not replace the first's
    from lfmri.files import written_together as real_written_together
    import lfmri.evaluation.comparison as evaluator_module  # where the evaluation writes its tables

    out = tmp / "l6"

    @contextlib.contextmanager
    def tables_taken(paths, overwrite=True):
        with real_written_together(paths, overwrite) as staging:
            yield staging
            if "csv" in paths:
                Path(paths["csv"]).write_text("first run\n")

    evaluator_module.written_together = tables_taken
    try:
        run = evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scan)], output_dir=str(out))
    finally:
        evaluator_module.written_together = real_written_together
    verdict, note = judge_refusal(run, {2}, ["metrics.csv"], [out])
    if verdict == "clear" and (out / "metrics.csv").read_text() != "first run\n":
        verdict, note = "lost result", "metrics.csv replaced"
    results.append(Result(CLASSES[0], "second evaluate into the same folder (metrics.csv)", verdict, note))
    # two real processes at once into one folder, same input: exactly one result, the other refused
    import subprocess

    out = tmp / "l7"
    cmd = [sys.executable, "-m", "lfmri.cli.predict", f"ckpt_path={ckpts['bicubic']}", f"inputs={scan}", f"output_dir={out}", "progress=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    text = "".join(o[1] for o in outs)
    if "Traceback" in text:
        verdict, note = "traceback", text.strip().splitlines()[-1][:160]
    elif codes == [0, 0]:
        verdict, note = "lost result", "both exited 0: one replaced the other"
    elif codes in ([0, 2],) and not leftovers(out):
        verdict, note = "clear", f"exits {codes}"
    else:
        verdict, note = "unclear", f"exits {codes}: {text[-200:]}"
    results.append(Result(CLASSES[0], "two predict processes at once, same output", verdict, note))
    return results


def write_mgz(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.MGHImage(phantom(), np.diag([1.0, 1.0, 2.0, 1.0])), str(path))
    return path


def class_batch(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    results = []
    cases = bad_files(tmp / "bad")
    good = write(tmp / "good" / "good.nii.gz")
    for name, (path, reason) in cases.items():
        for tool in ("predict", "evaluate"):
            out = tmp / "out2" / f"{tool}-{name}"
            if tool == "predict":
                run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=[{path},{good}]", f"output_dir={out}")
                written = (out / "good_sr.nii.gz").is_file()
            else:
                run = evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(path), str(good)], output_dir=str(out))
                written = (out / "metrics.csv").is_file() and "good" in (out / "metrics.csv").read_text()
            if reason is None:  # readable: both inputs predicted, finite
                sr = out / f"{subject(path)}_sr.nii.gz"
                fine = run.code == 0 and written and (tool == "evaluate" or finite_output(sr)) and run.escaped is None
                verdict, note = ("clear", "read (field repaired/ignored), exit 0") if fine else judge_refusal(run, {1}, [path.name], [out])
                if fine and leftovers(out):
                    verdict, note = "debris", ", ".join(leftovers(out))
            else:
                verdict, note = judge_refusal(run, {1}, [path.name, reason, "1 input(s) failed"], [out])
            if verdict == "clear" and not written:
                verdict, note = "unclear", "the good input beside it was not written"
            results.append(Result(CLASSES[1], f"{tool}: {name}", verdict, note))
    # workers=2: a bad file among good ones
    out = tmp / "out2" / "workers"
    scans = [write(tmp / "w" / f"s{i}.nii.gz", phantom(seed=i)) for i in range(2)]
    bad = cases["dtype0.nii"][0]
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=[{scans[0]},{bad},{scans[1]}]", f"output_dir={out}", "workers=2", "device=cpu")
    verdict, note = judge_refusal(run, {1}, ["dtype0.nii", "data code 0"], [out])
    results.append(Result(CLASSES[1], "predict workers=2: datatype code 0 among good scans", verdict, note))
    # a whole folder of the bad files plus one good: one run, every bad one named
    folder = tmp / "bad"
    write(folder / "zz_good.nii.gz")
    out = tmp / "out2" / "folder"
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={folder}", f"output_dir={out}")
    verdict, note = judge_refusal(run, {1}, ["dtype0.nii", "folder.nii.gz", "broken_link.nii.gz", "fifo.nii.gz"], [out])
    if verdict == "clear" and not (out / "zz_good_sr.nii.gz").is_file():
        verdict, note = "unclear", "the good scan of the folder was not written"
    results.append(Result(CLASSES[1], "predict: a folder of every bad file and one good", verdict, note))
    return results


def class_wrong(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    results = []
    scan = write(tmp / "s3" / "scan.nii.gz")

    def refused(name: str, run: Run, codes: set[int], names: list[str], out: Path) -> None:
        verdict, note = judge_refusal(run, codes, names, [out])
        if verdict == "clear" and any(not finite_output(p) for p in out.glob("*.nii.gz")):
            verdict, note = "silent wrong output", "a non-finite volume was written"
        results.append(Result(CLASSES[2], name, verdict, note))

    for kind, names in [("nan", ["NaN/Inf"]), ("inf_one", ["NaN/Inf"])]:
        out = tmp / "o3" / kind
        refused(f"checkpoint with {kind} weights (predict)", predict(f"ckpt_path={ckpts[kind]}", f"inputs={scan}", f"output_dir={out}"), {2}, [f"{kind}.ckpt", *names], out)
        out = tmp / "o3" / f"e-{kind}"
        refused(f"checkpoint with {kind} weights (evaluate)", evaluate(ckpt_path=str(ckpts[kind]), inputs=[str(scan)], output_dir=str(out)), {2}, [f"{kind}.ckpt", *names], out)
    out = tmp / "o3" / "huge"
    refused("weights x1e30: network output overflows", predict(f"ckpt_path={ckpts['huge_weights']}", f"inputs={scan}", f"output_dir={out}"), {1}, ["NaN/Inf voxels"], out)
    out = tmp / "o3" / "huge-e"
    refused("weights x1e30 (evaluate)", evaluate(ckpt_path=str(ckpts["huge_weights"]), inputs=[str(scan)], output_dir=str(out)), {1}, ["NaN/Inf voxels"], out)
    # init_from non-finite weights
    from lfmri.checkpoints.load import CheckpointError
    from lfmri.training.transfer import load_network_weights
    from tests.helpers.predict import tiny_net

    try:
        load_network_weights(tiny_net(), ckpts["nan"])
        results.append(Result(CLASSES[2], "init_from= NaN weights", "silent wrong output", "loaded"))
    except CheckpointError as err:
        results.append(Result(CLASSES[2], "init_from= NaN weights", "clear" if "NaN/Inf" in str(err) else "unclear", str(err)[:80]))
    # tiles against the receptive field
    big = write(tmp / "s3" / "big.nii.gz", phantom((48, 48, 2)))
    for tile, overlap in [(4, 0), (8, 2), (12, 4), (16, 8)]:
        out = tmp / "o3" / f"tile{tile}"
        refused(f"tile_size={tile} tile_overlap={overlap} below the receptive field", predict(f"ckpt_path={ckpts['tiny']}", f"inputs={big}", f"output_dir={out}", f"tile_size={tile}", f"tile_overlap={overlap}"), {2}, [f"tile_size={tile}"], out)
    out = tmp / "o3" / "tile-e"
    refused("evaluate tile_size=8", evaluate(ckpt_path=str(ckpts["tiny"]), inputs=[str(big)], output_dir=str(out), tile_size=8, tile_overlap=0), {2}, ["tile_size=8"], out)
    # single slices and planes
    for name, shape, ok in [("axial single slice", (20, 22, 1), True), ("coronal single slice", (20, 1, 22), False),
                            ("sagittal single slice", (1, 20, 22), False), ("7-pixel-thin slab", (7, 22, 6), False)]:
        path = write(tmp / "s3" / f"{name.replace(' ', '_')}.nii.gz", phantom(shape))
        out = tmp / "o3" / name.replace(" ", "_")
        run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={path}", f"output_dir={out}")
        if ok:
            outputs = list(out.glob("*_sr.nii.gz"))
            good = run.code == 0 and outputs and nib.load(outputs[0]).shape == (40, 44, 1)
            results.append(Result(CLASSES[2], f"{name}: super-resolved in its plane", "clear" if good else "silent wrong output", f"exit {run.code}"))
        else:
            refused(f"{name}: refused (not the network's plane)", run, {1}, ["in the plane the network works in"], out)
    # geometry of the written file
    sheared = np.array([[1.0, 0.3, 0, 0], [0, 1.0, 0, 0], [0, 0, 2.0, 0], [0, 0, 0, 1]])
    for name, affine, codes, expect in [
        ("sheared affine, sform only", sheared, (1, 0), "qform 0"),
        ("sheared affine, sform and qform", sheared, (1, 1), "qform 0"),
        ("no orientation codes", None, (0, 0), "codes 0"),
        ("aligned space (code 2)", None, (2, 0), "code 2"),
        ("qform only (scanner)", None, (0, 1), "code 1"),
        ("oblique rotation, scanner", _oblique(), (1, 1), "code 1"),
        ("MNI space (code 4)", None, (4, 4), "code 4"),
    ]:
        path = write(tmp / "s3" / f"g_{len(results)}.nii.gz", affine=affine, codes=codes)
        out = tmp / "o3" / f"g{len(results)}"
        run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={path}", f"output_dir={out}")
        header = nib.load(next(out.glob("*_sr.nii.gz"))).header if run.code == 0 else None
        if header is None:
            results.append(Result(CLASSES[2], f"geometry: {name}", "unclear", run.text[-160:]))
            continue
        s_code, q_code = int(header["sform_code"]), int(header["qform_code"])
        agree = q_code == 0 or s_code == 0 or np.allclose(header.get_qform(), header.get_sform(), atol=1e-4)
        want = {"qform 0": q_code == 0 and s_code == 1, "codes 0": s_code == 0 and q_code == 0,
                "code 2": s_code == 2, "code 1": s_code == 1 and q_code == 1, "code 4": s_code == 4}[expect]
        verdict = "clear" if agree and want else "silent wrong output"
        results.append(Result(CLASSES[2], f"geometry: {name}", verdict, f"sform {s_code} qform {q_code}, agree={agree}"))
    # folders: case, links, own outputs
    folder = tmp / "s3" / "folder"
    write(folder / "UPPER.NII.GZ")
    write(folder / "Mixed.Nii")
    write_mgz(folder / "SHOUT.MGZ")
    (folder / "broken.nii.gz").symlink_to(folder / "gone.nii")
    (folder / "loop.nii").symlink_to(folder / "loop.nii")
    out = tmp / "o3" / "folder"
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={folder}", f"output_dir={out}")
    written = sorted(p.name for p in out.glob("*_sr*"))
    verdict, note = judge_refusal(run, {1}, ["broken.nii.gz", "broken symbolic link", "loop.nii", "loops"], [out])
    if verdict == "clear" and written != ["Mixed_sr.nii.gz", "SHOUT_sr.mgz", "UPPER_sr.nii.gz"]:
        verdict, note = "silent wrong output", f"written {written}"
    results.append(Result(CLASSES[2], "folder: upper-case names read, broken and looping links named", verdict, note))
    folder = tmp / "s3" / "own"
    write(folder / "a.nii.gz")
    for attempt in range(2):
        run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={folder}", f"output_dir={folder}", "overwrite=true")
        fed_back = any("_sr_sr" in p.name for p in folder.iterdir())
        said = "an output of lfmri" in run.text
        verdict = "silent wrong output" if fed_back else ("clear" if run.code == 0 and (attempt == 0 or said) else "unclear")
        results.append(Result(CLASSES[2], f"input folder used as output_dir, run {attempt + 1}", verdict, f"exit {run.code}"))
    out = tmp / "o3" / "own-e"
    run = evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(folder)], output_dir=str(out))
    scored = (out / "metrics.csv").read_text() if (out / "metrics.csv").is_file() else ""
    verdict = "silent wrong output" if "a_sr" in scored or "a_views" in scored else ("clear" if run.code == 0 else "unclear")
    results.append(Result(CLASSES[2], "evaluate a folder holding predict's outputs", verdict, f"exit {run.code}"))
    return results


def _oblique() -> np.ndarray:
    angle = np.deg2rad(20)
    rotation = np.array([[1, 0, 0], [0, np.cos(angle), -np.sin(angle)], [0, np.sin(angle), np.cos(angle)]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.0, 1.0, 2.0])
    return affine


def class_debris(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    import lfmri.inference.volume as volume_module
    from lfmri.geometry.nifti import save_nifti

    results = []
    scans = [write(tmp / "s4" / f"{n}.nii.gz", phantom(seed=i)) for i, n in enumerate("abc")]
    for signame in ("SIGTERM", "SIGINT", "SIGHUP"):
        for when in ("a_sr", "b_sr", "c_sr"):
            out = tmp / "o4" / f"{signame}-{when}"

            def interrupting(path, *args, _when=when, _sig=signame, **kwargs):
                if _when in Path(path).name:
                    Path(path).write_bytes(b"half")
                    os.kill(os.getpid(), getattr(signal, _sig))
                return save_nifti(path, *args, **kwargs)

            volume_module.save_nifti = interrupting
            try:
                run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=[{','.join(map(str, scans))}]", f"output_dir={out}")
            finally:
                volume_module.save_nifti = save_nifti
            code = 128 + getattr(signal, signame)
            verdict, note = judge_refusal(run, {code}, [f"interrupted ({signame})"], [out])
            if verdict == "clear" and len(run.text.strip().splitlines()) > 12:
                verdict, note = "unclear", "more than a line"
            results.append(Result(CLASSES[3], f"{signame} while writing {when}", verdict, note))
    # evaluate interrupted
    import lfmri.evaluation.comparison as evaluator_module  # where the evaluation writes its tables

    for signame in ("SIGTERM", "SIGINT"):
        out = tmp / "o4" / f"eval-{signame}"
        real = evaluator_module.Evaluator._figure

        def figure(self, path, *args, _sig=signame, **kwargs):
            Path(path).write_bytes(b"half")
            os.kill(os.getpid(), getattr(signal, _sig))

        evaluator_module.Evaluator._figure = figure
        try:
            run = evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scans[0])], output_dir=str(out))
        finally:
            evaluator_module.Evaluator._figure = real
        verdict, note = judge_refusal(run, {128 + getattr(signal, signame)}, [f"interrupted ({signame})"], [out])
        results.append(Result(CLASSES[3], f"evaluate: {signame} while writing", verdict, note))
    # stale temporaries of a SIGKILLed run (a pid that is gone) in an input folder and in output_dir
    folder = tmp / "s4" / "stale"
    write(folder / "x.nii.gz")
    stale = temporary_name(folder / "x_sr.nii.gz")
    write(stale)
    dead = stale.with_name(stale.name.replace(f".{os.getpid()}.", ".999999999."))
    stale.rename(dead)
    out = tmp / "o4" / "stale"
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={folder}", f"output_dir={out}")
    verdict = "clear" if run.code == 0 and not list(out.glob("*tmp*")) and len(list(out.glob("*_sr.nii.gz"))) == 1 else "unclear"
    results.append(Result(CLASSES[3], "stale temporary of a killed run in an input folder: ignored", verdict, f"exit {run.code}"))
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={folder}", f"output_dir={folder}")
    verdict = "clear" if run.code == 0 and not dead.exists() else "debris"
    results.append(Result(CLASSES[3], "stale temporary in output_dir: removed", verdict, f"exit {run.code}"))
    # a real SIGTERM to a real process with workers=2
    import subprocess
    import time

    out = tmp / "o4" / "proc"
    many = [write(tmp / "s4" / "many" / f"m{i}.nii.gz", phantom((40, 40, 24), seed=i)) for i in range(6)]
    cmd = [sys.executable, "-m", "lfmri.cli.predict", f"ckpt_path={ckpts['tiny']}", f"inputs={many[0].parent}", f"output_dir={out}",
           "progress=false", "workers=2", "device=cpu", "preview=false"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while time.time() < deadline and not (out.is_dir() and any(True for _ in out.iterdir())):
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    time.sleep(1)
    junk = leftovers(out)
    if "Traceback" in err:
        verdict, note = "traceback", err.strip().splitlines()[-1][:160]
    elif junk:
        verdict, note = "debris", ", ".join(junk)
    else:
        verdict, note = ("clear", f"exit {proc.returncode}") if proc.returncode in (143, 0) else ("unclear", f"exit {proc.returncode}: {err[-200:]}")
    results.append(Result(CLASSES[3], "real SIGTERM to predict workers=2 mid-batch", verdict, note))
    return results


def class_mistakes(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    results = []
    scan = write(tmp / "s5" / "scan.nii.gz")
    blocker = tmp / "s5" / "afile"
    blocker.write_text("x")
    out = tmp / "o5"

    def case(name: str, run: Run, names: list[str], codes=frozenset({2})) -> None:
        verdict, note = judge_refusal(run, set(codes), names, [out])
        if blocker.read_text() != "x":
            verdict, note = "lost result", "a user's file was changed"
        results.append(Result(CLASSES[4], name, verdict, note))

    for kind, reason in [("missing_key", "do not fit"), ("extra_key", "do not fit"), ("shape", "do not fit"),
                         ("keyword", "cannot build"), ("bad_value", "cannot build"), ("scale", "x3"), ("hr_size", "cannot build"),
                         ("target_missing", "refused"), ("no_state_dict", "state_dict"), ("schema", "schema"),
                         ("no_metadata", "not an lfmri checkpoint"), ("empty", "not a loadable"), ("random", "not a loadable"),
                         ("truncated", "not a loadable"), ("dir", "does not exist"), ("plain", "not an lfmri checkpoint"),
                         ("slice_axis", "")]:
        case(f"checkpoint: {kind} (predict)", predict(f"ckpt_path={ckpts[kind]}", f"inputs={scan}", f"output_dir={out}/{kind}"), [f"{kind}.ckpt", reason])
    for kind in ("missing_key", "keyword", "scale", "plain"):
        case(f"checkpoint: {kind} (evaluate)", evaluate(ckpt_path=str(ckpts[kind]), inputs=[str(scan)], output_dir=str(out / f"e-{kind}")), [f"{kind}.ckpt"])
    case("checkpoint path missing", predict(f"ckpt_path={tmp}/nope.ckpt", f"inputs={scan}", f"output_dir={out}/m"), ["nope.ckpt"])
    onnx_dir = tmp / "s5" / "onnx"
    onnx_dir.mkdir()
    (onnx_dir / "corrupt.onnx").write_bytes(b"not onnx at all")
    from lfmri.export.exporters import export_onnx
    from lfmri.models.srdensenet import SRDenseNet
    from tests.helpers.predict import TINY_NET

    torch.manual_seed(5)
    export_onnx(SRDenseNet(scale=2, **TINY_NET).eval(), onnx_dir / "other.onnx")
    for name, path, reason in [("missing", onnx_dir / "missing.onnx", "does not exist"), ("corrupt", onnx_dir / "corrupt.onnx", "not an ONNX export"),
                               ("another network's", onnx_dir / "other.onnx", "differs from PyTorch"), ("a folder", onnx_dir, "not a file")]:
        case(f"onnx_path {name}", predict(f"ckpt_path={ckpts['tiny']}", f"inputs={scan}", f"output_dir={out}/onnx", "backend=onnxruntime", f"onnx_path={path}"), ["onnx_path", reason])
    options = [
        (["tile_size=0"], "tile_size"), (["tile_size=-3"], "tile_size"), (["tile_size=abc"], "tile_size"), (["tile_overlap=-1"], "tile_overlap"),
        (["tile_size=32", "tile_overlap=32"], "tile_overlap"), (["tile_size=32", "tile_overlap=99"], "tile_overlap"), (["batch_size=0"], "batch_size"),
        (["batch_size=x"], "batch_size"), (["workers=0"], "workers"), (["device=gpu9"], "device"), (["device=cuda:7"], "device"),
        (["precision=fp8"], "precision"), (["backend=tensorrt"], "backend"), (["threads=0"], "threads"), (["mc_samples=-1"], "mc_samples"),
        (["mc_samples=2", "backend=onnxruntime"], "mc_samples"), (["data_consistency=true"], "data_consistency"), (["nonsense=1"], "nonsense"),
        (["barewords"], "barewords"), (["overwrite=maybe"], "overwrite"), (["onnx_path=x.onnx"], "onnx_path"),
    ]
    for extra, name in options:
        case(f"option {' '.join(extra)}", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={scan}", f"output_dir={out}/opt", *extra), [name])
    case("output_dir is an existing file", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={scan}", f"output_dir={blocker}"), [str(blocker)])
    case("output_dir under an existing file", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={scan}", f"output_dir={blocker}/sub"), [str(blocker)])
    case("evaluate output_dir is an existing file", evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scan)], output_dir=str(blocker)), [str(blocker)])
    case("evaluate tile_overlap >= tile_size", evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scan)], output_dir=str(out / "eo"), tile_size=16, tile_overlap=16), ["tile_overlap=16"])
    case("evaluate batch_size=0", evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scan)], output_dir=str(out / "eb"), batch_size=0), ["batch_size=0"])
    case("evaluate device=gpu9", evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scan)], output_dir=str(out / "ed"), device="gpu9"), ["gpu9"])
    case("inputs: a glob matching nothing", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={tmp}/none/*.nii.gz", f"output_dir={out}/g"), ["matches no files"], {1})
    case("inputs: a missing file", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={tmp}/none.nii.gz", f"output_dir={out}/g2"), ["none.nii.gz", "does not exist"], {1})
    empty = tmp / "s5" / "empty"
    empty.mkdir()
    case("inputs: an empty folder", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={empty}", f"output_dir={out}/g3"), ["empty", "without volume files"], {1})
    # the same file under several spellings: one input, not a collision
    link = tmp / "s5" / "link.nii.gz"
    link.symlink_to(scan)
    cwd = os.getcwd()
    os.chdir(scan.parent)
    try:
        run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=[./scan.nii.gz,scan.nii.gz,{scan},../s5/scan.nii.gz,{link}]", f"output_dir={out}/spell")
    finally:
        os.chdir(cwd)
    ok = run.code == 0 and "shares the output name" not in run.text and len(list((out / "spell").glob("*_sr.nii.gz"))) == 1
    results.append(Result(CLASSES[4], "one file under five spellings (./, abs, ../, a link)", "clear" if ok else "unclear", f"exit {run.code}"))
    twin = write(tmp / "s5" / "twin" / "scan.nii")
    case("two different files with one output name", predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=[{scan},{twin}]", f"output_dir={out}/twin"), ["shares the output name"], {1})
    return results


# ---------------------------------------------------------------- the training side and stored configs

SECRET = "hostile-s3cr3t"  # the value of $LFMRI_HOSTILE_SECRET: it must never show up in any output


def crafted_config(ckpts: dict[str, Path], folder: Path, name: str, change: Callable[[dict], None]) -> Path:
    """The bicubic checkpoint with its stored config changed by ``change`` (an attacker's edit)."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = torch.load(ckpts["bicubic"], weights_only=True)
    change(checkpoint["lfmri"]["config"])
    torch.save(checkpoint, folder / f"{name}.ckpt")
    return folder / f"{name}.ckpt"


def other_tool(entry: Callable[[list[str]], int], *options: str) -> Run:
    return call(lambda: entry(list(options)))


def train_config(tmp: Path, run_dir: Path, *overrides: str):
    """A composed tiny training config with its ``hydra`` node, as RunChecks sees it (no training run)."""
    from tests.helpers.config import compose
    from tests.helpers.run import TINY

    volumes = tmp / "train-volumes"
    if not volumes.is_dir():
        write(volumes / "a.nii.gz")
    return compose(*TINY, f"data.pattern={volumes}/*.nii.gz", f"hydra.run.dir={run_dir}", *overrides,
                   output_dir=str(run_dir), hydra=True)


def without_hydra(cfg):
    """``cfg`` as the task function gets it (Hydra's own node left out)."""
    from omegaconf import open_dict

    with open_dict(cfg):
        cfg.pop("hydra")
    return cfg


def run_checks(cfg) -> Run:
    """``RunChecks.on_run_start``: what lfmri-train runs before Hydra writes the run directory."""
    from lfmri.cli.common import RunChecks

    return call(lambda: RunChecks().on_run_start(cfg))


def release(folder: Path) -> None:
    """Give up this process's lock on ``folder`` (an in-process run that was let in); none before the fix."""
    try:
        from lfmri.files import unlock_folder
    except ImportError:
        return
    unlock_folder(folder)


def class_stored(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    """Interpolations in stored configs, a run folder's config and file names; stored paths as write targets."""
    from lfmri.cli import export as export_cli
    from lfmri.cli import pretrained as pretrained_cli

    os.environ["LFMRI_HOSTILE_SECRET"] = SECRET
    results = []
    scan = write(tmp / "scan.nii.gz")
    victim = tmp / "victim.txt"
    victim.write_text("precious")

    def judged(name: str, run: Run, names: list[str], witnesses: list[Path], codes=frozenset({2})) -> None:
        verdict, note = judge_refusal(run, set(codes), names)
        if any(w.exists() for w in witnesses) or victim.read_bytes() != b"precious":
            verdict, note = "file effect", f"exit {run.code}; a file was written from a stored value"
            victim.write_text("precious")  # for the next case
        elif SECRET in run.text:
            verdict, note = "file effect", f"exit {run.code}; $LFMRI_HOSTILE_SECRET's value was printed"
        results.append(Result(CLASSES[5], name, verdict, note))

    payloads = {
        "savetxt": lambda w: "${oc.create:{_target_: numpy.savetxt, fname: '" + str(w) + "', X: [1.0]}}",
        "copyfile": lambda w: "${oc.create:{_target_: shutil.copyfile, src: '" + str(ckpts["bicubic"]) + "', dst: '" + str(victim) + "'}}",
        "env": lambda w: "${oc.env:LFMRI_HOSTILE_SECRET}",
    }
    for group in ("model", "degradation", "data"):
        for kind, payload in payloads.items():
            witness = tmp / f"{group}-{kind}.txt"
            ckpt = crafted_config(ckpts, tmp / "ckpts", f"{group}-{kind}", lambda c: c[group].__setitem__("payload", payload(witness)))
            key = f"lfmri.config.{group}.payload"
            judged(f"predict: {kind} in stored {group}", predict(f"ckpt_path={ckpt}", f"inputs={scan}", f"output_dir={tmp}/p-{group}-{kind}"),
                   [ckpt.name, key], [witness])
            judged(f"evaluate: {kind} in stored {group}", evaluate(ckpt_path=str(ckpt), inputs=[str(scan)],
                   output_dir=str(tmp / f"e-{group}-{kind}"), classical=[]), [ckpt.name, key], [witness])
            if kind != "env":
                judged(f"export: {kind} in stored {group}", other_tool(export_cli.main, f"ckpt_path={ckpt}", f"output_dir={tmp}/x-{group}-{kind}",
                       "format=torchscript"), [ckpt.name, key], [witness])
    witness = tmp / "pack.txt"
    ckpt = crafted_config(ckpts, tmp / "ckpts", "pack", lambda c: c["model"].__setitem__("payload", payloads["savetxt"](witness)))
    judged("pretrained pack: savetxt in stored model", other_tool(pretrained_cli.main, "pack", f"checkpoint={ckpt}", "name=hostile",
           f"dest={tmp}/pack"), ["pack.ckpt", "lfmri.config.model.payload"], [witness])
    # an interpolation hidden in a stored value the tools read by key (slice_axis) and in a list
    ckpt = crafted_config(ckpts, tmp / "ckpts", "deep", lambda c: c["data"].__setitem__("percentiles", [1.0, "${oc.env:LFMRI_HOSTILE_SECRET}"]))
    judged("predict: env in a stored list", predict(f"ckpt_path={ckpt}", f"inputs={scan}", f"output_dir={tmp}/deep"),
           ["deep.ckpt", "lfmri.config.data.percentiles[1]"], [])

    # init_from and resume read the checkpoint in lfmri.training.run.train
    from lfmri.cli.common import run_entry
    from lfmri.training.run import train

    for option in ("init_from", "resume"):
        witness = tmp / f"{option}.txt"
        ckpt = crafted_config(ckpts, tmp / "ckpts", option, lambda c: c["data"].__setitem__("payload", payloads["savetxt"](witness)))
        run_dir = tmp / f"run-{option}"
        if option == "resume":
            (run_dir / "checkpoints").mkdir(parents=True)
            ckpt = ckpt.rename(run_dir / "checkpoints" / "last.ckpt")
            cfg = train_config(tmp, run_dir, "model=bicubic", "degradation=bicubic", "resume=true")
        else:
            cfg = train_config(tmp, run_dir, "model=bicubic", "degradation=bicubic", f"init_from={ckpt}")
        cfg = without_hydra(cfg)
        judged(f"{option}: savetxt in stored data", call(lambda: run_entry("train.py", train, cfg)),
               [ckpt.name, "lfmri.config.data.payload"], [witness])

    # a run folder's .hydra/config.yaml, compared by resume=true: read as text, never evaluated
    from omegaconf import OmegaConf

    run_dir = tmp / "run-hydra"
    witness = tmp / "hydra-config.txt"
    cfg = train_config(tmp, run_dir, "model=bicubic", "degradation=bicubic", "resume=true")
    stored = OmegaConf.to_container(cfg, resolve=False)
    stored.pop("hydra")
    stored["seed"] = "${oc.env:LFMRI_HOSTILE_SECRET}"
    stored["data"]["payload"] = payloads["savetxt"](witness)
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(stored)))
    (run_dir / "checkpoints").mkdir()
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(ckpts["bicubic"].read_bytes())
    judged("resume: interpolations in the run's .hydra/config.yaml", run_checks(cfg), ["resume: the config differs", "seed"], [witness])
    release(run_dir)

    # file names are names: a scan called ${oc.env:...} given to predict, and found in a folder by evaluate
    odd = write(tmp / "odd" / "scan_${oc.env:LFMRI_HOSTILE_SECRET}.nii.gz")
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=['{odd}']", f"output_dir={tmp}/odd-out")
    made = [p.name for p in (tmp / "odd-out").glob("*_sr.nii.gz")] if (tmp / "odd-out").is_dir() else []
    verdict, note = ("clear", "exit 0, written under its literal name") if run.code == 0 and made == ["scan_${oc.env:LFMRI_HOSTILE_SECRET}_sr.nii.gz"] \
        else judge_refusal(run, {0}, [])
    results.append(Result(CLASSES[5], "predict: a file named ${oc.env:...} given as input", verdict if SECRET not in run.text else "file effect", note))
    run = evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=str(tmp / "odd"), output_dir=str(tmp / "odd-eval"), classical=[])
    verdict, note = ("clear", "exit 0") if run.code == 0 else judge_refusal(run, {0}, [])
    results.append(Result(CLASSES[5], "evaluate: a folder holding a file named ${oc.env:...}", verdict if SECRET not in run.text else "file effect", note))

    # stored paths are never write targets: data.split_file / data.report_file of a stored (paired) data config
    from omegaconf import OmegaConf

    from lfmri.checkpoints.stored_run import StoredRun
    from tests.helpers.config import compose

    paired = OmegaConf.to_container(compose("model=bicubic", "degradation=bicubic", "data=paired_lowfield", "data.root=/nowhere",
                                            output_dir=str(tmp / "train-out")).data, resolve=True)
    for key in ("split_file", "report_file"):
        target = tmp / f"stored-{key}.txt"
        target.write_text("precious")
        ckpt = crafted_config(ckpts, tmp / "ckpts", key, lambda c: c.__setitem__("data", {**paired, key: str(target)}))

        def build() -> int:  # what evaluate does with a checkpoint's data config (StoredRun.datamodule)
            stored_run = StoredRun.load(ckpt)
            datamodule = stored_run.datamodule(degradation=stored_run.degradation(), input_mode="lr", num_workers=0)
            return 0 if getattr(datamodule, key, None) in (None, "") else 1

        run = call(build)
        changed = target.read_text() != "precious"
        verdict = "file effect" if changed else ("clear" if run.code == 0 else
                                                 "silent wrong output" if run.code == 1 else judge_refusal(run, {0}, [])[0])
        results.append(Result(CLASSES[5], f"stored data.{key} outside output_dir: the rebuilt data module's target",
                              verdict, f"exit {run.code} (1: the stored path kept as a write target)"))
    os.environ.pop("LFMRI_HOSTILE_SECRET", None)
    return results


def class_runs(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    """Run folders reused, written by two runs at once, evaluated into; summaries replaced; cleanup."""
    import subprocess

    from lfmri.cli import sweep as sweep_cli

    results = []

    def judged(name: str, run: Run, names: list[str], kept: dict[Path, bytes], codes=frozenset({2})) -> None:
        verdict, note = judge_refusal(run, set(codes), names)
        lost = [str(p) for p, content in kept.items() if not p.is_file() or p.read_bytes() != content]
        if lost:
            verdict, note = "lost result", f"exit {run.code}; replaced or removed: {', '.join(lost)[:120]}"
        results.append(Result(CLASSES[6], name, verdict, note))

    def holding(folder: Path, **files: str) -> dict[Path, bytes]:
        kept = {}
        for name, text in files.items():
            path = folder / name.replace("__", "/")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            kept[path] = text.encode()
        return kept

    # hydra.run.dir = a folder that holds someone's files: a new run there is refused
    for label, files, extra in [
        ("the user's metrics.json", {"metrics.json": "{}"}, []),
        ("an earlier run's split.json and logs", {"split.json": "{}", "logs__metrics.csv": "step\n1\n", "train.log": "x"}, []),
        ("a .hydra/ record without checkpoints", {".hydra__config.yaml": "a: 1\n", ".hydra__overrides.yaml": "[]\n"}, []),
        ("files, resume=auto without last.ckpt", {"notes.txt": "mine"}, ["resume=auto"]),
        ("the user's own folder (README.txt)", {"README.txt": "mine"}, []),
    ]:
        run_dir = tmp / f"reuse-{len(results)}"
        kept = holding(run_dir, **files)
        judged(f"train into a folder holding {label}", run_checks(train_config(tmp, run_dir, *extra)), [str(run_dir), "already holds"], kept)
        release(run_dir)
    # a running training holds its folder: a second one started meanwhile (fresh, resume=true) is refused
    for resume in (False, True):
        run_dir = tmp / f"busy-{resume}"
        kept = holding(run_dir, **{".hydra__config.yaml": "a: 1\n", "checkpoints__last.ckpt": "weights"})
        holder = subprocess.Popen(
            [sys.executable, "-c", "import sys, time\ntry:\n from lfmri.files import lock_folder\n lock_folder(sys.argv[1], 'hydra.run.dir')\n"
             "except ImportError:\n pass\nprint('ready', flush=True)\ntime.sleep(120)", str(run_dir)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        try:
            holder.stdout.readline()
            cfg = train_config(tmp, run_dir, *(["resume=true", "resume_allow_changes=true"] if resume else []))
            run = run_checks(cfg)
            names = [str(run_dir), "another lfmri process" if resume else "already holds"]
            judged(f"a second training into a running run's folder ({'resume=true' if resume else 'fresh'})", run, names, kept)
            release(run_dir)
        finally:
            holder.kill()
            holder.wait()
    # two trainings into one new folder, the second started while the first (this process) holds it
    from omegaconf import OmegaConf

    run_dir = tmp / "twice"
    first = run_checks(train_config(tmp, run_dir))
    config_file = tmp / "twice.yaml"
    config_file.write_text(OmegaConf.to_yaml(train_config(tmp, run_dir)))
    child = subprocess.run([sys.executable, "-c", "import sys\nfrom omegaconf import OmegaConf\nfrom lfmri.cli.common import RunChecks\n"
                            "RunChecks().on_run_start(OmegaConf.load(sys.argv[1]))", str(config_file)],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    second = Run(child.returncode, child.stderr + child.stdout, None)
    verdict, note = judge_refusal(second, {2}, [str(run_dir), "another lfmri process"])
    results.append(Result(CLASSES[6], "two trainings into one new folder, the second started meanwhile", verdict if first.code == 0 else "unclear", note))
    release(run_dir)

    # evaluate with output_dir = a training run: its .hydra/config.yaml would be replaced
    run_dir = tmp / "trained"
    kept = holding(run_dir, **{".hydra__config.yaml": "model: x\n", ".hydra__hydra.yaml": "hydra:\n  job:\n    config_name: train\n",
                               ".hydra__overrides.yaml": "[]\n"})
    judged("evaluate output_dir=<a training run>", evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(write(tmp / "s.nii.gz"))],
           output_dir=str(run_dir), classical=[]), ["output_dir", str(run_dir)], kept)

    # lfmri-sweep summarize over a summary it did not write
    sweep = tmp / "sweep"
    holding(sweep / "0", **{".hydra__overrides.yaml": "- loss=l1\n", "metrics.json": '{"metrics": {"val/psnr_brain": 20.0}}'})
    for label, files in [("the user's summary.md", {"summary.md": "my notes\n"}), ("the user's summary.csv", {"summary.csv": "a,b\n"}),
                         ("both, the user's", {"summary.md": "mine\n", "summary.csv": "mine\n"})]:
        kept = holding(sweep, **files)
        judged(f"summarize over {label}", other_tool(sweep_cli.main, "summarize", f"output_dir={sweep}"), ["summary"], kept)
        for path in kept:
            path.unlink()
    run = other_tool(sweep_cli.main, "summarize", f"output_dir={sweep}")
    again = other_tool(sweep_cli.main, "summarize", f"output_dir={sweep}")
    results.append(Result(CLASSES[6], "summarize twice (its own summary refreshed)", "clear" if run.code == 0 and again.code == 0 else
                          judge_refusal(again, {0}, [])[0], f"exit {run.code}, {again.code}"))
    edited = sweep / "summary.md"
    edited.write_text(edited.read_text() + "\nmy remark\n")
    judged("summarize over its own summary.md, edited since", other_tool(sweep_cli.main, "summarize", f"output_dir={sweep}"),
           ["summary.md"], {edited: edited.read_bytes()})

    # a fresh run failing on a user error removes what it created, never another job's files beside it
    from lfmri.cli.common import run_entry
    from lfmri.errors import ConfigError

    for label, run_dir, other in [
        ("another job's run beside it", tmp / "outputs" / "train" / "run1", tmp / "outputs" / "train" / "run2" / "metrics.json"),
        ("another job's file in a parent it created", tmp / "o2" / "train" / "run1", tmp / "o2" / "notes.txt"),
    ]:
        cfg = train_config(tmp, run_dir)
        checked = run_checks(cfg)

        def task(cfg, run_dir=run_dir, other=other):
            (run_dir / ".hydra").mkdir(parents=True, exist_ok=True)
            (run_dir / ".hydra" / "config.yaml").write_text("a: 1\n")
            other.parent.mkdir(parents=True, exist_ok=True)
            other.write_text("theirs")
            raise ConfigError("data.pattern: a mistake found after the start")

        cfg = without_hydra(cfg)
        run = call(lambda: run_entry("train.py", task, cfg))
        verdict, note = judge_refusal(run, {2}, ["data.pattern"])
        if not other.is_file():
            verdict, note = "lost result", f"{other} was removed with the failed run"
        elif run_dir.exists():
            verdict, note = "debris", f"{run_dir} left behind"
        results.append(Result(CLASSES[6], f"a failed fresh run's cleanup: {label}", verdict if checked.code == 0 else "unclear", note))
        release(run_dir)


# ---------------------------------------------------------------- the training side (classes 8-10)


def train_process(*options: str, cwd: Path = ROOT, timeout: int = 900, multirun: bool = False) -> Run:
    """``train.py`` with the tests' tiny settings and ``options``, as a user runs it (a subprocess)."""
    import subprocess

    from tests.helpers.run import TINY

    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    sweep = ["-m"] if multirun else []  # Hydra's flags come before the overrides
    proc = subprocess.run([sys.executable, str(ROOT / "train.py"), *sweep, *TINY, *options], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)
    return Run(proc.returncode, proc.stderr + proc.stdout, None)


def error_lines(run: Run) -> list[str]:
    return [line for line in run.text.splitlines() if ": error: " in line]


def refused_before_work(name: str, run: Run, names: list[str], run_dir: Path, klass: str) -> Result:
    """Exit 2, one error line naming ``names``, and no run folder left."""
    verdict, note = judge_refusal(run, {2}, names, [run_dir])
    if verdict == "clear" and len(error_lines(run)) != 1:
        verdict, note = "unclear", f"{len(error_lines(run))} error lines"
    if verdict == "clear" and run_dir.exists():
        verdict, note = "debris", f"{run_dir.name} left behind"
    return Result(klass, name, verdict, note)


def paired_collection(root: Path, fault: str) -> Path:
    """A 6-subject paired collection of the tests' fixtures with one kind of ``fault``."""
    from tests.helpers.paired import HF_SHAPE, HF_SPACING, _save, add_volume_faults, pair, write_volume_layout

    root = write_volume_layout(root, subjects=tuple(f"s{i:02d}" for i in range(1, 7)))
    if fault == "faults":
        add_volume_faults(root)
    elif fault == "far":
        hf = nib.load(str(root / "hf" / "s01.nii.gz"))
        far = hf.affine.copy()
        far[0, 3] += 300.0
        nib.save(nib.Nifti1Image(np.asarray(hf.dataobj), far), str(root / "hf" / "s01.nii.gz"))
    elif fault == "other head":
        other = np.zeros(HF_SHAPE, np.float32)
        other[:13, :15, :20] = pair(5)[1][3:16, 3:18, 5:25]
        _save(root / "hf" / "s01.nii.gz", other, HF_SPACING)
    return root


def class_training_data(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    import json

    from lfmri.geometry.nifti import load_nifti, save_nifti
    from tests.helpers.paired import GRID_OVERRIDES
    from tests.helpers.volumes import write_phantom, write_phantom_volumes

    klass = CLASSES[7]
    results = []
    volumes = write_phantom_volumes(tmp / "volumes")
    pattern = f"data.pattern={volumes}/*.nii.gz"
    fast = ["trainer.fast_dev_run=true"]
    for name, subjects, said in [("empty validation split", "{val:[],test:[sub-03]}", "val split has no slices"),
                                 ("empty test split", "{val:[sub-02],test:[]}", "test split has no slices")]:
        run_dir = tmp / "runs" / name.replace(" ", "-")
        run = train_process(pattern, f"data.subjects={subjects}", *fast, f"hydra.run.dir={run_dir}")
        results.append(refused_before_work(f"{name} (found at setup)", run, [said], run_dir, klass))
    flat = tmp / "flat"
    for i in range(3):
        write_phantom(flat / f"s{i}.nii.gz", seed=i)
    nib.save(nib.Nifti1Image(np.full((40, 48, 24), 7.0, np.float32), np.eye(4)), str(flat / "constant.nii.gz"))
    run_dir = tmp / "runs" / "constant"
    run = train_process(f"data.pattern={flat}/*.nii.gz", *fast, f"hydra.run.dir={run_dir}")
    results.append(refused_before_work("a constant volume among the training volumes", run, ["constant.nii.gz", "constant"], run_dir, klass))
    for fault, names in [("faults", ["pair validation of", "the full report:"]), ("far", ["s01", "field of view", "300 mm"]),
                         ("other head", ["s01", "do not look alike"])]:
        root = paired_collection(tmp / f"pairs-{fault.replace(' ', '-')}", fault)
        run_dir = tmp / "runs" / f"pairs-{fault.replace(' ', '-')}"
        run = train_process("data=paired_lowfield", f"data.root={root}", *GRID_OVERRIDES, *fast, f"hydra.run.dir={run_dir}")
        result = refused_before_work(f"paired data: {fault}", run, names, run_dir, klass)
        report = next((Path(line.split("the full report: ")[1].split(";")[0]) for line in error_lines(run) if "the full report: " in line), None)
        if result.verdict == "clear" and (report is None or not report.is_file()):
            result = Result(klass, result.case, "unclear", "the report file named is missing")
        if report is not None:
            report.unlink(missing_ok=True)
        results.append(result)
    # lfmri's own outputs beside the scans, found by '**': skipped, as predict and evaluate skip them
    tree = tmp / "tree"
    for i in range(4):
        scan = write_phantom(tree / f"site{i % 2}" / f"sub-{i}.nii.gz", seed=i)
        volume = load_nifti(scan)
        save_nifti(tree / f"site{i % 2}" / "out" / f"sub-{i}_sr.nii.gz", volume.data, volume.affine,
                   description=f"sr lfmri 1.0 tiny x2 {ckpts['tiny'].name}")
    run_dir = tmp / "runs" / "own-outputs"
    run = train_process(f"data.pattern={tree}/**/*.nii.gz", *fast, f"hydra.run.dir={run_dir}")
    split = json.loads((run_dir / "split.json").read_text()) if (run_dir / "split.json").is_file() else {}
    subjects = sorted(seg["subject"] for segs in split.values() for seg in segs)
    if run.code != 0:
        verdict, note = judge_refusal(run, {0}, [], [])
    elif any("_sr" in s for s in subjects) or len(subjects) != 4:
        verdict, note = "silent wrong output", f"trained on {subjects}"
    else:
        verdict, note = "clear", "trained on the 4 scans only"
    results.append(Result(klass, "data.pattern with ** over a tree holding predict's *_sr outputs", verdict, note))
    run_dir = tmp / "runs" / "list-form"
    run = train_process(f"data.pattern=[{tree}/site0/*.nii.gz,{tree}/site1/*.nii.gz]", *fast, f"hydra.run.dir={run_dir}")
    verdict, note = ("clear", "exit 0") if run.code == 0 and (run_dir / "split.json").is_file() else judge_refusal(run, {0}, [], [])
    results.append(Result(klass, "the documented list form data.pattern='[a/*.nii.gz,b/*.nii.gz]'", verdict, note))
    cwd = tmp / "cwd"
    cwd.mkdir()
    (cwd / "notes.txt").write_text("mine")
    run = train_process(pattern, *fast, "hydra.run.dir=", cwd=cwd)
    result = refused_before_work("empty hydra.run.dir=", run, ["hydra.run.dir"], tmp / "runs" / "none", klass)
    if sorted(p.name for p in cwd.iterdir()) != ["notes.txt"]:
        result = Result(klass, result.case, "silent wrong output", f"wrote into the current folder: {sorted(p.name for p in cwd.iterdir())}")
    results.append(result)
    results.append(disk_full_while_saving(tmp / "disk-full", klass))
    return results


def disk_full_while_saving(folder: Path, klass: str) -> Result:
    """A checkpoint save that the disk refuses, under run_entry as train.py runs it: one line, the previous kept."""
    import errno

    import lfmri.checkpoints.atomic_io as atomic_io
    from lfmri.checkpoints.atomic_io import AtomicCheckpointIO
    from lfmri.cli.common import run_entry
    from omegaconf import OmegaConf

    last = folder / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, last)
    real = atomic_io.torch.save

    def full(obj, target):
        Path(target).write_bytes(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    atomic_io.torch.save = full
    try:
        run = call(lambda: run_entry("train.py", lambda cfg: AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(2)}, last),
                                     OmegaConf.create({})))
    finally:
        atomic_io.torch.save = real
    verdict, note = judge_refusal(run, {2}, [str(last), "No space left"], [last.parent])
    if verdict == "clear" and int(torch.load(last, weights_only=True)["step"]) != 1:
        verdict, note = "lost result", "the previous last.ckpt was replaced"
    return Result(klass, "disk full while saving a checkpoint", verdict, note)


def class_training_tools(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    import json

    from lfmri.cli import sweep
    from lfmri.cli.export import main as export_main
    from tests.helpers.dicom import write_dicom_series

    klass = CLASSES[8]
    results = []
    for option in ("opset=1", "opset=99", "tolerance=nan", "tolerance=-1", "tolerance=0"):
        out = tmp / "export" / option.replace("=", "-")
        run = call(lambda: export_main([f"ckpt_path={ckpts['tiny']}", f"output_dir={out}", option]))
        verdict, note = judge_refusal(run, {2}, [option], [out])
        if verdict == "clear" and out.exists() and any(out.iterdir()):
            verdict, note = "silent wrong output", f"written before the refusal: {sorted(p.name for p in out.iterdir())}"
        results.append(Result(klass, f"lfmri-export {option}: refused before the export", verdict, note))
    scan = write(tmp / "scans" / "scan.nii.gz")
    out = tmp / "classical"
    run = evaluate(ckpt_path=str(ckpts["bicubic"]), inputs=[str(scan)], output_dir=str(out), classical="nlm3d")
    table = (out / "metrics.csv").read_text() if (out / "metrics.csv").is_file() else ""
    if run.code == 0 and "nlm3d" in table:
        verdict, note = "clear", "one nlm3d row"
    else:
        verdict, note = judge_refusal(run, {0}, ["nlm3d"], [out])
    results.append(Result(klass, "evaluate classical=nlm3d (no brackets): one name", verdict, note))
    # DICOM fields
    data = phantom((20, 22, 6)) * 1000
    affine = np.diag([1.0, 1.0, 2.0, 1.0])
    plain = write_dicom_series(tmp / "dicom" / "mono2", data, affine)
    inverted = write_dicom_series(tmp / "dicom" / "mono1", data.max() - data, affine)
    retag(inverted, lambda h: setattr(h, "PhotometricInterpretation", "MONOCHROME1"))
    outputs = {}
    for folder in (plain[0].parent, inverted[0].parent):
        out = tmp / "dicom-out" / folder.name
        predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={folder}", f"output_dir={out}")
        found = list(out.glob("*_sr.nii.gz"))
        outputs[folder.name] = np.asarray(nib.load(found[0]).dataobj) if found else None
    if any(v is None for v in outputs.values()):
        verdict, note = "unclear", "not predicted"
    else:
        r = float(np.corrcoef(outputs["mono2"].ravel(), outputs["mono1"].ravel())[0, 1])
        verdict, note = ("clear", f"correlation with MONOCHROME2 {r:.3f}") if r > 0.99 else ("silent wrong output", f"correlation {r:.3f}")
    results.append(Result(klass, "DICOM MONOCHROME1 read the right way up", verdict, note))
    good = write(tmp / "dicom" / "good.nii.gz")
    slope0 = write_dicom_series(tmp / "dicom" / "slope0", data, affine)
    retag(slope0[2:3], lambda h: setattr(h, "RescaleSlope", "0"))
    out = tmp / "dicom-out" / "slope0"
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs=[{good},{slope0[0].parent}]", f"output_dir={out}")
    verdict, note = judge_refusal(run, {1}, [slope0[2].name, "RescaleSlope 0"], [out])
    if verdict == "clear" and not (out / "good_sr.nii.gz").is_file():
        verdict, note = "unclear", "the good input beside it was not written"
    results.append(Result(klass, "DICOM RescaleSlope 0: refused naming the file, not read as 1", verdict, note))
    study = tmp / "dicom" / "study"
    write_dicom_series(study, data, affine, series_number=1)
    bad = write_dicom_series(study, data, affine, series_number=99, prefix="B")
    for path in bad:  # pydicom refuses to write an IS value that is no number: patched in the file
        path.write_bytes(path.read_bytes().replace(b"\x20\x00\x11\x00IS\x02\x0099", b"\x20\x00\x11\x00IS\x02\x00ab"))
    out = tmp / "dicom-out" / "study"
    run = predict(f"ckpt_path={ckpts['bicubic']}", f"inputs={study}", f"output_dir={out}")
    verdict, note = judge_refusal(run, {1}, [bad[0].name, "SeriesNumber"], [out])
    if verdict == "clear" and len(list(out.glob("*_sr.nii.gz"))) != 1:
        verdict, note = "unclear", "the other series was not written"
    results.append(Result(klass, "DICOM non-numeric SeriesNumber: names the file, the other series read", verdict, note))
    # sweep summaries
    for damaged, content in [("metrics.json", '{"metrics": {"test/psnr'), (".hydra/overrides.yaml", "- [unclosed\n"),
                             ("logs/metrics.csv", b"epoch,step,val/psnr_brain\n\xff\xfe\x00 cut")]:
        sweep_dir = tmp / "sweeps" / damaged.replace("/", "-")
        for job in ("0", "1"):
            run_dir = sweep_dir / job
            (run_dir / ".hydra").mkdir(parents=True)
            (run_dir / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
            (run_dir / "logs").mkdir()
            (run_dir / "logs" / "metrics.csv").write_text("epoch,step,val/psnr_brain\n0,10,20.0\n")
            (run_dir / "metrics.json").write_text(json.dumps({"metrics": {"test/psnr_brain": 21.0}}))
        target = sweep_dir / "1" / damaged
        target.write_bytes(content) if isinstance(content, bytes) else target.write_text(content)
        run = call(lambda: sweep.main(["summarize", f"output_dir={sweep_dir}"]))
        verdict, note = judge_refusal(run, {0}, [str(sweep_dir / "1" / damaged)], [sweep_dir])
        summary = (sweep_dir / "summary.md").read_text() if (sweep_dir / "summary.md").is_file() else ""
        if verdict == "clear" and ("unreadable" not in summary or "complete" not in summary):
            verdict, note = "unclear", "the summary does not mark the damaged run beside the complete one"
        results.append(Result(klass, f"lfmri-sweep summarize: a damaged {damaged}", verdict, note))
    from tests.helpers.volumes import write_phantom_volumes

    volumes = write_phantom_volumes(tmp / "volumes")
    sweep_dir = tmp / "sweeps" / "failed-job"
    run = train_process(f"data.pattern={volumes}/*.nii.gz", "trainer.fast_dev_run=true",
                        "data.subjects={val:[sub-02],test:[sub-03]},{val:[sub-02],test:[]}", f"hydra.sweep.dir={sweep_dir}",
                        multirun=True)
    summary = (sweep_dir / "summary.md").read_text() if (sweep_dir / "summary.md").is_file() else ""
    if "failed: DataError" in summary and "complete" in summary:
        verdict, note = "clear", f"exit {run.code}, summary.md marks the failed job"
    else:
        verdict, note = "lost result", f"exit {run.code}; summary.md {'without the failed job' if summary else 'missing'}"
    results.append(Result(klass, "a sweep with one failed job still writes summary.md", verdict, note))
    return results


def retag(paths: list[Path], change: Callable) -> None:
    import pydicom

    for path in paths:
        header = pydicom.dcmread(path)
        change(header)
        header.save_as(path)


def class_resume(tmp: Path, ckpts: dict[str, Path]) -> list[Result]:
    """Runs stopped at awkward moments and resumed: the metrics of an uninterrupted run, or a refusal."""
    import csv
    import json
    import subprocess
    import time

    from tests.helpers.run import TINY
    from tests.helpers.volumes import write_phantom_volumes

    klass = CLASSES[9]
    volumes = write_phantom_volumes(tmp / "volumes")
    options = [f"data.pattern={volumes}/*.nii.gz", "trainer.max_epochs=2", "data.patches_per_epoch=24",
               "callbacks.last_checkpoint.every_n_train_steps=4", "trainer.limit_val_batches=2", "trainer.limit_test_batches=1"]
    reference = tmp / "reference"
    run = train_process(*options, f"hydra.run.dir={reference}")
    if run.code != 0:
        return [Result(klass, "an uninterrupted reference run", *judge_refusal(run, {0}, [], []))]
    expected = json.loads((reference / "metrics.json").read_text())

    def logged(run_dir: Path) -> list[str]:
        with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
            return [row["step"] for row in csv.DictReader(file)]

    results = []
    for name, signum, pause in [("Ctrl-C (SIGINT) mid-epoch", signal.SIGINT, ["+callbacks.pause.step=9"]),
                                ("SIGTERM mid-epoch", signal.SIGTERM, ["+callbacks.pause.step=9"]),
                                ("SIGKILL inside the epoch-end checkpoint write", signal.SIGKILL,
                                 ["+callbacks.pause.step=12", "+callbacks.pause.during_write=2"])]:
        run_dir = tmp / name.split(" ")[0].replace("(", "")
        flag = tmp / f"{run_dir.name}.paused"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *TINY, *options, f"hydra.run.dir={run_dir}",
                                 "+callbacks.pause._target_=tests.helpers.pause_callback.PauseAtStep", f"+callbacks.pause.flag={flag}",
                                 *pause], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline = time.monotonic() + 600
        while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signum)
        output = proc.communicate(timeout=300)[0]
        if signum != signal.SIGKILL and (proc.returncode != 128 + signum or "resume=true" not in output or "Traceback" in output):
            results.append(Result(klass, name, "traceback" if "Traceback" in output else "unclear",
                                  f"exit {proc.returncode}: {output.strip().splitlines()[-1][:160] if output.strip() else ''}"))
            continue
        resumed = train_process(*options, f"hydra.run.dir={run_dir}", "resume=true", "trust_targets=[tests.helpers.pause_callback]")
        final = json.loads((run_dir / "metrics.json").read_text()) if (run_dir / "metrics.json").is_file() else None
        if resumed.code != 0 or final is None:
            results.append(Result(klass, name, *judge_refusal(resumed, {0}, [], [])))
            continue
        differ = [k for k, v in expected["metrics"].items() if k.startswith(("val/", "test/"))
                  and abs(final["metrics"].get(k, float("nan")) - v) > 1e-5 * max(1.0, abs(v))]
        if final["global_step"] != expected["global_step"] or differ or logged(run_dir) != logged(reference):
            results.append(Result(klass, name, "silent wrong output", f"resumed run differs: {differ[:4]} steps {final['global_step']}"))
        else:
            results.append(Result(klass, name, "clear", f"exit {proc.returncode}, resumed to the same metrics"))
    before = {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()}
    run = train_process(*options, f"hydra.run.dir={reference}", "resume=true")
    after = {p: p.read_bytes() for p in reference.rglob("*") if p.is_file()}
    if run.code == 0 and before == after and "already finished" in run.text:
        verdict, note = "clear", "one line, nothing changed"
    elif before != after:
        verdict, note = "lost result", f"changed: {sorted(p.name for p in set(before) | set(after) if before.get(p) != after.get(p))[:4]}"
    else:
        verdict, note = judge_refusal(run, {0}, ["already finished"], [])
    results.append(Result(klass, "resume=true on a finished run", verdict, note))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=int, choices=range(1, len(CLASSES) + 1), help=f"run one class (1-{len(CLASSES)})")
    parser.add_argument("--keep", help="generate into this folder and keep it")
    args = parser.parse_args()
    torch.set_num_threads(1)
    logging.basicConfig(level=logging.INFO, handlers=[TAP])
    for noisy in ("lightning", "torch", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    context = contextlib.nullcontext(args.keep) if args.keep else tempfile.TemporaryDirectory()
    with context as folder:
        tmp = Path(folder)
        tmp.mkdir(parents=True, exist_ok=True)
        ckpts = checkpoints(tmp / "ckpts")
        runners = [class_lost, class_batch, class_wrong, class_debris, class_mistakes, class_stored, class_runs,
                   class_training_data, class_training_tools, class_resume]
        results: list[Result] = []
        for number, runner in enumerate(runners, 1):
            if args.only and args.only != number:
                continue
            for result in runner(tmp / f"c{number}", ckpts):
                results.append(result)
                print(f"{result.verdict:20s} {result.klass:28s} {result.case}  [{result.note}]", flush=True)
    table: dict[str, Counter] = defaultdict(Counter)
    for result in results:
        table[result.klass][result.verdict] += 1
    verdicts = ["clear", "traceback", "silent wrong output", "lost result", "debris", "unclear", "file effect"]
    print("\n| class | cases | " + " | ".join(verdicts) + " |")
    print("|---|---:|" + "---:|" * len(verdicts))
    for klass in CLASSES:
        if klass in table:
            counts = table[klass]
            print(f"| {klass} | {sum(counts.values())} | " + " | ".join(str(counts[v]) for v in verdicts) + " |")
    total = Counter(r.verdict for r in results)
    print(f"| all | {len(results)} | " + " | ".join(str(total[v]) for v in verdicts) + " |")
    return 0 if total["clear"] == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
