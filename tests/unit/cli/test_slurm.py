"""The SLURM job watcher: job states from squeue where sacct does not answer (no accounting)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from submitit.slurm.slurm import SlurmJob

from lfmri.cli.common import WatchSlurmJobs
from lfmri.cli.slurm import ENDED, SqueueFallbackWatcher


def fake_commands(folder: Path, monkeypatch, **scripts: str) -> None:
    """Executables named after the keys (``sacct``, ``squeue``) first on PATH, running the shell lines given."""
    folder.mkdir()
    for name, body in scripts.items():
        path = folder / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")


def watched(*job_ids: str) -> SqueueFallbackWatcher:
    watcher = SqueueFallbackWatcher()
    for job_id in job_ids:
        watcher.register_job(job_id)
    return watcher


def test_without_accounting_states_come_from_squeue(tmp_path, monkeypatch):
    listing = "\\n".join(["7_0|RUNNING", "7_1|CANCELLED", "7_2|PENDING", "7_3|COMPLETED", "7_4|CONFIGURING", "8|REQUEUED"])
    fake_commands(tmp_path / "bin", monkeypatch,
                  sacct="echo 'sacct: error: Slurm accounting storage is disabled' >&2; exit 1",
                  squeue=f"printf '{listing}\\n'")
    watcher = watched("7_0", "7_1", "7_2", "7_3", "7_4", "7_5", "8")
    done = {job: watcher.is_done(job, mode="force") for job in ["7_0", "7_1", "7_2", "7_3", "7_4", "7_5", "8"]}
    # running, waiting, starting or requeued jobs are waited for; a cancelled, finished or vanished one is not
    assert done == {"7_0": False, "7_1": True, "7_2": False, "7_3": True, "7_4": False, "7_5": True, "8": False}
    assert watcher.get_state("7_1", mode="cache") == "CANCELLED" and watcher.get_state("7_5", mode="cache") == ENDED


def test_sacct_is_asked_first_where_it_works(tmp_path, monkeypatch):
    fake_commands(tmp_path / "bin", monkeypatch,
                  sacct="printf 'JobID|State|NodeList\\n9|CANCELLED by 0|n1\\n9.batch|CANCELLED|n1\\n10|RUNNING|n2\\n'",
                  squeue="echo squeue must not be asked >&2; exit 1")
    watcher = watched("9", "10")
    assert watcher.is_done("9", mode="force") and not watcher.is_done("10", mode="cache")
    assert watcher.get_state("9", mode="cache") == "CANCELLED by 0"


def test_no_answer_at_all_keeps_waiting(tmp_path, monkeypatch):
    fake_commands(tmp_path / "bin", monkeypatch, sacct="exit 1", squeue="exit 1")
    watcher = watched("11")
    assert not watcher.is_done("11", mode="force") and watcher.get_state("11", mode="cache") == "UNKNOWN"


@pytest.mark.parametrize(("target", "installed"), [
    ("hydra_plugins.hydra_submitit_launcher.submitit_launcher.SlurmLauncher", True),
    ("hydra._internal.core_plugins.basic_launcher.BasicLauncher", False),
])
def test_the_hydra_callback_installs_the_watcher_for_slurm_sweeps_only(monkeypatch, target, installed):
    original = SlurmJob.watcher
    monkeypatch.setattr(SlurmJob, "watcher", original)  # restored after the test
    WatchSlurmJobs().on_multirun_start(OmegaConf.create({"hydra": {"launcher": {"_target_": target}}}))
    assert isinstance(SlurmJob.watcher, SqueueFallbackWatcher) is installed
