"""``lfmri.cli.common.run_entry``: interrupts and refused option values end in one line, never a traceback."""

from __future__ import annotations

import os
import signal

import pytest
from omegaconf import OmegaConf


@pytest.mark.parametrize("signum", ["SIGTERM", "SIGINT"])
def test_an_interrupted_evaluation_is_one_line_and_cleans_up(tmp_path, capsys, signum):
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
        run_entry("evaluate.py", task, OmegaConf.create({}))
    err = capsys.readouterr().err
    assert stopped.value.code == 128 + getattr(signal, signum) and f"evaluate.py: interrupted ({signum})" in err
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


def test_a_sweep_whose_job_failed_still_gets_its_summary_marking_the_job(tmp_path, capsys):
    """Hydra's basic sweeper raises a failed job's error and never calls on_multirun_end: no summary.md."""
    import json

    from hydra.core.utils import JobReturn, JobStatus

    from lfmri.cli.common import RunChecks, write_sweep_summary
    from lfmri.errors import DataError

    sweep = tmp_path / "sweep"
    for job in ("0", "1"):
        (sweep / job / ".hydra").mkdir(parents=True)
        (sweep / job / ".hydra" / "overrides.yaml").write_text(f"- seed={job}\n")
    (sweep / "0" / "metrics.json").write_text(json.dumps({"metrics": {"test/psnr_brain": 21.0}}))
    base = {"hydra": {"job": {"config_name": "train"}, "sweep": {"dir": str(sweep)}}, "monitor": "val/psnr_brain"}
    callbacks = RunChecks()
    callbacks.on_multirun_start(OmegaConf.create(base))
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
