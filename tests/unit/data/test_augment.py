"""``lfmri.data.augment``: augmented pairs stay aligned on their grid; intensity maps stay in range."""

from __future__ import annotations

import pytest
import torch

from lfmri.data.augment import SliceAugmentation
from lfmri.data.datasets import PatchDataset, PreparedSegment
from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation
from lfmri.geometry.grid import upsample_lr
from tests.helpers.volumes import head_slices


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
