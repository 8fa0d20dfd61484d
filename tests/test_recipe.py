"""The training recipe for real anatomy: residual learning, augmentation, schedules, monitor mode,
several globs and explicit subject splits."""

from __future__ import annotations

import math

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from lfmri.data.augment import SliceAugmentation
from lfmri.data.datasets import PatchDataset, PreparedSegment
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation
from lfmri.data.folder import FolderDataModule
from lfmri.geometry.grid import upsample_lr
from lfmri.scoring.metrics import metric_mode
from lfmri.models.srdensenet import SRDenseNet
from lfmri.training.schedules import WarmupCosineLR
from tests.conftest import ROOT, phantom, write_phantom


def head_slices(n: int = 6, size: int = 64) -> torch.Tensor:
    vol = torch.from_numpy(phantom((size, size, n), seed=3) / 1000.0).permute(2, 0, 1).contiguous()
    return vol.clamp(0, 1)


def test_residual_srdensenet_starts_as_the_aligned_bicubic_and_learns_a_correction():
    x = torch.rand(2, 1, 12, 10)
    for grid in ("kspace", "area"):
        net = SRDenseNet(scale=2, growth=4, layers_per_block=2, blocks=2, bottleneck_channels=8, residual=True, grid=grid)
        assert torch.allclose(net(x), upsample_lr(x, 2, grid), atol=1e-6)
    plain = SRDenseNet(scale=2, growth=4, layers_per_block=2, blocks=2, bottleneck_channels=8)
    assert not torch.allclose(plain(x), upsample_lr(x, 2, "kspace"), atol=1e-2)
    # same parameters as the paper's network: checkpoints of either load into the other
    assert plain.state_dict().keys() == net.state_dict().keys()
    # one step moves the output away from the baseline (the correction path gets gradients)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    loss = (net(x) - torch.rand(2, 1, 24, 20)).abs().mean()
    loss.backward()
    opt.step()
    assert not torch.allclose(net(x), upsample_lr(x, 2, "area"), atol=1e-4)
    with pytest.raises(ValueError, match="model.grid"):
        SRDenseNet(grid="pixel")


def alignment_error(lr: torch.Tensor, hr: torch.Tensor, grid: str) -> float:
    """Mean |aligned bicubic(LR) - HR|: small for a consistent pair, larger for a shifted one."""
    return float((upsample_lr(lr[None], 2, grid)[0] - hr).abs().mean())


def test_augmented_kspace_patches_stay_aligned_where_flipping_the_pair_would_not():
    deg = KSpaceDegradation(noise_std=0.0, hr_size=64)
    segment = PreparedSegment("s", torch.arange(6).numpy(), deg.prepare_hr(head_slices()))
    plain = PatchDataset([segment], deg, 32, "lr", seed=0, foreground_prob=1.0)
    augmented = PatchDataset([segment], deg, 32, "lr", seed=0, foreground_prob=1.0,
                             augment=SliceAugmentation(flips=True, rot90=True))
    keys = [(0, i) for i in range(24)]
    err_plain = sum(alignment_error(plain[k]["lr"], plain[k]["hr"], "kspace") for k in keys)
    err_aug = sum(alignment_error(augmented[k]["lr"], augmented[k]["hr"], "kspace") for k in keys)
    # flipping an already degraded k-space pair moves the LR grid by one HR pixel
    flip = (0, True, False)
    err_pair_flip = sum(
        alignment_error(SliceAugmentation.geometry(plain[k]["lr"], flip), SliceAugmentation.geometry(plain[k]["hr"], flip), "kspace")
        for k in keys
    )
    assert err_aug < 1.2 * err_plain < err_pair_flip
    # seeded by the key: the same patch every time, another one for another epoch
    assert torch.equal(augmented[(0, 3)]["hr"], augmented[(0, 3)]["hr"])
    assert not torch.equal(augmented[(0, 3)]["hr"], augmented[(1, 3)]["hr"])


def test_a_flip_of_an_area_grid_pair_is_the_pair_of_the_flip():
    deg = BicubicDegradation(noise_std=0.0)
    hr = head_slices()[2:3]
    lr, _ = deg.degrade(hr, torch.Generator())
    aug = SliceAugmentation(flips=True, rot90=True, scale=(0.8, 1.0), gamma=(0.8, 1.2))
    for seed in range(8):
        out = aug.pair({"hr": hr, "lr": lr}, torch.Generator().manual_seed(seed))
        # geometry: exact; intensity maps are pointwise, so compare through the same map
        transform = aug.draw_geometry(torch.Generator().manual_seed(seed), True)
        lr_of_flip, _ = deg.degrade(SliceAugmentation.geometry(hr, transform), torch.Generator())
        assert out["hr"].shape == hr.shape and out["lr"].shape == lr.shape
        assert torch.allclose(SliceAugmentation.geometry(lr, transform), lr_of_flip, atol=1e-5)


def test_intensity_augmentation_stays_in_range_and_noise_range_is_training_only():
    aug = SliceAugmentation(flips=False, rot90=False, scale=(0.8, 1.1), gamma=(0.7, 1.4), contrast=(0.8, 1.2),
                            noise_std=(0.0, 0.08))
    hr = head_slices()[3:4]
    outs = [aug.hr(hr, torch.Generator().manual_seed(s)) for s in range(10)]
    assert all(o.min() >= 0 and o.max() <= 1 for o in outs)
    assert len({round(float(o.mean()), 5) for o in outs}) == 10
    deg = KSpaceDegradation(noise_std=(0.01, 0.05))
    train = aug.training_degradation(deg)
    assert train.noise_std == (0.0, 0.08) and deg.noise_std == (0.01, 0.05)
    with pytest.raises(ValueError, match="augment.gamma"):
        SliceAugmentation(gamma=(0.0, 1.0))


def test_warmup_cosine_schedule():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = WarmupCosineLR(opt, warmup_steps=10, total_steps=110, start_factor=0.1, min_factor=0.0)
    lrs = []
    for _ in range(120):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.1) and lrs[10] == pytest.approx(1.0)
    assert lrs[60] == pytest.approx(0.5) and lrs[110] == pytest.approx(0.0, abs=1e-12) and lrs[119] == lrs[110]
    assert all(a <= b for a, b in zip(lrs[:10], lrs[1:11])) and all(a >= b for a, b in zip(lrs[10:110], lrs[11:111]))
    with pytest.raises(ValueError):
        WarmupCosineLR(opt, warmup_steps=10, total_steps=5)


@pytest.mark.parametrize("metric, mode", [("val/psnr_brain", "max"), ("val/ssim", "max"), ("val/nrmse", "min"),
                                          ("val/hfen_brain", "min"), ("val/loss", "min")])
def test_checkpoint_selection_mode_follows_the_metric(metric, mode):
    assert metric_mode(metric) == mode
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"monitor={metric}", "output_dir=/tmp/x"])
    checkpoint = instantiate(cfg.callbacks.model_checkpoint)
    assert checkpoint.monitor == metric and checkpoint.mode == mode


def test_unknown_monitor_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="monitor='val/acc'.*psnr_brain"):
        metric_mode("val/acc")


def test_several_globs_and_an_explicit_subject_split(tmp_path):
    for site, seeds in (("siteA", (0, 1, 2)), ("siteB", (3, 4))):
        for s in seeds:
            write_phantom(tmp_path / site / f"{site}-{s}.nii.gz", seed=s)
    dm = FolderDataModule(
        pattern=[str(tmp_path / "siteA" / "*.nii.gz"), str(tmp_path / "siteB" / "*.nii.gz")],
        subjects={"val": ["siteA-2"], "test": ["siteB-3", "siteB-4"]},
        degradation=KSpaceDegradation(hr_size=32), patch_size=16, patches_per_epoch=8, batch_size=4,
    )
    dm.setup("fit")
    subjects = {stage: [s.subject for s in segs] for stage, segs in dm.split.items()}
    assert subjects == {"train": ["siteA-0", "siteA-1"], "val": ["siteA-2"], "test": ["siteB-3", "siteB-4"]}
    bad = FolderDataModule(pattern=str(tmp_path / "siteA" / "*.nii.gz"), subjects={"test": ["nobody"]},
                           degradation=KSpaceDegradation(hr_size=32))
    with pytest.raises(ValueError, match="nobody"):
        bad.setup("fit")
    with pytest.raises(FileNotFoundError, match="siteC"):
        FolderDataModule(pattern=[str(tmp_path / "siteA" / "*.nii.gz"), str(tmp_path / "siteC" / "*")],
                         degradation=KSpaceDegradation(hr_size=32)).setup("fit")


def test_recipe_experiment_composes_and_builds():
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=["experiment=srdensenet_kspace_x2", "data.pattern=/x/*.nii.gz", "output_dir=/tmp/x"])
    net = instantiate(cfg.model)
    assert net.residual and net.grid == "kspace"
    deg = instantiate(cfg.degradation)
    dm = instantiate(cfg.data, degradation=deg, input_mode="lr")
    assert isinstance(dm.augment, SliceAugmentation) and dm.augment.noise_std is not None
    sched = instantiate(cfg.module.scheduler)(optimizer=torch.optim.Adam(net.parameters()))
    assert sched.total_steps == cfg.trainer.max_steps and cfg.module.scheduler_interval == "step"
    assert instantiate(cfg.callbacks.ema).__class__.__name__ == "EMAWeightAveraging"
    assert math.isclose(cfg.module.optimizer.lr, 5e-4)


def test_metrics_are_float32_inside_a_bf16_autocast_region():
    from lfmri.scoring.metrics import brain_mask, slice_metrics

    hr = head_slices(2, 48)[:, None]
    pred = (hr + 0.03 * torch.randn(hr.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    mask = brain_mask(hr)
    reference = slice_metrics(pred, hr, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        mixed = slice_metrics(pred, hr, mask)
    assert all(torch.allclose(reference[k], mixed[k], atol=1e-6, equal_nan=True) for k in reference)
