"""Apply a trained checkpoint to real low-field volumes: ``lfmri-predict`` (or ``python -m lfmri.cli.predict``).

    lfmri-predict ckpt_path=CKPT inputs='[scan.nii.gz,folder/]' output_dir=DIR \\
        [data_consistency=true] [tta=true] [mc_samples=N] [tile_size=256] [device=cuda precision=bf16]
        [precision=auto|fp32|bf16] [backend=torch|onnxruntime [onnx_path=FILE]] [workers=N]
    lfmri-predict pretrained=srdensenet-kspace-x2 inputs=scan.nii.gz output_dir=DIR   # a shipped network

Everything about the network comes from the checkpoint (its config and model card): scale, input
mode, the percentile normalisation, the slice axis and the sampling grid of its degradation. Each
volume is read in canonical orientation, normalised, cut into slices along the training axis,
super-resolved in batches (tiled above ``tile_size`` so memory stays bounded), mapped back to the
input's intensity range and written as float32 NIfTI in the input's orientation. The in-plane voxel
sizes are divided by the scale and the affine places the output grid where the degradation's grid
says it sits, so the field of view stays aligned with the input (within half an output voxel).
Checkpoints trained on real pairs (``data=paired_lowfield``) first resample the scan as training
did (``data.lf_shape``/``lf_spacing``, then the LR grid of ``data.hf_shape``/``hf_spacing``, or that
high-field grid for pre-upsampled networks), so the output lies on the configured 3T grid.

Outputs per input ``NAME`` (a file's name without extensions; a DICOM folder's name, plus series
number and description where it holds several series): ``NAME_sr.nii.gz``; with ``data_consistency=true`` the SR after data
consistency plus ``NAME_consistency.nii.gz`` (|D(SR) - LR| of the network's raw output, on the
input grid); with ``tta=true`` or ``mc_samples>0`` ``NAME_uncertainty.nii.gz`` (per-voxel std of
the predictions); ``NAME_views.png``, three orthogonal views of scan, SR and |SR - scan| (``preview=false`` skips). Existing files are never replaced unless ``overwrite=true``; a bad input is
reported by name and the other volumes still run (exit status 1 if any failed; 2 if outputs existed, also when
another run wrote them meanwhile: files are placed without replacing anything). Ctrl-C or SIGTERM stops with
one line (exit status 130 or 143) and leaves no temporary file; lfmri's own outputs and the temporaries of a
killed run are skipped when their folder is an input.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from typing import TYPE_CHECKING

from lfmri.cli.options import fail, parse_options
from lfmri.errors import ExistingOutputError
from lfmri.files import Interrupted, remove_stale_temporaries, signals_raise
from lfmri.inference.options import PredictConfig

if TYPE_CHECKING:
    from lfmri.geometry.inputs import Input
    from lfmri.inference.predictor import Predictor

# torch, the checkpoint loader and the predictor are imported inside the functions that run a
# prediction, after the options are read: `lfmri-predict --help` does not wait for them

log = logging.getLogger(__name__)
PROG = "lfmri-predict"
INPUTS_HELP = ("\ninputs: a file, a list '[a.nii.gz,b.mgz]', a folder, a quoted glob 'dir/*.nii.gz', or a folder of DICOM "
               "files (one volume per series, written as NIfTI)\n")


_WORKER: Predictor | None = None  # the Predictor of a workers=N process


class ExistingOutputs(str):
    """The failure message of an input whose outputs exist: the user's choice to make (exit status 2)."""


def _raise_interrupted(signum: int, frame) -> None:
    raise Interrupted(signum)


def _start_worker(cfg: PredictConfig) -> None:
    import torch

    from lfmri.checkpoints.stored_run import StoredRun
    from lfmri.inference.predictor import Predictor

    global _WORKER
    # the parent stops its workers with SIGTERM: raised, so a volume being written removes its temporaries
    signal.signal(signal.SIGTERM, _raise_interrupted)
    # one thread per process: N single-threaded forwards beat one N-threaded forward on small CPUs,
    # where ~270 short parallel regions per forward each wait for the slowest (descheduled) thread
    torch.set_num_threads(1)
    _WORKER = Predictor(StoredRun.load(cfg.ckpt_path, cfg.trust_targets), cfg)


def _predict_file(predictor: Predictor, path: Input) -> tuple[dict[str, Path] | None, str | None]:
    """(outputs, None) or (None, error message) for one input; bad inputs do not stop the others."""
    from lfmri.geometry.inputs import load_input
    from lfmri.geometry.nifti import NiftiError

    try:
        return predictor.volume(load_input(path)), None
    except ExistingOutputError as err:  # another run wrote this input's outputs meanwhile
        return None, ExistingOutputs(f"{path}: {err}")
    except (NiftiError, FileExistsError, ValueError) as err:  # messages that name the file already
        return None, str(err)
    except Exception as err:  # full disk, unwritable folder, out of memory, a reader's or the network's error
        log.debug("the failure of %s", path, exc_info=True)
        return None, f"{path}: {type(err).__name__}: {err}"


def _predict_in_worker(path: Input) -> tuple[dict[str, Path] | None, str | None]:
    return _predict_file(_WORKER, path)


def _in_workers(cfg: PredictConfig, todo: list[Input]):
    """Each input's result, in order, from ``min(workers, inputs)`` spawned processes; a worker that dies
    (killed, out of memory) fails its inputs by name, and an interrupt stops the workers, which clean up."""
    # spawn, not fork: a forked child of a process that has run OpenMP regions can deadlock
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(min(cfg.workers, len(todo)), context, initializer=_start_worker, initargs=(cfg,))
    try:
        futures = [pool.submit(_predict_in_worker, path) for path in todo]
        for path, future in zip(todo, futures):
            try:
                yield future.result()
            except Exception as err:  # BrokenProcessPool: a worker died; the checkpoint failing in a worker
                yield None, f"{path}: not predicted, a worker process failed ({type(err).__name__}: {err})"
    except BaseException:
        # Ctrl-C or SIGTERM: the workers get SIGTERM, raise, and remove the temporaries of their writes
        pool.shutdown(wait=False, cancel_futures=True)
        for process in list((getattr(pool, "_processes", None) or {}).values()):  # no public handle on them
            if process.is_alive():
                process.terminate()
        for process in list((getattr(pool, "_processes", None) or {}).values()):
            process.join(timeout=30)
        raise
    pool.shutdown(wait=True)


def run_predict(cfg: PredictConfig) -> tuple[dict[str, dict[str, Path]], dict[str, str]]:
    """Predict every input; returns (outputs per input, error message per failed input).

    ``workers=N > 1`` predicts N volumes at once in spawned processes, one thread each (the
    checkpoint is read again in each); every volume's output is the one a single-threaded
    ``workers=1`` run writes.
    """
    import torch

    from lfmri.checkpoints.stored_run import StoredRun
    from lfmri.geometry.inputs import expand_inputs, input_name
    from lfmri.geometry.nifti import NiftiError
    from lfmri.inference.predictor import Predictor
    from lfmri.pretrained import resolve as resolve_checkpoint

    problem = option_problem(cfg)
    if problem:
        raise ValueError(problem)
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    cfg.ckpt_path = str(resolve_checkpoint(cfg.ckpt_path, cfg.pretrained))  # messages name the file
    predictor = Predictor(StoredRun.load(cfg.ckpt_path, cfg.trust_targets), cfg)
    remove_stale_temporaries(cfg.output_dir)  # what a killed run left (only its writers are gone)
    done, failed = {}, {}
    try:
        paths = expand_inputs(cfg.inputs)
    except NiftiError as err:
        return done, {err.path: str(err)}
    names = [input_name(p) for p in paths]
    todo = []
    for path in paths:
        try:
            if names.count(input_name(path)) > 1:
                raise NiftiError(str(path), f"shares the output name {input_name(path)!r} with another input; predict them separately")
            existing = [str(p) for p in predictor.output_paths(path).values() if p.exists()]
            if existing and not cfg.overwrite:
                raise ExistingOutputError(f"{path}: outputs already exist ({', '.join(existing)}); pass overwrite=true to replace them")
            todo.append(path)
        except ExistingOutputError as err:
            failed[str(path)] = ExistingOutputs(str(err))
            log.error("%s", err)
        except NiftiError as err:
            failed[str(path)] = str(err)
            log.error("%s", err)
    from lfmri.progress import duration, time_left

    log_setup(predictor, cfg, len(todo))
    start = time.perf_counter()
    if cfg.workers > 1 and len(todo) > 1:
        results = _in_workers(cfg, todo)
    else:
        results = (_predict_file(predictor, path) for path in todo)
    try:
        for count, (path, (outputs, problem)) in enumerate(zip(todo, results), 1):
            if problem is not None:
                failed[str(path)] = problem
                log.error("%s", problem)
            else:
                done[str(path)] = outputs
                log.info("%s -> %s", path, ", ".join(str(p) for p in outputs.values()))
            if count < len(todo):  # the estimate: the volumes so far, at their mean time
                elapsed = time.perf_counter() - start
                log.info("%d/%d volumes in %s; about %s left", count, len(todo), duration(elapsed),
                         duration(time_left(count, len(todo), elapsed)))
    finally:  # an interrupt here, between volumes: the workers are stopped now, not when garbage is collected
        results.close()
    return done, failed


def log_setup(predictor: Predictor, cfg: PredictConfig, volumes: int) -> None:
    """One line saying where and how the network runs: device, precision, threads, backend, workers."""
    import torch

    from lfmri.inference.network import resolve_precision

    precision = resolve_precision(cfg.precision, predictor.device, predictor.card, cfg.backend)
    if cfg.backend != "torch":
        precision = "fp32"
    if cfg.workers > 1 and volumes > 1:
        threads = f"{min(cfg.workers, volumes)} worker processes, 1 thread each"
    elif predictor.device.type == "cpu":
        count = torch.get_num_threads()
        threads = f"{count} CPU thread{'s' if count != 1 else ''}"
    else:
        threads = torch.cuda.get_device_name(predictor.device) if predictor.device.type == "cuda" else ""
    how = ", ".join(part for part in (f"precision {precision} (precision={cfg.precision})", f"backend {cfg.backend}", threads) if part)
    log.info("predicting %d volume(s) with %s x%d on %s: %s", volumes, predictor.card.get("name", "the network"),
             predictor.scale, predictor.device, how)


def folder_problem(folder: Path) -> str | None:
    """Why ``folder`` cannot be (created as) a folder: it, or the first of its parents that exists, is a file."""
    for path in (folder, *folder.parents):
        if path.exists():
            if path.is_dir():
                return None
            return f"{folder} is an existing file, not a folder" if path == folder else f"{path} is a file, not a folder"
    return None


def option_problem(cfg: PredictConfig) -> str | None:
    """The first option with an impossible value, as one line naming it, or ``None``."""
    for name in ("batch_size", "tile_size"):
        if int(getattr(cfg, name)) < 1:
            return f"bad value for option '{name}': {getattr(cfg, name)}; must be a positive integer"
    if cfg.threads is not None and int(cfg.threads) < 1:
        return f"bad value for option 'threads': {cfg.threads}; must be a positive integer (or leave it out)"
    if int(cfg.tile_overlap) < 0 or int(cfg.mc_samples) < 0:
        return "bad value for option 'tile_overlap' or 'mc_samples': must not be negative"
    if int(cfg.tile_overlap) >= int(cfg.tile_size):
        return f"bad value for option 'tile_overlap': {cfg.tile_overlap}; must be smaller than tile_size={cfg.tile_size}"
    problem = folder_problem(Path(cfg.output_dir))
    if problem:
        return f"bad value for option 'output_dir': {problem}; give a folder for the outputs"
    if cfg.onnx_path and not Path(cfg.onnx_path).is_file():
        return f"bad value for option 'onnx_path': {cfg.onnx_path} does not exist (or is not a file)"
    if len(cfg.inputs) == 0:
        return "option 'inputs' is empty: give NIfTI files and/or folders, e.g. inputs='[scan.nii.gz]'"
    from lfmri.inference.network import resolve_device

    try:
        resolve_device(cfg.device)
    except ValueError as err:
        return f"bad value for option 'device': {err}"
    return None


def parse_args(argv: Sequence[str]) -> PredictConfig:
    """``key=value`` options over :class:`~lfmri.inference.options.PredictConfig` (the shared grammar)."""
    cfg = parse_options(PROG, PredictConfig, argv, __doc__ + INPUTS_HELP, required=["ckpt_path|pretrained", "inputs", "output_dir"],
                        lists=["inputs"], example="ckpt_path=RUN/checkpoints/best.ckpt inputs='[scan.nii.gz]' output_dir=DIR")
    problem = option_problem(cfg)
    if problem:
        fail(PROG, problem)
    return cfg


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    from lfmri.checkpoints.load import CheckpointError
    from lfmri.export.exporters import ExportError

    try:
        with signals_raise():  # SIGTERM unwinds like Ctrl-C: every write under way removes its temporaries
            done, failed = run_predict(cfg)
    except (CheckpointError, ExportError, ValueError) as err:  # ExportError: an onnx_path of another network
        fail(PROG, str(err))
    except KeyboardInterrupt as err:  # Ctrl-C, or SIGTERM/SIGHUP (Interrupted): one line, no traceback
        signum = getattr(err, "signum", signal.SIGINT)
        print(f"{PROG}: interrupted ({signal.Signals(signum).name}); outputs already written are complete, "
              "nothing partial was left", file=sys.stderr, flush=True)
        return 128 + int(signum)
    print(f"{len(done)} volume(s) written to {cfg.output_dir}")
    if failed:
        print(f"{len(failed)} input(s) failed:", file=sys.stderr)
        for message in failed.values():
            print(f"  {message}", file=sys.stderr)
        # outputs that exist (found before the work or written by another run meanwhile): a choice for the user, 2
        return 2 if any(isinstance(m, ExistingOutputs) for m in failed.values()) else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
