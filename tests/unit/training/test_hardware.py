"""``hardware=gpu``: the GPU form of every shipped recipe (batch x8, learning rate x sqrt 8, the data
on the device), composed with each and trained under a tiny budget here (on the CPU)."""

from __future__ import annotations

import math

import pytest

from tests.helpers.config import compose

SHIPPED_RECIPES = ("srdensenet_kspace_x2", "gan_cpce_kspace_x2", "lowfield_sim")


@pytest.mark.parametrize("recipe", SHIPPED_RECIPES)
def test_the_gpu_form_of_each_shipped_recipe_scales_its_batch_and_learning_rate(recipe):
    cpu = compose(f"experiment={recipe}")
    gpu = compose(f"experiment={recipe}", "hardware=gpu")
    assert gpu.data.batch_size == 8 * cpu.data.batch_size and gpu.data.patches_per_epoch == 8 * cpu.data.patches_per_epoch
    assert gpu.module.optimizer.lr == pytest.approx(math.sqrt(8) * cpu.module.optimizer.lr)
    assert gpu.trainer.max_steps == cpu.trainer.max_steps  # the same steps, 8x the patches
    assert (gpu.trainer.accelerator, gpu.data.degrade_on, gpu.data.resident, gpu.module.channels_last) == ("gpu", "device", True, True)
    assert compose(f"experiment={recipe}", "hardware=cpu").data.batch_size == cpu.data.batch_size


def test_the_gpu_form_trains_under_a_tiny_budget(phantom_dir, tmp_path):
    import json

    from lfmri.training.run import train
    from tests.helpers.run import TINY

    cfg = compose("experiment=srdensenet_kspace_x2", "hardware=gpu", "trainer.accelerator=cpu", "trainer.benchmark=null",
                  *(o for o in TINY if not o.startswith("data.batch_size=")), f"data.pattern={phantom_dir}/*.nii.gz",
                  "model.blocks=2", "model.layers_per_block=2", "model.bottleneck_channels=16", "data.augment.scale=null",
                  "trainer.max_steps=2", "trainer.limit_val_batches=1",
                  "trainer.limit_test_batches=1", "callbacks.progress_log=null", "callbacks.ema=null", "logger=csv",
                  output_dir=f"{tmp_path}/run")
    assert cfg.data.batch_size == 96  # the recipe's 12, x8
    train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["global_step"] == 2 and math.isfinite(record["metrics"]["test/psnr_brain"])


@pytest.mark.parametrize("recipe", ["mrln_x2", "lyu2018_gan_cpce", "srdensenet_kspace_x2"])
def test_optimizer_and_scheduler_choices_replace_the_recipes_without_leftovers(recipe):
    """optimizer=adam on MRLN's SGD recipe is Adam with MRLN's learning rate and no momentum;
    scheduler=cosine_warmup replaces the recipe's schedule and its interval."""
    import torch
    from hydra.utils import instantiate

    from lfmri.training.run import schedule_choices
    from lfmri.training.schedules import WarmupCosineLR

    cfg = compose(f"experiment={recipe}", "optimizer=adam", "scheduler=cosine_warmup", "trainer.max_steps=100")
    chosen = schedule_choices(cfg)
    params = [torch.nn.Parameter(torch.zeros(2))]
    optimizer = chosen["optimizer"](params)
    assert type(optimizer) is torch.optim.Adam and optimizer.defaults["lr"] == pytest.approx(cfg.module.optimizer.lr)
    assert isinstance(chosen["scheduler"](optimizer), WarmupCosineLR) and chosen["scheduler_interval"] == "step"
    assert schedule_choices(compose(f"experiment={recipe}")) == {}  # no choice: the recipe's own
    constant = schedule_choices(compose(f"experiment={recipe}", "scheduler=none"))
    assert constant == {"scheduler": None, "scheduler_interval": "epoch"}
    cpu = compose(f"experiment={recipe}", "optimizer=sgd", "optimizer.lr=0.05")
    module = instantiate(cpu.module, net=torch.nn.Conv2d(1, 1, 3), loss=instantiate(cpu.loss), baselines={}, name="x",
                         **schedule_choices(cpu)) if recipe == "srdensenet_kspace_x2" else None
    if module is not None:
        assert type(module.configure_optimizers()["optimizer"]) is torch.optim.SGD
