"""train.py with module=wgan / module=cycle as a user runs it: the Lyu et al. (2018) experiments on
CPU, their checkpoints in evaluate.py, and resuming an adversarial run."""

from __future__ import annotations

import csv

import pytest
import torch

from lfmri.checkpoints.load import METADATA_KEY
from tests.helpers.run import TINY, check, run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    root = tmp_path_factory.mktemp("adversarial")
    write_phantom_volumes(root / "volumes")
    return root


def tiny(root, patch_size: int) -> list[str]:
    return [*TINY, f"data.pattern={root}/volumes/*.nii.gz", f"data.patch_size={patch_size}"]


def load(path):
    return torch.load(path, map_location="cpu", weights_only=True)


def test_lyu2018_experiments_run_on_cpu_and_their_checkpoints_evaluate(volumes, tmp_path):
    cpce, circle = tmp_path / "cpce", tmp_path / "circle"
    # the experiment asks for ImageNet VGG weights; offline tests allow random ones
    offline = "loss.terms.perceptual.allow_random_weights=true"
    fast = "trainer.fast_dev_run=true"
    check(run_script("train.py", "experiment=lyu2018_gan_cpce", *tiny(volumes, 16), offline, fast,
                     f"hydra.run.dir={cpce}"))
    check(run_script("train.py", "experiment=lyu2018_gan_circle", *tiny(volumes, 32), fast, f"hydra.run.dir={circle}"))

    ckpt = load(cpce / "checkpoints" / "last.ckpt")
    config = ckpt[METADATA_KEY]["config"]
    assert config["degradation"]["_target_"].endswith("KSpaceZeroFillDegradation") and config["module"]["n_critic"] == 4
    assert any(k.startswith("critic.") for k in ckpt["state_dict"]) and len(ckpt["optimizer_states"]) == 2
    assert len(ckpt["lr_schedulers"]) == 2
    assert not any("perceptual" in k for k in ckpt["state_dict"])  # the frozen VGG is not stored
    ckpt = load(circle / "checkpoints" / "last.ckpt")
    prefixes = {k.split(".")[0] for k in ckpt["state_dict"]}
    assert {"net", "inverse_net", "critic", "lr_critic"} <= prefixes and len(ckpt["optimizer_states"]) == 2

    out = tmp_path / "eval"
    paths = f"[{cpce}/checkpoints/last.ckpt,{circle}/checkpoints/last.ckpt]"
    proc = check(run_script("evaluate.py", f"ckpt_paths={paths}", f"output_dir={out}"))
    assert "| cpce |" in proc.stdout and "| circle |" in proc.stdout
    rows = list(csv.DictReader((out / "metrics.csv").open()))
    assert {r["method"] for r in rows} == {"cpce", "circle", "zerofill", "bicubic", "nlm3d"}  # evaluate adds the classical 3D row


def test_resumed_wgan_run_continues_the_step_count_and_learning_rates(volumes, tmp_path):
    run = tmp_path / "run"
    # 20 patches / batch 4 = 5 batches per epoch: 4 critic updates, then 1 generator update (a step)
    args = [
        "module=wgan", "model=cpce", "loss=mse", "degradation=kspace_zerofill", *tiny(volumes, 16),
        "data.patches_per_epoch=20", "module.scheduler.constant_epochs=0", "module.scheduler.decay_epochs=2",
        "module.scheduler.end_factor=0.5", "module.critic_scheduler.constant_epochs=0",
        "module.critic_scheduler.decay_epochs=1", "module.critic_scheduler.end_factor=0.1", f"hydra.run.dir={run}",
    ]
    check(run_script("train.py", *args, "trainer.max_epochs=1"))
    first = load(run / "checkpoints" / "last.ckpt")
    assert first["global_step"] == 1 and first["lfmri_adversarial"]["optimizer_updates"] == 5
    check(run_script("train.py", *args, "trainer.max_epochs=2", "resume=true"))
    resumed = load(run / "checkpoints" / "last.ckpt")
    # what an uninterrupted 2-epoch run has: 10 updates (8 critic, 2 generator: 2 steps), epoch-1 learning
    # rates; last.ckpt is written at the end of training, after both epochs
    assert resumed["global_step"] == 2 and resumed["epoch"] == 2
    generator_state, critic_state = resumed["optimizer_states"]
    assert [int(s["step"]) for s in (critic_state["state"][0], generator_state["state"][0])] == [8, 2]
    assert generator_state["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.75)
    assert critic_state["param_groups"][0]["lr"] == pytest.approx(1e-4 * 0.1)
    assert [s["last_epoch"] for s in resumed["lr_schedulers"]] == [1, 1]
    assert not torch.equal(first["state_dict"]["net.output.weight"], resumed["state_dict"]["net.output.weight"])
