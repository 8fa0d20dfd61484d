"""What the entry points do around the real work: checks before Hydra writes a run directory,
and user mistakes turned into one line and exit status 2.

``RunChecks`` is a Hydra callback (``hydra.callbacks.run_checks`` in ``conf/train.yaml`` and
``conf/evaluate.yaml``): ``on_run_start`` runs after the config is composed and before Hydra creates
the run directory and writes ``.hydra/``, so a mistake found there leaves nothing behind, and the
stored config of a run being resumed can still be compared with the new one. ``run_entry`` wraps
the task function: an :class:`~lfmri.errors.UserError` (or an unusable NIfTI file or checkpoint)
found later prints ``<prog>: error: <message>``, removes what this invocation created (the run
directory's contents, its new parent folders only while empty), and exits 2. Every other exception
keeps its traceback: bugs stay visible.

A run owns only what it creates: ``RunChecks`` refuses a training run directory that is neither new
(absent or empty) nor the run being resumed, an evaluation into a training run's folder, and then
takes the folder's lock (:func:`lfmri.files.lock_folder`) so that one process writes there at a time.
Stored run configs (``.hydra/config.yaml``) are read as plain YAML, never evaluated.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from lfmri.checkpoints.load import rewrite_moved_targets
from lfmri.cli.apps import prog_name, resolver_message
# a run folder as a resume reads it (moved out of this file; its names stay importable from here)
from lfmri.cli.resume import (CHANGES_FILE, RESUME_FREE_KEYS, config_changes, finished_run, flat, hydra_app,  # noqa: F401
                              read_stored_config, run_command, user_config)
from lfmri.errors import ConfigError, ExistingOutputError, MissingFileError, UserError
from lfmri.files import LOCK_NAME, lock_folder, unlock_folder
from lfmri.training.run_record import check_new_or_resumed, check_run_dir, missing_folders, remove_created, requeued_by_slurm

# the run directory of this invocation, and whether it existed before (set by RunChecks)
_RUN: dict[str, Any] = {}


def rank() -> int:
    """The process's rank as Lightning and schedulers set it (0 outside distributed runs)."""
    from lightning.fabric.utilities.rank_zero import _get_rank

    return _get_rank() or 0


def fail(prog: str, message: str) -> None:
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def check_resume(config: DictConfig, run_dir: Path, given_dirs: bool) -> None:
    """``resume=true`` needs the run; a resumed run keeps its config unless changes are allowed."""
    resume = config.get("resume", False)
    last = run_dir / "checkpoints" / "last.ckpt"
    if resume is True and not last.is_file():
        if not given_dirs:
            raise ConfigError(
                "resume=true continues an existing run: also pass hydra.run.dir=<its directory>, "
                "e.g. hydra.run.dir=outputs/train/2026-01-31_12-00-00"
            )
        raise MissingFileError(f"resume=true but {last} does not exist: hydra.run.dir must name a run that saved checkpoints")
    stored_path = run_dir / ".hydra" / "config.yaml"
    if resume not in (True, "auto") or not last.is_file() or not stored_path.is_file():
        return
    done = finished_run(run_dir, config)
    if done:
        # exit 0 before Hydra rewrites .hydra/ or train.log: a finished run is left exactly as it was
        print(f"{prog_name('lfmri-train')}: {run_dir} already finished ({done}); nothing to resume, nothing changed "
              "(raise trainer.max_epochs or trainer.max_steps to train on)", flush=True)
        raise SystemExit(0)
    stored = read_stored_config(stored_path)
    # a run started before lfmri moved a class names its old module path: the same class, not a change
    rewrite_moved_targets(stored)
    changes = config_changes(stored, user_config(config), lambda key: OmegaConf.select(config, key))
    if not changes:
        return
    described = "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())
    if not config.get("resume_allow_changes", False):
        raise ConfigError(
            f"resume: the config differs from the run's ({described}); resume with the run's own options"
            f"{run_command(run_dir)}, or pass resume_allow_changes=true to continue with the changes (recorded in "
            f"{run_dir / CHANGES_FILE})"
        )
    # recorded by RunChecks once this run holds the folder's lock (record_resume_changes): a run refused
    # because another one is writing there adds nothing to its record
    _RUN["resume_changes"] = [{
        "time": datetime.datetime.now().isoformat(timespec="seconds"),
        "changes": {k: {"before": old, "after": new} for k, (old, new) in changes.items()},
    }]


def record_resume_changes(run_dir: Path) -> None:
    """Append the changes :func:`check_resume` allowed (``resume_allow_changes=true``) to ``resume_changes.yaml``."""
    record = _RUN.pop("resume_changes", None)
    if record:
        with open(run_dir / CHANGES_FILE, "a") as f:
            yaml.safe_dump(record, f, sort_keys=False)


def check_train(config: DictConfig, run_dir: Path, given_dirs: bool) -> None:
    check_run_dir(run_dir / "checkpoints", config.get("resume", False))  # before .hydra/ is rewritten
    check_resume(config, run_dir, given_dirs)
    check_new_or_resumed(run_dir, config.get("resume", False))
    data = config.get("data") or {}
    if str(data.get("_target_", "")).endswith("FolderDataModule"):
        if OmegaConf.is_missing(data, "pattern") or not data.get("pattern"):
            raise ConfigError("data.pattern is not set: data=folder reads HR volumes from a glob, e.g. data.pattern='/data/IXI-T1/*.nii.gz'")
        from lfmri.data.folder import find_volumes

        # the data module's own reading of the option: one glob or the list form '[a/*.nii.gz,b/*.nii.gz]'
        pattern = data.pattern
        find_volumes(str(pattern) if isinstance(pattern, str) else [str(p) for p in pattern])
    ckpt_path = config.get("ckpt_path")
    if ckpt_path and not Path(str(ckpt_path)).is_file():
        raise MissingFileError(f"ckpt_path={ckpt_path} does not exist; give a checkpoint file, e.g. outputs/train/<run>/checkpoints/last.ckpt")
    init_from = config.get("init_from")
    if init_from and not Path(str(init_from)).is_file():
        raise MissingFileError(f"init_from={init_from} does not exist; give a checkpoint file, e.g. outputs/train/<run>/checkpoints/best.ckpt")


def check_evaluate(config: DictConfig, run_dir: Path, given_dirs: bool) -> None:
    from lfmri.geometry.inputs import expand_inputs

    for key in ("ckpt_path", "ckpt_paths"):
        value = config.get(key)
        paths = [value] if isinstance(value, str) else list(value or [])
        for path in paths:
            if not Path(str(path)).is_file():
                raise MissingFileError(f"{key}: {path} does not exist; give a checkpoint file, e.g. outputs/train/<run>/checkpoints/best.ckpt")
    if run_dir.exists() and not run_dir.is_dir():
        raise ExistingOutputError(f"output_dir={run_dir} is an existing file, not a folder; give a folder for the outputs")
    app = hydra_app(run_dir)
    if app not in (None, "evaluate"):  # Hydra would replace that run's .hydra/ (its resume record)
        raise ExistingOutputError(f"output_dir={run_dir} is the folder of an lfmri-{app} run (its .hydra/ would be replaced); "
                                  f"give a folder of its own, e.g. output_dir={run_dir / 'evaluate'}")
    if config.get("inputs"):
        expand_inputs(config.inputs)  # a folder without volumes or a glob matching nothing
    table = run_dir / "metrics.csv"
    if table.is_file() and not config.get("overwrite", False):  # refused before .hydra/ of that evaluation is rewritten
        raise ExistingOutputError(f"outputs already exist in {run_dir} ({table.name}, ...); pass overwrite=true to replace them, or another output_dir")


CHECKS: dict[str, Callable[[DictConfig, Path, bool], None]] = {"train": check_train, "evaluate": check_evaluate}


class RunChecks(Callback):
    """Hydra callback: the checks of :data:`CHECKS` for this app before the run directory exists."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        from lfmri.geometry.nifti import NiftiError

        app = str(config.hydra.job.config_name)
        if not str(config.hydra.run.dir or "").strip():
            # Path("") is the current folder: the run would write .hydra/, logs and checkpoints among the user's files
            fail(prog_name(f"lfmri-{app}"), "hydra.run.dir is empty: give the run's folder, e.g. hydra.run.dir=outputs/train/my_run "
                                            "(or leave it out for a new dated folder under outputs/)")
        run_dir = Path(str(config.hydra.run.dir))
        # what this invocation creates: the run directory and the parents it lacks (outputs/train/<date>:
        # outputs, outputs/train), deepest first; a failure removes only those (lfmri.training.run_record.remove_created)
        _RUN.update(run_dir=run_dir, existed=run_dir.exists(), created=missing_folders(run_dir), was_new=False, locked=False,
                    resume_changes=None)
        if rank() != 0:  # DDP ranks started by Lightning re-run train.py in rank zero's directory
            return
        given_dirs = any(o.startswith("hydra.run.dir=") for o in config.hydra.overrides.hydra)
        option = "hydra.run.dir" if app == "train" else "output_dir"
        try:
            CHECKS.get(app, lambda *a: None)(config, run_dir, given_dirs)
            # one writer per run folder: a second run into it is refused until this one ends (lfmri.files.lock_folder)
            lock_folder(run_dir, option)
            _RUN["locked"] = True
            if app == "train":  # checked again under the lock: another run may have written there since
                check_new_or_resumed(run_dir, config.get("resume", False))
                record_resume_changes(run_dir)
        except (UserError, NiftiError) as err:
            # nothing is removed here: what a refused run finds in the folder (a run that ended between its
            # checks and its lock) is not its own; at most it leaves the folder and the lock file it opened
            fail(prog_name(f"lfmri-{app}"), str(err))
        # under the lock: whether everything in the folder from now on is this run's (for the cleanup after a failure)
        _RUN["was_new"] = not any(p.name != LOCK_NAME for p in run_dir.iterdir())

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.hydra.job.config_name) == "train" and rank() == 0:
            check_new_sweep(Path(str(config.hydra.sweep.dir)), config.get("resume", False))
            _SWEEP.update(sweep_dir=Path(str(config.hydra.sweep.dir)), metric=str(config.get("monitor") or "val/psnr_brain"),
                          failed={})

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A job of this process's sweep that failed is named as failed in the sweep's summary."""
        from hydra.core.utils import JobStatus

        if _SWEEP and getattr(job_return, "status", None) == JobStatus.FAILED:
            error = getattr(job_return, "_return_value", None)
            line = f"{type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}" if error else "failed"
            _SWEEP["failed"][Path(str(config.hydra.runtime.output_dir))] = line

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """A training sweep ends with its comparison: ``summary.md``/``summary.csv`` written, and named."""
        if str(config.hydra.job.config_name) != "train" or rank() != 0:
            return
        write_sweep_summary()


def check_new_sweep(sweep_dir: Path, resume: Any) -> None:
    """A training sweep's folder is new (absent or empty), or the sweep it holds is continued (``resume``).

    Called before Hydra writes anything into it: its jobs' run folders would otherwise replace the
    ``.hydra/``, logs and metrics of the runs already there (a job's own checks come after Hydra has
    written its ``.hydra/``). With ``resume=auto`` each job continues from its ``last.ckpt``, or starts in
    its own new folder.
    """
    if resume in (True, "auto") or requeued_by_slurm() or not sweep_dir.is_dir():
        return
    found = sorted(p.name for p in sweep_dir.iterdir())
    if found:
        shown = ", ".join(found[:4]) + (", ..." if len(found) > 4 else "")
        fail(prog_name("lfmri-train"), f"hydra.sweep.dir={sweep_dir} already holds {shown}; its runs would be replaced: choose "
                                       "another hydra.sweep.dir, or pass resume=auto to continue that sweep (each job from its last.ckpt)")


# the sweep this process runs (set by RunChecks.on_multirun_start): its folder, metric and failed jobs
_SWEEP: dict[str, Any] = {}


def write_sweep_summary() -> None:
    """Write and print the summary of this process's sweep, once, also when one of its jobs failed.

    Hydra's basic sweeper raises the first failed job's error after every job has run, and then
    never calls ``on_multirun_end``: the ``lfmri-train`` entry point calls this on its way out, so
    the sweep still ends with its table (the failed job's row says ``failed: <error>``).
    """
    if not _SWEEP:
        return
    from lfmri.cli.sweep import summarize, to_markdown, write_summary

    sweep = dict(_SWEEP)
    _SWEEP.clear()
    sweep_dir, metric = sweep["sweep_dir"], sweep["metric"]
    try:
        rows = summarize(sweep_dir, metric, sweep["failed"])
        csv_path, md_path = write_summary(sweep_dir, rows, metric)
    except (FileNotFoundError, ValueError, ExistingOutputError) as err:
        # no job got far enough, or a summary.md that is not lfmri's: say so, the sweep's own errors stand
        print(f"no sweep summary: {err}", flush=True)
        return
    print(to_markdown(rows), flush=True)
    print(f"sweep summary: {md_path} (and {csv_path.name}; summary.html shows each run's panel beside its row); "
          f"refresh it with lfmri-sweep summarize output_dir={sweep_dir}",
          flush=True)


class WatchSlurmJobs(Callback):
    """Hydra callback: a multirun launched on SLURM (``hydra/launcher=slurm``, ``slurm_cpu``) also
    notices jobs that ended without a result where SLURM has no ``sacct`` (:mod:`lfmri.cli.slurm`)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if str(config.hydra.launcher.get("_target_", "")).endswith("submitit_launcher.SlurmLauncher"):
            from lfmri.cli.slurm import watch_without_accounting  # imports submitit: only for SLURM sweeps

            watch_without_accounting()


def run_entry(prog: str, task: Callable[[DictConfig], Any], cfg: DictConfig, unwind_on_signals: bool = False) -> Any:
    """``task(cfg)``; a user mistake ends in one line, exit status 2 and no new run directory.

    ``prog`` is the command as typed (only named in messages). ``unwind_on_signals`` (evaluate):
    SIGTERM and SIGHUP unwind like Ctrl-C so that outputs being written remove their temporaries,
    whatever the program is called (``lfmri-evaluate``, ``evaluate.py``, ``python -m ...``); without it
    (train) Lightning's own SIGTERM handling writes a checkpoint at the end of the step.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from lfmri.checkpoints.load import CheckpointError
    from lfmri.geometry.nifti import NiftiError

    from hydra.errors import InstantiationException
    from omegaconf.errors import InterpolationResolutionError

    from lfmri.files import signals_raise

    user_errors = (UserError, NiftiError, CheckpointError)
    # this invocation's run folder, as RunChecks found it; taken once, so a later task in the same process
    # (tests, benchmarks) never cleans up after a run folder that is not its own
    run = dict(_RUN)
    _RUN.clear()
    stop_signals = signals_raise() if unwind_on_signals else contextlib.nullcontext()
    try:
        with stop_signals:
            return task(cfg)
    except SystemExit as stopped:  # train.py stopped by SIGTERM or Ctrl-C, its last.ckpt written: the exact command that resumes
        signums = {128 + signal.SIGTERM: signal.SIGTERM, 128 + signal.SIGINT: signal.SIGINT}
        command = run_command(Path(run["run_dir"])) if run.get("run_dir") and stopped.code in signums else ""
        if command and not unwind_on_signals and rank() == 0:
            print(f"{prog}: stopped by {signums[stopped.code].name}, checkpoint saved; continue with: {command.strip()[1:-1]}",
                  file=sys.stderr, flush=True)
        raise
    except KeyboardInterrupt as stopped:  # Ctrl-C, or SIGTERM/SIGHUP raised by signals_raise: one line, no traceback
        signum = getattr(stopped, "signum", signal.SIGINT)
        print(f"{prog}: interrupted ({signal.Signals(signum).name}); files already written are complete, nothing partial "
              "was left", file=sys.stderr, flush=True)
        raise SystemExit(128 + int(signum)) from None
    except (*user_errors, InstantiationException, InterpolationResolutionError) as caught:
        # hydra.utils.instantiate wraps what a constructor raises (e.g. degradation.hr_size), OmegaConf what
        # a resolver raises (scale=0 in ${lfmri.multiple:128,${scale}}); a constructor or resolver refusing a
        # value's type or range (scale=abc) is the option's mistake, named by its key
        wrappers = (InstantiationException, InterpolationResolutionError)
        err = caught
        while isinstance(err, wrappers) and err.__cause__ is not None:  # instantiate -> interpolation -> resolver
            err = err.__cause__
        if isinstance(caught, wrappers) and isinstance(err, (ValueError, TypeError)) and not isinstance(err, user_errors):
            found = re.search(r"full_key: (\S+)", str(caught))
            key = found[1] if found else ""
            text = resolver_message(str(err).splitlines()[0])  # OmegaConf may keep a resolver's error as text only
            err = ConfigError(f"{key + ': ' if key and key not in text else ''}{text}")
        if not isinstance(err, user_errors):
            raise
        if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
            raise  # one failed job of a sweep: Hydra and the sweeper report it
        run_dir = run.get("run_dir")
        fresh = run_dir is not None and run.get("locked") and run.get("was_new") and not any(Path(run_dir).rglob("*.ckpt"))
        if fresh and rank() == 0:  # only what this invocation created: the new folder's contents, its new parents while empty
            remove_created(Path(run_dir), True, run.get("created", []))
        fail(prog, str(err))
    finally:
        if run.get("locked"):  # a process that runs more than one task (tests, benchmarks) gives each folder back
            unlock_folder(run["run_dir"])


__all__ = ["RunChecks", "WatchSlurmJobs", "run_entry", "ConfigError", "ExistingOutputError", "MissingFileError"]
