"""Adversarial and cycle-consistent training: critics, WGAN-GP, perceptual/TV/JST losses, the wgan
and cycle modules (in-process on tiny tensors), bad configs, unpaired patches."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.errors import InstantiationException
from torch.utils.data import DataLoader

from lfmri.data.datasets import PatchDataset, PreparedSegment
from lfmri.losses.composite import CompositeLoss
from lfmri.losses.perceptual import VGGPerceptualLoss
from lfmri.losses.tv import JointSparsifyingTransform, total_variation
from lfmri.losses.wgan import WassersteinGPLoss, gradient_penalty
from lfmri.models.critics.circle import CircleCritic
from lfmri.models.critics.cpce import CPCECritic
from lfmri.models.srcnn import SRCNN
from lfmri.modules.cycle import CycleModule
from lfmri.modules.wgan import WGANModule
from lfmri.training.schedules import ConstantThenLinearLR
from lfmri.training.run import train
from tests.conftest import ROOT


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --- critics ------------------------------------------------------------------------------------
def test_cpce_critic_has_the_spec_size_and_follows_the_patch_size():
    assert count(CPCECritic(64)) == 17_923_521  # gan_cpce.md section 2
    assert count(CPCECritic(128)) == 68_255_169
    critic = CPCECritic(24)
    assert critic(torch.rand(3, 1, 24, 24)).shape == (3,)
    with pytest.raises(ValueError, match="built for 24x24 patches"):
        critic(torch.rand(1, 1, 32, 32))


def test_circle_critic_stages_and_patch_size_checks():
    critic = CircleCritic(32)
    convs = [m for m in critic.trunk if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 512, 512]
    assert [c.stride[0] for c in convs] == [1, 2] * 4 and all(c.bias is not None for c in convs)
    assert sum(isinstance(m, torch.nn.InstanceNorm2d) for m in critic.trunk) == 8
    assert critic.head[1].in_features == 512 * 2 * 2
    assert critic(torch.rand(2, 1, 32, 32)).shape == (2,)
    with pytest.raises(ValueError, match="multiple of 16"):
        CircleCritic(40)


# --- losses -------------------------------------------------------------------------------------
class LinearCritic(torch.nn.Module):
    """D(x) = <w, x>: its input gradient is w everywhere, so ||grad|| = ||w||."""

    def __init__(self, norm: float) -> None:
        super().__init__()
        w = torch.rand(1, 1, 8, 8)
        self.w = torch.nn.Parameter(w / w.norm() * norm)

    def forward(self, x):
        return (x * self.w).flatten(1).sum(1)


@pytest.mark.parametrize("norm", [0.25, 1.0, 3.0])
def test_gradient_penalty_equals_its_analytic_value(norm):
    critic = LinearCritic(norm)
    real, fake = torch.rand(5, 1, 8, 8), torch.rand(5, 1, 8, 8)
    assert float(gradient_penalty(critic, real, fake)) == pytest.approx((norm - 1) ** 2, rel=1e-5, abs=1e-6)
    total, parts = WassersteinGPLoss(gp_weight=10).critic_loss(critic, real, fake)
    wasserstein = critic(real).mean() - critic(fake).mean()
    assert float(total) == pytest.approx(float(-wasserstein + 10 * (norm - 1) ** 2), rel=1e-5)
    assert float(parts["wasserstein"]) == pytest.approx(float(wasserstein), rel=1e-5)
    assert float(WassersteinGPLoss().generator_loss(critic, fake)) == pytest.approx(float(-critic(fake).mean()))


def test_total_variation_and_joint_sparsifying_transform_values():
    step = torch.zeros(1, 1, 4, 4)
    step[..., 2:] = 1.0  # one vertical edge of height 1: |dx| is 1 in 4 of the 12 horizontal pairs
    assert float(total_variation(step)) == pytest.approx(4 / 12)
    target = torch.zeros_like(step)
    jst = JointSparsifyingTransform(tau=0.1)
    # pred = step, target = 0: TV(pred) = TV(target - pred) = 1/3
    assert float(jst(step, target)) == pytest.approx(0.1 / 3 + 0.9 / 3)
    assert float(jst(target, step)) == pytest.approx(0.9 / 3)  # flat prediction, residual has the edge


def test_perceptual_loss_runs_offline_only_when_allowed(tmp_path, caplog):
    # conftest sets HF_HUB_OFFLINE: timm can only look in its cache, never the network
    with pytest.raises(RuntimeError, match=r"loss.terms.perceptual.weights=PATH"):
        VGGPerceptualLoss()
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        VGGPerceptualLoss(weights=str(tmp_path / "nope.pth"))
    bad = tmp_path / "bad.pth"
    torch.save({"x": torch.zeros(1)}, bad)
    with pytest.raises(ValueError, match="not VGG-19 weights"):
        VGGPerceptualLoss(weights=str(bad))
    loss = VGGPerceptualLoss(layer=16, allow_random_weights=True)
    assert "RANDOM VGG-19 weights" in caplog.text
    assert sum(isinstance(m, torch.nn.Conv2d) for m in loss.features) == 16
    assert isinstance(loss.features[-1], torch.nn.ReLU) and not list(loss.state_dict())  # not checkpointed
    x = torch.rand(2, 1, 32, 32, requires_grad=True)
    assert float(loss(x.detach(), x.detach())) == 0
    value = loss(x, torch.rand(2, 1, 32, 32))
    value.backward()
    assert torch.isfinite(value) and value > 0 and x.grad.abs().sum() > 0
    assert all(not p.requires_grad for p in loss.features.parameters())


def test_constant_then_linear_schedule_is_the_papers():
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    scheduler = ConstantThenLinearLR(optimizer, constant_epochs=50, decay_epochs=50, end_factor=0.02)
    lrs = []
    for _ in range(102):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == lrs[50] == pytest.approx(1e-4)
    assert lrs[75] == pytest.approx(1e-4 - 0.5 * (1e-4 - 2e-6))
    assert lrs[100] == lrs[101] == pytest.approx(2e-6)


# --- modules in-process on tiny data ------------------------------------------------------------
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
    trainer = fit(module, tiny_batches(12), steps=12, tmp_path=tmp_path)
    generator_opt, critic_opt = (o.optimizer for o in module.optimizers())
    assert trainer.global_step == 12  # one optimiser update per batch, critic and generator alike
    assert (adam_steps(critic_opt), adam_steps(generator_opt)) == (9, 3)


def pixel_mse(module, batch) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.mse_loss(module.net(batch["lr_up"]), batch["hr"]))


def test_short_wgan_run_has_finite_losses_and_lowers_the_pixel_error(tmp_path):
    module, batches = wgan(n_critic=1, lr=3e-3), tiny_batches(40)
    held_out = tiny_batches(1, seed=99)[0]
    before = pixel_mse(module, held_out)
    trainer = fit(module, batches, steps=40, tmp_path=tmp_path)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("train/critic_loss", "train/critic_wasserstein", "train/critic_gp", "train/generator_loss",
                "train/generator_adversarial", "train/generator_loss_mse", "train/generator_pixel_mse"):
        assert math.isfinite(logged[key]), key
    assert pixel_mse(module, held_out) < 0.25 * before


def test_short_cycle_run_has_finite_losses_and_lowers_the_pixel_error(tmp_path):
    module, batches = cycle(), tiny_batches(40, size=32)
    held_out = tiny_batches(1, size=32, seed=99)[0]
    before = pixel_mse(module, held_out)
    trainer = fit(module, batches, steps=40, tmp_path=tmp_path)
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    for key in ("critic_hr_gp", "critic_lr_wasserstein", "generator_adversarial", "generator_cycle",
                "generator_identity", "generator_jst", "generator_supervised", "generator_loss"):
        assert math.isfinite(logged[f"train/{key}"]), key
    assert pixel_mse(module, held_out) < 0.25 * before
    generator_opt, critic_opt = (o.optimizer for o in module.optimizers())
    assert len(generator_opt.param_groups[0]["params"]) == 12  # G and F
    assert adam_steps(critic_opt) == adam_steps(generator_opt) == 20


def test_unpaired_patches_come_from_another_subject():
    from lfmri.degrade.degradations import KSpaceZeroFillDegradation

    segments = [
        PreparedSegment(name, torch.arange(3).numpy(), torch.full((3, 32, 32), value))
        for name, value in (("a", 0.2), ("b", 0.8))
    ]
    degradation = KSpaceZeroFillDegradation(scale=2, hr_size=32)
    paired = PatchDataset(segments, degradation, 16, "upsampled", seed=0, foreground_prob=0.0)
    unpaired = PatchDataset(segments, degradation, 16, "upsampled", seed=0, foreground_prob=0.0, unpaired=True)
    for i in range(8):
        p, u = paired[(0, i)], unpaired[(0, i)]
        assert torch.equal(p["lr_up"], u["lr_up"]) and u["hr"].shape == p["hr"].shape
        lr_subject, hr_subject = round(float(u["lr_up"].mean()), 1), round(float(u["hr"].mean()), 1)
        assert {lr_subject, hr_subject} == {0.2, 0.8}


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


# --- bad configs fail before training ------------------------------------------------------------
def composed(overrides, tmp_path):
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        return compose("train", overrides=[f"output_dir={tmp_path}/run", *overrides])


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
