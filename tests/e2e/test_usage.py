"""What a user hits in the first hour (issue 14), through the real entry points: progress in file
logs, safe resume, one input grammar, umask, user mistakes as one line and exit 2, .mgz, provenance in headers."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest
import yaml

from lfmri.cli import predict
from lfmri.geometry.nifti import load_nifti, save_nifti
from tests.helpers.run import ROOT, TINY, run_script
from tests.helpers.run import check as ok  # exit 0, else the command's output
from tests.helpers.volumes import write_phantom, write_phantom_volumes

pytestmark = pytest.mark.e2e


TRAIN, EVALUATE = str(ROOT / "train.py"), str(ROOT / "evaluate.py")


def user_error(proc, *needles):
    """Exit 2, the message's last line names every needle, no traceback."""
    assert proc.returncode == 2, f"exit {proc.returncode}\nSTDOUT\n{proc.stdout[-3000:]}\nSTDERR\n{proc.stderr[-5000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "error:" in line and all(n in line for n in needles), line
    return line


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A 3-step training with stdout to a pipe (not a terminal) and a progress line every step
    (``every_n_seconds=0``: every line is due, as in a run whose steps take 30 s)."""
    root = tmp_path_factory.mktemp("first_hour")
    write_phantom_volumes(root / "volumes")
    run_dir = root / "run"
    proc = ok(run_script(TRAIN, *TINY, f"data.pattern={root}/volumes/*.nii.gz", "trainer.max_steps=3", "trainer.max_epochs=1",
                         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "callbacks.progress_log.every_n_seconds=0",
                         f"hydra.run.dir={run_dir}"))
    return root, run_dir, proc


def test_training_to_a_file_logs_progress_lines_once(run):
    _, run_dir, proc = run
    output = proc.stdout + proc.stderr
    for step in (1, 2, 3):
        assert f"epoch 0 step {step}/3, loss " in output, output[-3000:]
    assert "steps/s" in output and "patches/s" in output and ", lr " in output
    # the test says where it is too (validation: test_the_shipped_recipe_runs_six_steps...)
    assert "test: 1 batches" in output and "test: batch 1/1" in output and "test: done in" in output, output[-3000:]
    assert "epoch 0 step 2/3" in (run_dir / "train.log").read_text()
    # log noise: each Lightning line once (no second "INFO: ..." copy), no advert, no 100% notices
    assert "INFO: Seed set" not in output and output.count("Seed set to 42") == 1
    assert "litlogger" not in output and "was configured so 100%" not in output
    assert "LeafSpec" not in output


def test_resume_refuses_a_changed_config_unless_allowed(run):
    root, run_dir, _ = run
    stored = (run_dir / ".hydra" / "config.yaml").read_text()
    overrides = (run_dir / ".hydra" / "overrides.yaml").read_text()
    # the run ended at its max_epochs=1: a resume raises it (a limit, not a change), or it is finished and left alone
    base = [*TINY, f"data.pattern={root}/volumes/*.nii.gz", "trainer.max_epochs=2", "trainer.limit_val_batches=1",
            "trainer.limit_test_batches=1", "callbacks.progress_log.every_n_seconds=0", f"hydra.run.dir={run_dir}", "resume=true"]
    line = user_error(run_script(TRAIN, *base, "trainer.max_steps=4", "loss=l1"), "loss", "resume_allow_changes=true")
    assert "CompositeLoss" in line or "l1" in line
    # refused before Hydra wrote anything: the run's recorded config is the original one
    assert (run_dir / ".hydra" / "config.yaml").read_text() == stored
    assert (run_dir / ".hydra" / "overrides.yaml").read_text() == overrides
    assert not (run_dir / "resume_changes.yaml").exists()
    # extending the run is no change; the explicit flag continues and records what changed
    ok(run_script(TRAIN, *base, "trainer.max_steps=4", "loss=l1", "resume_allow_changes=true"))
    changes = yaml.safe_load((run_dir / "resume_changes.yaml").read_text())
    assert any(k.startswith("loss.") for k in changes[-1]["changes"])
    assert not any(k.startswith("trainer.max_steps") for k in changes[-1]["changes"])


@pytest.mark.parametrize(
    "script,args,needles",
    [
        (TRAIN, ["data=folder"], ["data.pattern"]),
        (TRAIN, ["data=folder", "data.pattern=/nonexistent/*.nii.gz"], ["data.pattern", "matches no files"]),
        (TRAIN, ["resume=true"], ["resume=true", "hydra.run.dir"]),
        (TRAIN, ["init_from=/nonexistent/best.ckpt"], ["init_from"]),
        (TRAIN, ["degradation.hr_size=127"], ["degradation.hr_size", "divisible"]),
        (EVALUATE, ["ckpt_path=/nonexistent/best.ckpt"], ["ckpt_path", "does not exist"]),
        (EVALUATE, ["ckpt_path=/nonexistent/a.ckpt", "ckpt_paths=[/nonexistent/b.ckpt]"], ["ckpt_path"]),
    ],
)
def test_user_mistakes_end_in_one_line_exit_2_and_leave_nothing(tmp_path, script, args, needles):
    proc = run_script(script, *args, "trainer.fast_dev_run=true" if script == TRAIN else "batch_size=8", cwd=tmp_path)
    user_error(proc, *needles)
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))


def test_an_existing_run_directory_is_refused_with_exit_2(run):
    root, run_dir, _ = run
    before = (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime
    proc = run_script(TRAIN, *TINY, f"data.pattern={root}/volumes/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}")
    user_error(proc, "already holds checkpoints", "resume=true")
    assert (run_dir / "checkpoints" / "last.ckpt").stat().st_mtime == before


def test_scale_3_and_4_work_with_the_default_sizes(tmp_path):
    """hr_size and patch_size follow scale (${lfmri.multiple}): no override besides scale=N."""
    write_phantom_volumes(tmp_path / "volumes")
    small = [a for a in TINY if not a.startswith(("degradation.hr_size", "data.patch_size"))]
    for scale in (3, 4):
        ok(run_script(TRAIN, *small, f"scale={scale}", f"data.pattern={tmp_path}/volumes/*.nii.gz", "trainer.fast_dev_run=true",
                      "model=espcn", f"hydra.run.dir={tmp_path}/run{scale}"))
        saved = yaml.safe_load((tmp_path / f"run{scale}" / ".hydra" / "config.yaml").read_text())
        assert saved["degradation"]["hr_size"] == "${lfmri.multiple:128,${scale}}"


def test_optuna_search_works_for_a_model_without_growth(tmp_path):
    write_phantom_volumes(tmp_path / "volumes")
    proc = ok(run_script(TRAIN, "hparams_search=optuna", "model=vdsr", "model.depth=3", "model.features=8", *TINY,
                         f"data.pattern={tmp_path}/volumes/*.nii.gz", "trainer.fast_dev_run=true", "hydra.sweeper.n_trials=1",
                         f"hydra.sweep.dir={tmp_path}/sweep", cwd=tmp_path))
    assert "Could not override" not in proc.stderr
    assert (tmp_path / "sweep" / "0" / "checkpoints" / "last.ckpt").is_file()


@pytest.fixture(scope="module")
def scan_dir(run):
    root, _, _ = run
    folder = root / "scans"
    write_phantom(folder / "scan.nii.gz", seed=7)
    return folder


GRAMMAR = {
    "file": lambda d: f"{d}/scan.nii.gz",
    "list": lambda d: f"[{d}/scan.nii.gz]",
    "folder": lambda d: f"{d}",
    "glob": lambda d: f"{d}/*.nii.gz",
}


def test_evaluate_reads_a_file_a_list_a_folder_and_a_glob_alike(run, scan_dir, tmp_path):
    _, run_dir, _ = run
    old = os.umask(0o022)
    try:
        tables = {}
        for form, entry in GRAMMAR.items():
            out = tmp_path / form
            ok(run_script(EVALUATE, f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs={entry(scan_dir)}", f"output_dir={out}",
                          f"hydra.run.dir={tmp_path}/hydra_{form}"))
            tables[form] = (out / "metrics.csv").read_text()
            written = out / "scan_sr.nii.gz"
            assert (written.stat().st_mode & 0o777) == 0o644  # umask 022, like the PNGs beside it
            descrip = nib.load(written).header["descrip"].tobytes().decode()
            assert descrip.startswith("sr lfmri ") and "last.ckpt" in descrip and "x2" in descrip
    finally:
        os.umask(old)
    assert len(set(tables.values())) == 1 and "scan" in tables["file"]


def test_predict_reads_the_same_grammar_and_writes_with_the_umask(run, scan_dir, tmp_path):
    _, run_dir, _ = run
    old = os.umask(0o022)
    try:
        outputs = {}
        for form, entry in GRAMMAR.items():
            out = tmp_path / form
            assert predict.main([f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs={entry(scan_dir)}", f"output_dir={out}",
                                 "progress=false", "preview=false"]) == 0
            outputs[form] = nib.load(out / "scan_sr.nii.gz").get_fdata()
            assert ((out / "scan_sr.nii.gz").stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
    for form in GRAMMAR:
        np.testing.assert_array_equal(outputs[form], outputs["file"])


def test_evaluate_help_lists_evaluate_options_not_train_groups():
    proc = ok(run_script(EVALUATE, "--help"))
    assert "ckpt_path" in proc.stdout and "inputs" in proc.stdout
    assert "hparams_search" not in proc.stdout and "degradation:" not in proc.stdout


def test_mgz_round_trip_and_predict_on_mgz(run, tmp_path):
    _, run_dir, _ = run
    affine = np.array([[0, 0, 1.5, -10], [-1.0, 0, 0, 20], [0, 1.0, 0, -5], [0, 0, 0, 1]])
    data = np.random.default_rng(0).random((6, 7, 8)).astype(np.float32)
    path = save_nifti(tmp_path / "x.mgz", data, np.diag([1.0, 2.0, 3.0, 1.0]), ("P", "S", "R"))
    assert isinstance(nib.load(path), nib.MGHImage)
    volume = load_nifti(path)
    np.testing.assert_allclose(volume.data, data)
    assert volume.axcodes == ("P", "S", "R") and volume.name == "x"
    scan = tmp_path / "scans" / "t1.mgz"
    scan.parent.mkdir()
    src = write_phantom(tmp_path / "t1.nii.gz", seed=3, affine=affine)
    nib.save(nib.MGHImage(nib.load(src).get_fdata(dtype=np.float32), affine), scan)
    assert predict.main([f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs={scan.parent}", f"output_dir={tmp_path}/out",
                         "progress=false"]) == 0
    out = nib.load(tmp_path / "out" / "t1_sr.mgz")
    assert isinstance(out, nib.MGHImage) and nib.aff2axcodes(out.affine) == nib.aff2axcodes(affine)


def test_views_show_consistency_and_uncertainty_maps(run, scan_dir, tmp_path):
    _, run_dir, _ = run
    assert predict.main([f"ckpt_path={run_dir}/checkpoints/last.ckpt", f"inputs={scan_dir}", f"output_dir={tmp_path}",
                         "progress=false", "tta=true", "data_consistency=true"]) == 0
    import matplotlib.image as mpimg

    image = mpimg.imread(tmp_path / "scan_views.png")
    assert image.shape[0] > image.shape[1]  # four rows of three views: scan, SR, consistency, uncertainty


def test_wandb_summary_keeps_the_best_validation_metric_and_baselines_are_logged(tmp_path, monkeypatch):
    from tests.helpers.wandb_records import history, records

    for var in ("WANDB_API_KEY", "WANDB_API_KEY_FILE", "NETRC", "WANDB_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HOME", str(tmp_path))
    write_phantom_volumes(tmp_path / "volumes")
    run_dir = tmp_path / "run"
    env_proc = run_script(TRAIN, *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "logger=wandb", "trainer.max_epochs=1", "trainer.limit_train_batches=1",
                          "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                          f"hydra.run.dir={run_dir}")
    ok(env_proc)
    (path,) = list((run_dir / "wandb").glob("offline-run-*/run-*.wandb"))
    defined = {r.metric.name: r.metric.summary for r in records(path) if r.WhichOneof("record_type") == "metric"}
    assert defined["val/psnr"].max and defined["val/ssim_brain"].max
    assert defined["val/nrmse"].min and defined["val/loss"].min
    logged = {k for row in history(path) for k in row}
    assert "baselines/test/zerofill_psnr_brain" in logged and "test/psnr_brain" in logged
    # the baselines at every validation too, so a dashboard plots the gain over zero-fill during training
    assert {"baselines/val/zerofill_psnr_brain", "baselines/val/bicubic_ssim_brain", "val/psnr_brain"} <= logged


def test_ckpt_path_continues_a_run_in_a_new_directory(run, tmp_path):
    import json

    root, run_dir, _ = run
    # the module's run may have been extended by a resume test before: continue from where it stands
    start = json.loads((run_dir / "metrics.json").read_text())
    new = tmp_path / "continued"
    proc = ok(run_script(TRAIN, *TINY, f"data.pattern={root}/volumes/*.nii.gz", f"ckpt_path={run_dir}/checkpoints/last.ckpt",
                         f"trainer.max_steps={start['global_step'] + 2}", f"trainer.max_epochs={start['epoch'] + 2}",
                         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                         "extras.print_config=true", f"hydra.run.dir={new}"))
    # two new steps on top of those that came from the checkpoint
    assert json.loads((new / "metrics.json").read_text())["global_step"] == start["global_step"] + 2
    assert "print_config: true" in proc.stdout


def test_the_shipped_recipe_runs_six_steps_and_its_best_checkpoint_has_learned(tmp_path):
    """experiment=srdensenet_kspace_x2 trainer.max_steps=6: its 200-step warm-up and EMA start are
    shortened to the run (said in the log), so best.ckpt holds averaged weights that moved away
    from the initialisation (the residual SRDenseNet's reconstruction conv starts at zero)."""
    import torch

    write_phantom_volumes(tmp_path / "volumes")
    run_dir = tmp_path / "run"
    proc = ok(run_script(TRAIN, "experiment=srdensenet_kspace_x2", "trainer.max_steps=6", *TINY,
                         f"data.pattern={tmp_path}/volumes/*.nii.gz", "data.patches_per_epoch=24", "trainer.precision=32",
                         "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "callbacks.progress_log.every_n_seconds=0",
                         f"hydra.run.dir={run_dir}"))
    output = proc.stdout + proc.stderr
    assert "epoch 0 step 6 validation: 1 batches" in output and "validation: batch 1/1" in output, output[-3000:]
    assert "epoch 0 step 6 validation: val/" in output and " val/psnr_brain " in output
    assert "learning-rate warm-up of 200 steps shortened to 1" in output and "EMA start of 200 steps shortened to 1" in output
    state = torch.load(run_dir / "checkpoints" / "best.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    reconstruction = [v for k, v in state.items() if "reconstruction.weight" in k]
    assert reconstruction and all(v.abs().max() > 0 for v in reconstruction)
