"""Runs that survive being killed: exact resume after SIGTERM/SIGKILL, atomic checkpoint writes."""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from lfmri.checkpoints.atomic_io import AtomicCheckpointIO, atomic_torch_save
from tests.conftest import ROOT, run_script, write_phantom_volumes
from tests.test_end_to_end import TINY, check

STEPS_PER_EPOCH = 6  # 24 patches per epoch, batches of 4
SAVE_EVERY = 4       # callbacks.last_checkpoint.every_n_train_steps
KILL_AT = 9          # epoch 1, batch 3 of 6


def run_args(volumes: Path, run_dir: Path) -> list[str]:
    return [
        "train.py", *TINY, f"data.pattern={volumes}/*.nii.gz", "trainer.max_epochs=2", "data.patches_per_epoch=24",
        f"callbacks.last_checkpoint.every_n_train_steps={SAVE_EVERY}", "trainer.limit_val_batches=2",
        "trainer.limit_test_batches=1", f"hydra.run.dir={run_dir}",
    ]


def logged_steps(run_dir: Path) -> list[int]:
    with (run_dir / "logs" / "metrics.csv").open(newline="") as file:
        return [int(float(row["step"])) for row in csv.DictReader(file)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """Phantom volumes and one uninterrupted run."""
    root = tmp_path_factory.mktemp("resume")
    write_phantom_volumes(root / "volumes")
    check(run_script(*run_args(root / "volumes", root / "reference")))
    return root, json.loads((root / "reference" / "metrics.json").read_text())


@pytest.mark.parametrize(("sig", "epoch_end"), [(signal.SIGTERM, False), (signal.SIGKILL, False), (signal.SIGKILL, True)],
                         ids=["sigterm", "sigkill", "sigkill-after-epoch-end-checkpoint"])
def test_killed_run_resumes_to_the_same_steps_and_metrics(reference, sig, epoch_end):
    root, expected = reference
    name = f"{sig.name}{'-epoch-end' if epoch_end else ''}"
    run_dir = root / f"killed-{name}"
    flag = root / f"{name}.paused"
    kill_at = STEPS_PER_EPOCH if epoch_end else KILL_AT
    pause = ["+callbacks.pause._target_=tests.pause_callback.PauseAtStep", f"+callbacks.pause.step={kill_at}",
             f"+callbacks.pause.flag={flag}", f"+callbacks.pause.epoch_end={epoch_end}"]
    proc = subprocess.Popen([sys.executable, *run_args(root / "volumes", run_dir), *pause], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 300
    while not flag.exists():
        assert proc.poll() is None, proc.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never reached the pause step"
        time.sleep(0.05)
    proc.send_signal(sig)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == (128 + signal.SIGTERM if sig == signal.SIGTERM else -signal.SIGKILL), output[-3000:]

    last = torch.load(run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    if epoch_end:  # the checkpoint written after the first epoch's validation
        assert last["global_step"] == STEPS_PER_EPOCH
    else:  # SIGTERM: written at the step it arrived; SIGKILL: the latest periodic save. Both mid-epoch.
        step = KILL_AT if sig == signal.SIGTERM else KILL_AT // SAVE_EVERY * SAVE_EVERY
        assert last["global_step"] == step and step % STEPS_PER_EPOCH
        loader_state = last["loops"]["fit_loop"]["state_dict"]["combined_loader"]
        assert loader_state == [{"trained_batches": step % STEPS_PER_EPOCH}]
    if sig == signal.SIGTERM:
        assert "resume=true" in output
    assert not (run_dir / "metrics.json").exists()

    stale = run_dir / "checkpoints" / ".last.ckpt.999999999.0123abcd.tmp"  # what a SIGKILL mid-write leaves
    stale.write_bytes(b"half a checkpoint")
    # the killed run's config names the test's pause callback: trusted explicitly, as a user would
    resumed = check(run_script(*run_args(root / "volumes", run_dir), "resume=true", "trust_targets=[tests.pause_callback]"))
    assert "not resumable" not in resumed.stdout + resumed.stderr
    assert not stale.exists()
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["global_step"] == expected["global_step"] == 2 * STEPS_PER_EPOCH
    assert final["best_score"] == pytest.approx(expected["best_score"], abs=1e-6)
    for name, value in expected["metrics"].items():
        if name.startswith(("val/", "test/")):
            assert final["metrics"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name
    # the rows the killed run logged after its checkpoint are not repeated in the CSV log
    assert logged_steps(run_dir) == logged_steps(root / "reference")


def test_resume_modes_pick_the_checkpoint_to_continue(tmp_path, monkeypatch):
    from lfmri.training.run import resume_checkpoint

    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)
    checkpoints = tmp_path / "checkpoints"
    assert resume_checkpoint(checkpoints, "auto") is None and resume_checkpoint(checkpoints, False) is None
    with pytest.raises(FileNotFoundError, match="last.ckpt does not exist"):
        resume_checkpoint(checkpoints, True)
    with pytest.raises(ValueError, match="expected true, false or auto"):
        resume_checkpoint(checkpoints, "yes")
    checkpoints.mkdir()
    (checkpoints / "last.ckpt").write_bytes(b"x")
    assert resume_checkpoint(checkpoints, "auto") == str(checkpoints / "last.ckpt")
    with pytest.raises(FileExistsError, match="resume=true"):
        resume_checkpoint(checkpoints, False)
    # a requeued SLURM job continues from the newest of last.ckpt and Lightning's hpc checkpoints
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    assert resume_checkpoint(checkpoints, False) == str(checkpoints / "last.ckpt")
    time.sleep(0.01)
    (tmp_path / "hpc_ckpt_1.ckpt").write_bytes(b"x")
    assert resume_checkpoint(checkpoints, False) == str(tmp_path / "hpc_ckpt_1.ckpt")


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"big": torch.zeros(10_000), "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": torch.tensor(1)}, path)
    writer = textwrap.dedent(f"""
        import torch
        from lfmri.checkpoints.atomic_io import atomic_torch_save
        while True:  # large writes, over and over, until killed
            atomic_torch_save({{"step": torch.tensor(2), "weights": torch.rand(64_000_000)}}, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".last.ckpt.*.tmp*")):  # a write is under way
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()
    checkpoint = torch.load(path, weights_only=True)  # complete: the old one, or a whole new one
    assert int(checkpoint["step"]) in (1, 2)
    if int(checkpoint["step"]) == 2:
        assert checkpoint["weights"].numel() == 64_000_000


def test_every_trainer_config_writes_checkpoints_atomically():
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    for trainer in ("default", "ddp_cpu"):
        with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
            cfg = compose("train", overrides=[f"trainer={trainer}", "output_dir=/tmp/unused"])
        built = instantiate(cfg.trainer, logger=False, enable_progress_bar=False)
        assert isinstance(built.strategy.checkpoint_io, AtomicCheckpointIO), trainer


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    import os

    from lfmri.files import remove_stale_temporaries

    dead = tmp_path / ".last.ckpt.999999999.0123abcd.tmp"
    live = tmp_path / f".last.ckpt.{os.getppid()}.0123abcd.tmp"  # a running process: its write goes on
    keep = [tmp_path / "last.ckpt", tmp_path / ".hidden.tmp", live]
    for path in [dead, *keep]:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert all(p.exists() for p in keep)
