"""``lfmri.cli.common.run_entry``: interrupts and refused option values end in one line, never a traceback."""

from __future__ import annotations

import os
import signal

import pytest
from omegaconf import OmegaConf


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_an_interrupted_evaluation_is_one_line_and_cleans_up(tmp_path, capsys, signum, sigint_raises):
    """Ctrl-C printed a KeyboardInterrupt traceback; SIGTERM killed evaluate.py mid-write, leaving temporaries."""
    from lfmri.cli.common import run_entry
    from lfmri.files import written_together

    target = tmp_path / "a_sr.nii.gz"

    def task(cfg):
        with written_together({"sr": target}) as staging:
            staging["sr"].write_bytes(b"half")
            os.kill(os.getpid(), getattr(signal, signum))
        raise AssertionError("the signal did not stop the task")

    with pytest.raises(SystemExit) as stopped:
        # the console script's name: the program's name never decides whether its signals unwind
        run_entry("lfmri-evaluate", task, OmegaConf.create({}), unwind_on_signals=True)
    err = capsys.readouterr().err
    assert stopped.value.code == 128 + getattr(signal, signum) and f"lfmri-evaluate: interrupted ({signum})" in err
    assert list(tmp_path.iterdir()) == [] and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_a_value_a_constructor_refuses_is_the_options_one_line_error(capsys):
    """``train.py scale=abc``: the degradation's ValueError came out as Hydra's multi-line error, exit 1."""
    from hydra.utils import instantiate

    from lfmri.cli.common import run_entry

    def task(cfg):
        return instantiate(cfg.degradation)

    cfg = OmegaConf.create({"degradation": {"_target_": "lfmri.degrade.degradations.KSpaceDegradation", "scale": "abc", "hr_size": 32}})
    with pytest.raises(SystemExit) as stopped:
        run_entry("train.py", task, cfg)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and "train.py: error: degradation.scale must be a positive integer, got 'abc'" in err


def train_config(tmp_path, run_dir, *overrides):
    from tests.helpers.config import compose

    (tmp_path / "v").mkdir(exist_ok=True)
    (tmp_path / "v" / "a.nii.gz").write_bytes(b"")  # the pattern check only needs a match
    return compose("data=folder", f"data.pattern={tmp_path}/v/*.nii.gz", f"hydra.run.dir={run_dir}", *overrides,
                   output_dir=str(run_dir), hydra=True)


def test_a_run_folder_holding_files_is_refused_before_anything_is_written(tmp_path, capsys):
    from lfmri.cli.common import RunChecks

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.json").write_text("mine")
    with pytest.raises(SystemExit) as stopped:
        RunChecks().on_run_start(train_config(tmp_path, run_dir))
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and f"hydra.run.dir={run_dir} already holds metrics.json" in err
    assert [p.name for p in run_dir.iterdir()] == ["metrics.json"] and (run_dir / "metrics.json").read_text() == "mine"


def test_a_failed_fresh_run_removes_what_it_created_and_keeps_another_jobs_files(tmp_path, capsys):
    from lfmri.cli.common import RunChecks, run_entry
    from lfmri.errors import ConfigError
    from lfmri.files import LOCK_NAME, unlock_folder

    run_dir = tmp_path / "outputs" / "train" / "run1"
    cfg = train_config(tmp_path, run_dir)
    RunChecks().on_run_start(cfg)
    try:
        assert (run_dir / LOCK_NAME).is_file()
        other = tmp_path / "outputs" / "train" / "run2" / "metrics.json"

        def task(cfg):
            (run_dir / ".hydra").mkdir()
            (run_dir / ".hydra" / "config.yaml").write_text("a: 1\n")
            other.parent.mkdir(parents=True)  # another job, meanwhile, beside this run
            other.write_text("theirs")
            raise ConfigError("data.something: wrong")

        with pytest.raises(SystemExit) as stopped:
            run_entry("train.py", task, cfg)
        assert stopped.value.code == 2 and "train.py: error: data.something: wrong" in capsys.readouterr().err
        assert not run_dir.exists() and other.read_text() == "theirs"
    finally:
        unlock_folder(run_dir)


def test_evaluate_never_writes_into_a_training_runs_folder(tmp_path):
    """lfmri-evaluate output_dir=<a training run> replaced its .hydra/config.yaml (resume then refused)."""
    from lfmri.cli.common import check_evaluate
    from lfmri.errors import ExistingOutputError
    from tests.helpers.config import evaluate_config

    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"")
    (tmp_path / "run" / ".hydra").mkdir()
    (tmp_path / "run" / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    config_name: train\n")
    cfg = evaluate_config(ckpt_path=str(ckpt), output_dir=str(tmp_path / "run"))
    with pytest.raises(ExistingOutputError, match=r"output_dir=.*/run is the folder of an lfmri-train run .*output_dir=.*/run/evaluate"):
        check_evaluate(cfg, tmp_path / "run", True)
    check_evaluate(cfg, tmp_path / "run" / "evaluate", True)  # a folder of its own


def test_a_stored_run_config_is_read_as_plain_text_never_evaluated(tmp_path, monkeypatch):
    """The run folder's .hydra/config.yaml (read by resume) is compared as text: an edited ${oc.env:...}
    or ${oc.create:{_target_: ...}} is neither read nor built."""
    from lfmri.cli.common import check_resume

    monkeypatch.setenv("LFMRI_TEST_SECRET", "s3cr3t-value")
    run_dir = tmp_path / "run"
    witness = tmp_path / "written.txt"
    cfg = train_config(tmp_path, run_dir, "resume=true")
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run_dir / ".hydra").mkdir()
    stored = OmegaConf.to_container(cfg, resolve=False)
    stored.pop("hydra")
    stored["seed"] = "${oc.env:LFMRI_TEST_SECRET}"
    stored["data"]["payload"] = "${oc.create:{_target_: numpy.savetxt, fname: '" + str(witness) + "', X: [1.0]}}"
    (run_dir / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(stored)))
    from lfmri.errors import ConfigError

    with pytest.raises(ConfigError) as refused:
        check_resume(cfg, run_dir, True)
    assert "seed: '${oc.env:LFMRI_TEST_SECRET}'" in str(refused.value) and "s3cr3t" not in str(refused.value)
    assert not witness.exists()


def test_a_run_that_finds_another_runs_files_under_its_lock_removes_nothing(tmp_path, capsys, monkeypatch):
    """Another run wrote into the new folder between this one's checks and its lock: refused, and that run's files stay."""
    import lfmri.cli.common as common
    from lfmri.files import lock_folder, unlock_folder

    run_dir = tmp_path / "outputs" / "run"

    def meanwhile(folder, option):
        (run_dir / "checkpoints").mkdir(parents=True)
        (run_dir / "checkpoints" / "best.ckpt").write_text("theirs")  # a run that started and ended meanwhile
        return lock_folder(folder, option)

    monkeypatch.setattr(common, "lock_folder", meanwhile)
    try:
        with pytest.raises(SystemExit) as stopped:
            common.RunChecks().on_run_start(train_config(tmp_path, run_dir))
        assert stopped.value.code == 2 and "already holds checkpoints" in capsys.readouterr().err
        assert (run_dir / "checkpoints" / "best.ckpt").read_text() == "theirs"
    finally:
        unlock_folder(run_dir)


def test_a_sweep_whose_job_failed_still_gets_its_summary_marking_the_job(tmp_path, capsys):
    """Hydra's basic sweeper raises a failed job's error and never calls on_multirun_end: no summary.md."""
    import json

    from hydra.core.utils import JobReturn, JobStatus

    from lfmri.cli.common import RunChecks, write_sweep_summary
    from lfmri.errors import DataError

    sweep = tmp_path / "sweep"
    base = {"hydra": {"job": {"config_name": "train"}, "sweep": {"dir": str(sweep)}}, "monitor": "val/psnr_brain"}
    callbacks = RunChecks()
    callbacks.on_multirun_start(OmegaConf.create(base))  # before the jobs write their folders
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
    (sweep / "0" / "metrics.json").write_text(json.dumps({"metrics": {"test/psnr_brain": 21.0}}))
    for job, status in (("0", JobStatus.COMPLETED), ("1", JobStatus.FAILED)):
        done = JobReturn(status=status, _return_value=DataError("the test split has no slices") if status == JobStatus.FAILED else 1.0)
        callbacks.on_job_end(OmegaConf.create({**base, "hydra": {**base["hydra"], "runtime": {"output_dir": str(sweep / job)}}}), done)
    write_sweep_summary()  # what lfmri-train's entry point does on its way out
    summary = (sweep / "summary.md").read_text()
    assert "| complete |" in summary and "failed: DataError: the test split has no slices" in summary
    write_sweep_summary()  # once: nothing left to do
    assert "sweep summary:" in capsys.readouterr().out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stopped_training_prints_the_exact_command_that_resumes_it(tmp_path, capsys, monkeypatch, signum):
    import yaml

    from lfmri.cli import common

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["data=folder", "data.pattern=/d/*.nii.gz", f"hydra.run.dir={run}"]))
    monkeypatch.setitem(common._RUN, "run_dir", run)

    def task(cfg):
        raise SystemExit(128 + signum)  # what lfmri.training.run.train raises once last.ckpt is written

    with pytest.raises(SystemExit) as stopped:
        common.run_entry("train.py", task, OmegaConf.create({}))
    err = capsys.readouterr().err
    assert stopped.value.code == 128 + signum
    assert f"train.py: stopped by {signum.name}, checkpoint saved; continue with: lfmri-train data=folder " \
           f"'data.pattern=/d/*.nii.gz' resume=true hydra.run.dir={run}" in err


def test_a_sweep_into_a_folder_holding_runs_is_refused_unless_it_continues_them(tmp_path, capsys):
    """-m with hydra.sweep.dir=<an earlier sweep> replaced its jobs' .hydra/, logs and metrics."""
    from lfmri.cli.common import check_new_sweep

    sweep = tmp_path / "sweep"
    check_new_sweep(sweep, False)  # absent: a new sweep
    sweep.mkdir()
    check_new_sweep(sweep, False)  # empty: a new sweep
    (sweep / "srcnn").mkdir()
    (sweep / "srcnn" / "metrics.json").write_text("earlier")
    with pytest.raises(SystemExit) as stopped:
        check_new_sweep(sweep, False)
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and f"hydra.sweep.dir={sweep} already holds srcnn" in err
    assert "resume=auto" in err and (sweep / "srcnn" / "metrics.json").read_text() == "earlier"
    check_new_sweep(sweep, "auto")  # continuing that sweep
    check_new_sweep(sweep, True)
