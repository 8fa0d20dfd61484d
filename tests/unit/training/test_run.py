"""``lfmri.training.run``: bad adversarial configs fail before training; resume modes pick the checkpoint."""

from __future__ import annotations

import time

import pytest
from hydra.errors import InstantiationException

from lfmri.training.run import train
from tests.helpers.config import compose


def composed(overrides, tmp_path):
    return compose(*overrides, output_dir=f"{tmp_path}/run")


@pytest.mark.parametrize(
    "overrides, error, message",
    [
        (["module=wgan", "module.critic=null"], InstantiationException, "module.critic is not set"),
        (["module=wgan", "model=srcnn", "module.critic.patch_size=64"], ValueError, "data.patch_size=32"),
        (["module=cycle", "model=srdensenet"], ValueError, "module=cycle needs generators that keep the image size"),
        (["module=supervised", "data.unpaired=true"], ValueError, "use module=cycle"),
        (["module=cycle", "model=srcnn", "data.unpaired=true"], ValueError, "module.weights.supervised=0"),
        (["module=wgan", "module.n_critic=0"], InstantiationException, "module.n_critic=0"),
    ],
)
def test_bad_adversarial_configs_fail_before_training(overrides, error, message, tmp_path):
    with pytest.raises(error, match=message):
        train(composed(overrides, tmp_path))
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("overrides, message", [
    (["trainer.max_epochs=0"], "trainer.max_epochs=0 trains nothing"),
    (["trainer.max_epochs=-1", "trainer.max_steps=0"], "trainer.max_steps=0 trains nothing"),
    (["trainer.accelerator=cpu", "trainer.devices=4096"], "trainer.devices=4096: more CPU processes than the"),
])
def test_a_run_that_would_not_train_or_would_overload_the_cpu_is_refused_first(overrides, message, tmp_path):
    from lfmri.errors import ConfigError

    with pytest.raises(ConfigError, match=message) as refused:
        train(composed(overrides, tmp_path))
    assert "\n" not in str(refused.value) and not (tmp_path / "run").exists()


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
