"""The wgan and cycle modules trained in-process on tiny tensors (Lightning fits of 4-40 steps):
critic steps, short runs that lower the pixel error, unpaired data."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from lfmri.losses.composite import CompositeLoss
from lfmri.losses.tv import JointSparsifyingTransform
from lfmri.losses.wgan import WassersteinGPLoss
from lfmri.models.srcnn import SRCNN
from lfmri.modules.cycle import CycleModule
from lfmri.modules.wgan import WGANModule

pytestmark = pytest.mark.e2e


def tiny_batches(n: int, size: int = 16, seed: int = 0) -> list[dict]:
    """(lr_up, hr) pairs: a smooth HR pattern and its blurred version."""
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(n):
        hr = torch.nn.functional.avg_pool2d(torch.rand(4, 1, size, size, generator=g), 3, 1, 1)
        lr_up = torch.nn.functional.avg_pool2d(hr, 3, 1, 1)
        batches.append({"lr_up": lr_up, "lr": lr_up, "hr": hr})
    return batches


class TinyCritic(torch.nn.Module):
    """Any critic works with the modules; a small one keeps these tests fast."""

    def __init__(self, patch_size: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.net = torch.nn.Sequential(
            torch.nn.Conv2d(1, 8, 3, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Conv2d(8, 8, 3, 2, 1), torch.nn.LeakyReLU(0.2),
            torch.nn.Flatten(), torch.nn.Linear(8 * (patch_size // 4) ** 2, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(1)


def adam(lr: float = 1e-3):
    return lambda params: torch.optim.Adam(params, lr=lr, betas=(0.5, 0.9))


def wgan(n_critic: int = 4, lr: float = 1e-3, size: int = 16) -> WGANModule:
    torch.manual_seed(0)
    return WGANModule(
        net=SRCNN(scale=2, features=16, mapping=8),
        loss=CompositeLoss({"mse": torch.nn.MSELoss()}),
        critic=TinyCritic(size),
        adversarial=WassersteinGPLoss(10.0),
        optimizer=adam(lr),
        critic_optimizer=adam(lr),
        n_critic=n_critic,
        channels_last=False,
    )


def cycle(lr: float = 1e-3, weights: dict | None = None) -> CycleModule:
    torch.manual_seed(0)
    return CycleModule(
        net=SRCNN(scale=2, features=16, mapping=8),
        loss=CompositeLoss({"l1": torch.nn.L1Loss()}),
        inverse_net=SRCNN(scale=2, features=16, mapping=8),
        critic=TinyCritic(32),
        lr_critic=TinyCritic(32),
        cycle_loss=torch.nn.L1Loss(),
        identity_loss=torch.nn.L1Loss(),
        jst_loss=JointSparsifyingTransform(0.1),
        weights=weights or {"adversarial": 1.0, "cycle": 1.0, "identity": 0.5, "jst": 1e-3, "supervised": 1.0},
        adversarial=WassersteinGPLoss(10.0),
        optimizer=adam(lr),
        critic_optimizer=adam(lr),
        n_critic=1,
        channels_last=False,
    )


def fit(module, batches, steps: int, tmp_path) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, default_root_dir=tmp_path, accelerator="cpu",
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return trainer


def adam_steps(optimizer: torch.optim.Optimizer) -> int:
    return int(next(iter(optimizer.state.values()))["step"])


def test_critic_is_stepped_n_critic_times_per_generator_step(tmp_path):
    module = wgan(n_critic=3)
    trainer = fit(module, tiny_batches(12), steps=3, tmp_path=tmp_path)
    generator_opt, critic_opt = (o.optimizer for o in module.optimizers())
    assert trainer.global_step == 3  # a step is a generator update: 12 batches, one optimiser update each
    assert (adam_steps(critic_opt), adam_steps(generator_opt)) == (9, 3)
    assert module.optimizer_updates == 12


def test_a_critic_warm_up_comes_before_the_first_generator_update(tmp_path):
    module = wgan(n_critic=1)
    module.critic_warmup_steps = 4
    trainer = fit(module, tiny_batches(8), steps=2, tmp_path=tmp_path)
    generator_opt, critic_opt = (o.optimizer for o in module.optimizers())
    assert trainer.global_step == 2
    assert (adam_steps(critic_opt), adam_steps(generator_opt)) == (4 + 2, 2)


def pixel_mse(module, batch) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(module.net(batch["lr_up"]), batch["hr"]))


def test_short_wgan_run_has_finite_losses_and_lowers_the_pixel_error(tmp_path):
    module, batches = wgan(n_critic=1, lr=3e-3), tiny_batches(40)
    held_out = tiny_batches(1, seed=99)[0]
    before = pixel_mse(module, held_out)
    trainer = fit(module, batches, steps=20, tmp_path=tmp_path)  # 20 generator updates, 40 batches
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("train/critic_loss", "train/critic_wasserstein", "train/critic_gp", "train/critic_real", "train/critic_fake",
                "train/generator_loss",
                "train/generator_adversarial", "train/generator_loss_mse", "train/generator_pixel_mse"):
        assert math.isfinite(logged[key]), key
    assert pixel_mse(module, held_out) < 0.25 * before


def test_short_cycle_run_has_finite_losses_and_lowers_the_pixel_error(tmp_path):
    module, batches = cycle(), tiny_batches(40, size=32)
    held_out = tiny_batches(1, size=32, seed=99)[0]
    before = pixel_mse(module, held_out)
    trainer = fit(module, batches, steps=20, tmp_path=tmp_path)  # 20 generator updates, 40 batches (n_critic 1)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("critic_hr_gp", "critic_lr_wasserstein", "generator_adversarial", "generator_cycle",
                "generator_identity", "generator_jst", "generator_supervised", "generator_loss"):
        assert math.isfinite(logged[f"train/{key}"]), key
    assert pixel_mse(module, held_out) < 0.25 * before
    generator_opt, critic_opt = (o.optimizer for o in module.optimizers())
    assert len(generator_opt.param_groups[0]["params"]) == 12  # G and F
    assert adam_steps(critic_opt) == adam_steps(generator_opt) == 20


class FakeData:
    def __init__(self, unpaired: bool, patch_size: int = 32) -> None:
        self.unpaired, self.patch_size = unpaired, patch_size


def test_cycle_trains_on_unpaired_data_without_supervision(tmp_path):
    no_supervision = {"adversarial": 1.0, "cycle": 1.0, "identity": 0.5, "jst": 1e-3, "supervised": 0.0}
    with pytest.raises(ValueError, match="module.weights.supervised=0"):
        cycle().check_setup(FakeData(unpaired=True))
    module = cycle(weights=no_supervision)
    module.check_setup(FakeData(unpaired=True))
    assert not module.paired
    trainer = fit(module, tiny_batches(4, size=32), steps=4, tmp_path=tmp_path)
    assert "train/generator_supervised" not in trainer.callback_metrics
    assert math.isfinite(float(trainer.callback_metrics["train/generator_jst"]))
    with pytest.raises(ValueError, match="use module=cycle"):
        wgan().check_setup(FakeData(unpaired=True, patch_size=16))
