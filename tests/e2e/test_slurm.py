"""hydra/launcher=slurm_cpu on a real SLURM cluster: sweeps, DDP, requeue, time-limit signal, cancel.

CI starts a single-node cluster with ``.ci/slurm-cluster up`` and sets ``LFMRI_REQUIRE_SLURM=1``,
so there these tests fail when SLURM is not usable; elsewhere (``make test`` on a machine without
SLURM) they skip and say why. The cluster has no accounting (no ``sacct``), as small clusters
often do: job states come from ``squeue`` (``lfmri/cli/slurm.py``).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from tests.helpers.run import ROOT, TINY, check, run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e

LAUNCHER = "hydra/launcher=slurm_cpu"
# two epochs of 6 steps (24 patches, batches of 4), last.ckpt every 4 steps: both stops fall between saves
REQUEUE_AT = 3  # epoch 0, batch 3 of 6
SIGNAL_AT = 9   # epoch 1, batch 3 of 6


def slurm_problem() -> str | None:
    """Why SLURM cannot run these tests here, or ``None`` when a node takes jobs."""
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        return "SLURM is not installed (no sbatch); `sudo .ci/slurm-cluster up` starts a single-node cluster"
    try:
        proc = subprocess.run(["sinfo", "--noheader", "--format=%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo did not answer in 20 s: is slurmctld running? (`sudo .ci/slurm-cluster up`)"
    if proc.returncode:
        return f"sinfo failed: {proc.stderr.strip()[:300]} (`sudo .ci/slurm-cluster up`)"
    if not {"idle", "mix", "alloc"} & set(proc.stdout.split()):
        return f"no SLURM node takes jobs (node states: {' '.join(proc.stdout.split()) or 'none'})"
    return None


@pytest.fixture(scope="module", autouse=True)
def slurm():
    problem = slurm_problem()
    if problem and os.environ.get("LFMRI_REQUIRE_SLURM") == "1":
        pytest.fail(f"LFMRI_REQUIRE_SLURM=1 but {problem}")
    if problem:
        pytest.skip(problem)
    # one thread everywhere: the runs compared below then compute exactly the same sums
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OMP_NUM_THREADS", "1")
        yield


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("slurm")
    write_phantom_volumes(root / "volumes")
    return root / "volumes"


def job_ids(sweep_dir: Path) -> list[str]:
    """SLURM ids of a sweep's jobs: submitit's folders ``.submitit/<id>``, or ``<id>_<n>`` for an array."""
    folder = sweep_dir / ".submitit"
    names = sorted(p.name for p in folder.iterdir() if re.fullmatch(r"\d+(_\d+)?", p.name)) if folder.is_dir() else []
    return [n for n in names if "_" in n] or names


def sbatch_script(sweep_dir: Path, job_id: str) -> str:
    """The script submitit gave sbatch (one per array, in the array's folder)."""
    array = job_id.split("_")[0]
    return (sweep_dir / ".submitit" / array / f"{array}_submission.sh").read_text()


def job_record(job_id: str) -> str:
    """``scontrol show job``: what SLURM knows of a job (kept MinJobAge after it ends; no sacct here)."""
    return subprocess.run(["scontrol", "show", "job", job_id], capture_output=True, text=True, check=True).stdout


def steps_and_losses(log: Path) -> list[tuple[int, str]]:
    """``(step, loss)`` of every optimiser step from train.log (callbacks.progress_log.every_n_steps=1)."""
    return [(int(m[1]), m[2]) for m in re.finditer(r"epoch \d+ step (\d+)/\d+, loss (\S+),", log.read_text())]


def launch(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env={**os.environ, "HYDRA_FULL_ERROR": "1"})


def wait_for(condition, proc: subprocess.Popen, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while not (found := condition()):
        assert proc.poll() is None, f"the launcher ended before {what}:\n{proc.communicate()[0][-4000:]}"
        assert time.monotonic() < deadline, f"no {what} after {timeout} s"
        time.sleep(0.2)
    return found


def start_requeued_now(job_id: str, proc: subprocess.Popen) -> None:
    """SLURM makes a requeued job eligible only two minutes later (EligibleTime): start it now."""
    wait_for(lambda: "Reason=BeginTime" in job_record(job_id), proc, f"job {job_id} pending again after its requeue", 120)
    subprocess.run(["scontrol", "update", f"JobId={job_id}", "StartTime=now"], check=True)


def cancel(ids: list[str]) -> None:
    """Cancel the jobs a failed test left behind, so that they do not hold the node."""
    if ids:
        subprocess.run(["scancel", *ids], capture_output=True)


def test_sweep_2x2_runs_as_a_slurm_array_and_is_ranked(volumes, tmp_path):
    sweep_dir = tmp_path / "sweep"
    check(run_script("train.py", "-m", LAUNCHER, "model=srdensenet,vdsr", "loss=mse,l1", *TINY,
                     f"data.pattern={volumes}/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.sweep.dir={sweep_dir}"))
    ids = job_ids(sweep_dir)
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{n}" for n in range(4)]  # one SLURM array of four jobs
    script = sbatch_script(sweep_dir, ids[0])
    assert "#SBATCH --array=0-3%4" in script and "#SBATCH --cpus-per-task=1" in script
    assert "gpus" not in script and "#SBATCH --signal=USR1@120" in script and "#SBATCH --requeue" in script
    for job_id in ids:
        assert "JobState=COMPLETED" in job_record(job_id)
    for job in map(str, range(4)):
        assert json.loads((sweep_dir / job / "metrics.json").read_text())["global_step"] == 1

    proc = check(run_script("-m", "lfmri.cli.sweep", "summarize", f"sweep_dir={sweep_dir}"))
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"complete"}
    psnr = [float(r["val/psnr_brain"]) for r in rows]
    assert psnr == sorted(psnr, reverse=True)  # ranked, best first
    assert {frozenset(r["overrides"].split()) for r in rows} == {
        frozenset({f"model={m}", f"loss={l}"}) for m in ("srdensenet", "vdsr") for l in ("mse", "l1")}
    assert proc.stdout.count("| complete |") == 4


def test_ddp_with_two_slurm_tasks_matches_the_same_run_without_slurm(volumes, tmp_path):
    args = [*TINY, f"data.pattern={volumes}/*.nii.gz", "trainer=ddp_cpu", "trainer.max_epochs=1", "data.patches_per_epoch=16"]
    plain = check(run_script("train.py", *args, f"hydra.run.dir={tmp_path}/plain"))
    # a run outside SLURM on a machine where srun exists: Lightning's hint is dropped (lfmri/training/logs.py)
    assert "`srun` command is available" not in plain.stdout + plain.stderr
    sweep_dir = tmp_path / "sweep"
    check(run_script("train.py", "-m", LAUNCHER, "hydra.launcher.tasks_per_node=2", *args, f"hydra.sweep.dir={sweep_dir}"))
    [job_id] = job_ids(sweep_dir)
    folder = sweep_dir / ".submitit" / job_id
    assert "#SBATCH --ntasks-per-node=2" in sbatch_script(sweep_dir, job_id)
    assert "NumTasks=2" in job_record(job_id)
    # srun started both ranks; Lightning's SLURM environment joined them
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in (folder / f"{job_id}_1_log.err").read_text() + (folder / f"{job_id}_1_log.out").read_text()

    expected = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    final = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    assert final["global_step"] == expected["global_step"] == 2  # 16 patches, batch 4, two ranks
    assert final["best_score"] == pytest.approx(expected["best_score"], rel=1e-6)
    for name, value in expected["metrics"].items():
        if name.startswith(("val/", "test/")):
            assert final["metrics"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name


def resume_args(volumes: Path) -> list[str]:
    """Two epochs of six steps; every step logged with its loss; last.ckpt every 4 steps."""
    return [*TINY, f"data.pattern={volumes}/*.nii.gz", "trainer.max_epochs=2", "data.patches_per_epoch=24",
            "callbacks.last_checkpoint.every_n_train_steps=4", "trainer.limit_val_batches=2",
            "trainer.limit_test_batches=1", "callbacks.progress_log.every_n_steps=1"]


@pytest.fixture(scope="module")
def uninterrupted(volumes, tmp_path_factory) -> Path:
    """The same training without SLURM and without interruption."""
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    check(run_script("train.py", *resume_args(volumes), f"hydra.run.dir={run_dir}"))
    return run_dir


def pause_at(name: str, step: int, flag: Path) -> list[str]:
    """A callback that parks the run at ``step`` once (tests/helpers/pause_callback.py)."""
    return [f"+callbacks.{name}._target_=tests.helpers.pause_callback.PauseAtStep", f"+callbacks.{name}.step={step}",
            f"+callbacks.{name}.flag={flag}"]


def test_requeue_and_time_limit_signal_resume_exactly(volumes, uninterrupted, tmp_path):
    """One job, stopped twice: ``scontrol requeue`` at step 3 (as an administrator or a preempting
    scheduler does), then at step 9 the USR1 that ``--signal=USR1@120`` sends before the time limit."""
    sweep_dir, requeued, signalled = tmp_path / "sweep", tmp_path / "requeued", tmp_path / "signalled"
    proc = launch("train.py", "-m", LAUNCHER, *resume_args(volumes), *pause_at("requeue", REQUEUE_AT, requeued),
                  *pause_at("signal", SIGNAL_AT, signalled), f"hydra.sweep.dir={sweep_dir}")
    try:
        wait_for(requeued.exists, proc, f"pause at step {REQUEUE_AT}")
        [job_id] = job_ids(sweep_dir)
        subprocess.run(["scontrol", "requeue", job_id], check=True)
        start_requeued_now(job_id, proc)
        wait_for(signalled.exists, proc, f"pause at step {SIGNAL_AT}")
        subprocess.run(["scancel", "--signal=USR1", job_id], check=True)  # to the job's tasks, as --signal=USR1@N
        start_requeued_now(job_id, proc)
        output = proc.communicate(timeout=300)[0]
    finally:
        proc.kill()
        cancel(job_ids(sweep_dir))
    assert proc.returncode == 0, output[-4000:]
    assert "Restarts=2" in job_record(job_id)

    run_dir = sweep_dir / "0"
    log = (run_dir / "train.log").read_text()
    # each SIGTERM (the requeues') stopped training after the batch and wrote last.ckpt there
    assert f"SIGTERM at step {REQUEUE_AT}: saved" in log and f"SIGTERM at step {SIGNAL_AT}: saved" in log
    # at USR1, Lightning's handler saved and requeued the job itself
    assert "Handling auto-requeue signal" in log and f"Requeued SLURM job: {job_id}" in log
    assert torch.load(run_dir / "hpc_ckpt_1.ckpt", map_location="cpu", weights_only=True)["global_step"] == SIGNAL_AT
    # every step once, with the same loss as without interruption: none repeated, none lost
    expected_steps = steps_and_losses(uninterrupted / "train.log")
    assert [s for s, _ in expected_steps] == list(range(1, 13))
    assert steps_and_losses(run_dir / "train.log") == expected_steps
    expected = json.loads((uninterrupted / "metrics.json").read_text())
    final = json.loads((run_dir / "metrics.json").read_text())
    assert final["global_step"] == expected["global_step"] == 12
    assert final["best_score"] == pytest.approx(expected["best_score"], abs=1e-6)
    for name, value in expected["metrics"].items():
        if name.startswith(("val/", "test/")):
            assert final["metrics"][name] == pytest.approx(value, rel=1e-6, abs=1e-7), name


def test_cancelled_job_ends_the_launcher_with_its_state(volumes, tmp_path):
    sweep_dir = tmp_path / "sweep"
    proc = launch("train.py", "-m", LAUNCHER, *TINY, f"data.pattern={volumes}/*.nii.gz", "trainer.fast_dev_run=true",
                  f"hydra.sweep.dir={sweep_dir}")
    try:
        [job_id] = wait_for(lambda: job_ids(sweep_dir), proc, "submitted job")
        subprocess.run(["scancel", job_id], check=True)
        started = time.monotonic()
        output = proc.communicate(timeout=180)[0]  # without sacct, submitit alone would wait forever
    finally:
        proc.kill()
        cancel(job_ids(sweep_dir))
    assert proc.returncode != 0 and time.monotonic() - started < 120
    assert f"Job {job_id} " in output and "has not produced any output (state: CANCELLED)" in output, output[-4000:]
    assert not (sweep_dir / "0" / "metrics.json").exists()


def test_a_papers_comparison_runs_its_rows_as_a_slurm_array(volumes, tmp_path):
    """benchmarks/comparisons.py --launcher slurm_cpu: the rows of a comparison are one SLURM array,
    tested on the unseen subjects and reported (a tiny budget: the route, not the numbers)."""
    out = tmp_path / "comparisons"
    tiny = ["data.patch_size=16", "data.eval_batch_size=4", "data.num_workers=0", "trainer.limit_test_batches=2",
            "trainer.limit_val_batches=2"]
    proc = check(run_script(str(ROOT / "benchmarks" / "comparisons.py"), "--set", "mrln_x2", "--data", f"{volumes}/*.nii.gz",
                            "--subjects", "{val:[sub-01],test:[sub-02,sub-03]}", "--out", str(out), "--steps", "2",
                            "--batch", "2", "--validations", "1", "--rows", "srcnn", "espcn", "--launcher", "slurm_cpu",
                            *[f"--override={o}" for o in tiny], timeout=600))
    ids = job_ids(out / "mrln_x2")
    assert ids == [f"{ids[0].split('_')[0]}_{n}" for n in range(2)] and all("JobState=COMPLETED" in job_record(i) for i in ids)
    table = proc.stdout[proc.stdout.index("**MRLN comparison x2"):]
    assert "| SRCNN |" in table and "| ESPCN |" in table and "not trained yet" in table  # FSRCNN and MRLN
    assert (out / "mrln_x2" / "summary.md").is_file()
