"""Sweeps, wandb, DDP and cluster configs, run through the real train.py as a user runs it."""

from __future__ import annotations

import csv
import json
import re

import pytest
import torch
import yaml

from lfmri.cli import sweep
from tests.helpers.config import compose
from tests.helpers.run import ROOT, TINY, check, run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def volumes(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("scaleout")
    write_phantom_volumes(root / "volumes")
    return f"data.pattern={root}/volumes/*.nii.gz"


def split_counts(log_text: str) -> dict[str, int]:
    """The datamodule's log line: slices with anatomy per split."""
    found = re.search(r"split \(slices with anatomy\): (\{[^}]*\})", log_text)
    assert found, "no split line in the log"
    return yaml.safe_load(found.group(1))


def slice_counts(*overrides: str) -> dict[str, int]:
    """Slices with anatomy per split, from the data module that train.py builds for these overrides."""
    from hydra.utils import instantiate

    from lfmri.contracts import input_mode

    cfg = compose(*overrides, "data.split_file=null", output_dir="/tmp/unused")
    data = instantiate(cfg.data, degradation=instantiate(cfg.degradation), input_mode=input_mode(instantiate(cfg.model)))
    data.setup("fit")
    return {name: sum(len(p.hr) for p in segments) for name, segments in data.prepared.items()}


def test_multirun_2x2_makes_four_complete_runs_and_a_summary(volumes, tmp_path):
    sweep_dir = tmp_path / "sweep"
    multirun = check(run_script("train.py", "-m", "model=srdensenet,vdsr", "loss=mse,l1", *TINY, volumes,
                                "trainer.fast_dev_run=true", f"hydra.sweep.dir={sweep_dir}"))
    # the sweep ends with its comparison, written and named
    assert f"sweep summary: {sweep_dir / 'summary.md'}" in multirun.stdout, multirun.stdout[-2000:]
    assert (sweep_dir / "summary.csv").is_file() and (sweep_dir / "summary.html").read_text().count("<tr><td>") == 4
    jobs = sorted(p for p in sweep_dir.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    combos = set()
    for job in jobs:
        for rel in [".hydra/config.yaml", "split.json", "checkpoints/last.ckpt", "test/metrics.csv", "metrics.json"]:
            assert (job / rel).is_file(), f"{job.name}/{rel}"
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        combos.add(tuple(o for o in overrides if o.startswith(("model=", "loss="))))
        card = torch.load(job / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["lfmri"]["card"]
        assert card["name"] == next(o for o in overrides if o.startswith("model="))[len("model="):]
    assert combos == {(f"model={m}", f"loss={l}") for m in ("srdensenet", "vdsr") for l in ("mse", "l1")}

    proc = check(run_script("-m", "lfmri.cli.sweep", "summarize", f"output_dir={sweep_dir}"))
    rows = list(csv.DictReader((sweep_dir / "summary.csv").open()))
    assert len(rows) == 4 and {r["status"] for r in rows} == {"complete"}
    psnr = [float(r["val/psnr_brain"]) for r in rows]  # ranked by in-brain PSNR by default
    assert psnr == sorted(psnr, reverse=True)
    for row in rows:  # each row is its run's own validation (fast_dev_run: the single one)
        final = json.loads((sweep_dir / row["run"] / "metrics.json").read_text())["metrics"]
        for key in ("val/psnr_brain", "val/ssim_brain", "val/psnr", "val/ssim", "test/psnr_brain", "test/psnr"):
            assert float(row[key]) == pytest.approx(final[key])
        zerofill = final["baselines/test/zerofill_psnr_brain"]
        assert float(row["test/psnr_brain_vs_zerofill"]) == pytest.approx(final["test/psnr_brain"] - zerofill)
        assert set(row["overrides"].split()) <= {"model=srdensenet", "model=vdsr", "loss=mse", "loss=l1"}
    assert "| model=" in proc.stdout and (sweep_dir / "summary.md").read_text().count("| complete |") == 4
    # any metric, minimised when it is an error
    by_error = sweep.summarize(sweep_dir, "val/nrmse")
    errors = [r["val/nrmse"] for r in by_error]
    assert errors == sorted(errors) and list(by_error[0])[:3] == ["run", "overrides", "val/nrmse"]
    with pytest.raises(SystemExit) as refused:
        sweep.main(["summarize", f"output_dir={sweep_dir}", "metric=val/accuracy"])
    assert refused.value.code == 2


def test_wandb_logs_offline_one_run_per_job_grouped_by_sweep(volumes, tmp_path, monkeypatch):
    from tests.helpers.wandb_records import history, run_info

    for var in ("WANDB_API_KEY", "WANDB_API_KEY_FILE", "WANDB_MODE", "NETRC", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc: no credentials
    sweep_dir = tmp_path / "sweep"
    proc = check(run_script("train.py", "-m", "loss=mse,l1", "logger=wandb", *TINY, volumes,
                            "trainer.max_epochs=2", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                            "trainer.limit_test_batches=1",
                            f"hydra.sweep.dir={sweep_dir}"))
    assert "logging offline" in proc.stdout + proc.stderr and "wandb sync" in proc.stdout + proc.stderr
    names = set()
    for job, loss in (("0", "mse"), ("1", "l1")):
        files = list((sweep_dir / job / "wandb").glob("offline-run-*/run-*.wandb"))
        assert len(files) == 1, files  # one wandb run per job
        info = run_info(files[0])
        # named by what the sweep varies, grouped by the sweep folder's name, tagged by the user's tags only
        assert (info["name"], info["group"], info["job_type"], info["tags"]) == (loss, sweep_dir.name, "train", [])
        names.add(info["name"])
        assert info["config"]["loss.weights." + loss] == 1.0 and info["config"]["seed"] == 42  # flattened config
        assert info["config"]["loss_name"] == loss and info["config"]["model_name"] == "srdensenet"  # short keys
        rows = history(files[0])
        logged = [r["val/psnr"] for r in rows if "val/psnr" in r]
        with (sweep_dir / job / "logs" / "metrics.csv").open() as file:
            expected = [float(r["val/psnr"]) for r in csv.DictReader(file) if r["val/psnr"]]
        assert len(logged) == 2 and logged == pytest.approx(expected)
        assert any("test/psnr" in r for r in rows)
        gains = [r["val/psnr_brain_vs_zerofill"] for r in rows if "val/psnr_brain_vs_zerofill" in r]
        brain = [r["val/psnr_brain"] - r["baselines/val/zerofill_psnr_brain"] for r in rows if "val/psnr_brain" in r]
        assert len(gains) == 2 and gains == pytest.approx(brain, abs=1e-4)  # the gain a sweep is ranked by
        assert any("test/psnr_brain_vs_bicubic" in r for r in rows)
        assert any(r.get("test/per_subject/_type") == "table-file" for r in rows)  # the per-subject table
        assert sum(r.get("val/panel/_type") == "images/separated" for r in rows) == 1  # the last epoch's panel
    assert len(names) == 2

    # resume=true continues the same wandb run (offline: a second run file with the same id)
    job = sweep_dir / "0"
    overrides = (job / ".hydra" / "overrides.yaml").read_text()
    assert "loss=mse" in overrides
    check(run_script("train.py", "loss=mse", "logger=wandb", *TINY, volumes, "trainer.max_epochs=3",
                     "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                     "resume=true", f"hydra.run.dir={job}"))
    files = sorted((job / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 2 and len({run_info(f)["id"] for f in files}) == 1
    assert (job / "wandb_run_id.txt").read_text().strip() == run_info(files[0])["id"]

    rows = sweep.summarize(sweep_dir)  # from the CSV history: the best of the two validations
    for row in rows:
        with (sweep_dir / row["run"] / "logs" / "metrics.csv").open() as file:
            best = max(float(r["val/psnr_brain"]) for r in csv.DictReader(file) if r["val/psnr_brain"])
        assert row["val/psnr_brain"] == pytest.approx(best)


def test_ddp_cpu_two_processes_one_run_directory_each_slice_once(volumes, tmp_path):
    outputs = ROOT / "outputs"
    before = sorted(outputs.rglob("*")) if outputs.exists() else []
    run_dir = tmp_path / "run"
    # the device path (data.degrade_on=device, resident slices) under DDP: each rank degrades its own batches
    proc = check(run_script("train.py", "trainer=ddp_cpu", *TINY, volumes, "trainer.max_epochs=1",
                            "data.patches_per_epoch=16", "module.panel_every_n_epochs=1", "data.degrade_on=device",
                            "data.resident=true", f"hydra.run.dir={run_dir}"))
    output = proc.stdout + proc.stderr
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in output
    seeds = {int(m[1]): int(m[2]) for log in ("train.log", "train_ddp_process_1.log")
             for m in re.finditer(r"rank (\d)'s first batch seed (\d+)", (run_dir / log).read_text())}
    assert set(seeds) == {0, 1} and seeds[0] != seeds[1]  # no two ranks draw the same noise
    # rank 1 ran in the same directory (its own log file), and nothing else was created
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    assert (run_dir / "train_ddp_process_1.log").is_file() and (run_dir / ".hydra" / "config.yaml").is_file()
    assert [p for p in run_dir.rglob(".hydra") if p.parent != run_dir] == []
    assert (sorted(outputs.rglob("*")) if outputs.exists() else []) == before
    for rel in ["split.json", "checkpoints/best.ckpt", "checkpoints/last.ckpt", "test/metrics.csv", "metrics.json"]:
        assert (run_dir / rel).is_file(), rel
    counts = split_counts((run_dir / "train.log").read_text())
    assert counts == slice_counts(*TINY, volumes)
    with (run_dir / "logs" / "metrics.csv").open() as file:
        val = [r for r in csv.DictReader(file) if r["val/slices"]]
    assert len(val) == 1 and float(val[0]["val/slices"]) == counts["val"]  # summed over ranks: each slice once
    with (run_dir / "test" / "metrics.csv").open() as file:
        tested = [(r["subject"], r["slice"]) for r in csv.DictReader(file) if r["method"] == "srdensenet"]
    assert len(tested) == len(set(tested)) == counts["test"]
    # 16 patches, batch 4, two ranks: 2 optimiser steps
    assert json.loads((run_dir / "metrics.json").read_text())["global_step"] == 2


def test_slurm_launcher_config_composes_one_task_per_gpu():
    proc = check(run_script("train.py", "hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4",
                            "hydra.launcher.nodes=2", "hydra.launcher.partition=gpu", "trainer=ddp",
                            "trainer.devices=4", "trainer.num_nodes=2", "--cfg", "all", "--resolve"))
    config = yaml.safe_load(proc.stdout)
    launcher = config["hydra"]["launcher"]
    assert launcher["_target_"].endswith("submitit_launcher.SlurmLauncher")
    assert launcher["tasks_per_node"] == launcher["gpus_per_node"] == 4 and launcher["nodes"] == 2
    assert launcher["partition"] == "gpu" and launcher["additional_parameters"]["signal"] == "USR1@120"  # to Lightning
    assert config["trainer"]["strategy"]["process_group_backend"] == "nccl"
    assert config["trainer"]["devices"] == 4 and config["trainer"]["num_nodes"] == 2


def test_optuna_search_config_composes():
    proc = check(run_script("train.py", "hparams_search=optuna", "--cfg", "job", "--resolve"))
    job = yaml.safe_load(proc.stdout)
    assert job["optimized_metric"] == "val/psnr_brain" and set(job["loss"]["weights"]) == {"mse", "hfen"}
    proc = check(run_script("train.py", "hparams_search=optuna", "--cfg", "hydra"))
    sweeper = yaml.safe_load(proc.stdout)["hydra"]["sweeper"]
    assert sweeper["_target_"].endswith("OptunaSweeper") and sweeper["direction"] == "maximize"
    # only options every model has: hparams_search=optuna model=vdsr works (a width is added per model)
    assert set(sweeper["params"]) == {"module.optimizer.lr", "loss.weights.hfen"}


def test_optuna_search_runs_trials_and_reports_the_best(volumes, tmp_path):
    sweep_dir = tmp_path / "optuna"
    proc = check(run_script("train.py", "hparams_search=optuna", "hydra.sweeper.n_trials=2", *TINY, volumes,
                            "trainer.fast_dev_run=true", f"hydra.sweep.dir={sweep_dir}"))
    assert "Best value" in proc.stdout + proc.stderr
    best = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    trials = [json.loads((p / "metrics.json").read_text())["metrics"]["val/psnr_brain"] for p in sorted(sweep_dir.glob("[0-9]"))]
    assert len(trials) == 2 and best["best_value"] == pytest.approx(max(trials))


def test_ddp_spawn_runs_inside_a_multirun(volumes, tmp_path):
    sweep_dir = tmp_path / "sweep"
    check(run_script("train.py", "-m", "trainer=ddp_spawn", "trainer.accelerator=cpu", "trainer.devices=2", "loss=l1",
                     *TINY, volumes, "trainer.max_epochs=1", "data.patches_per_epoch=16",
                     f"hydra.sweep.dir={sweep_dir}"))
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == ["0"]
    run = json.loads((sweep_dir / "0" / "metrics.json").read_text())
    counts = slice_counts(*TINY, volumes)  # spawned ranks log nothing: count as train.py does
    assert run["global_step"] == 2 and run["best_score"] == pytest.approx(run["metrics"]["val/psnr_brain"])
    assert run["metrics"]["val/slices"] == counts["val"]


def test_relaunching_ddp_inside_a_multirun_is_refused_before_training(volumes, tmp_path):
    proc = run_script("train.py", "-m", "trainer=ddp_cpu", "loss=mse", *TINY, volumes, "trainer.fast_dev_run=true",
                      f"hydra.sweep.dir={tmp_path}/sweep")
    assert proc.returncode != 0 and "trainer=ddp_spawn" in proc.stderr and "hydra/launcher=slurm" in proc.stderr
    assert not list(tmp_path.rglob("*.ckpt"))
