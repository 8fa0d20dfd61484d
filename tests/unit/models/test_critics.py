"""The adversarial critics: spec sizes, stages, patch-size checks."""

from __future__ import annotations

import pytest
import torch

from lfmri.models.critics.circle import CircleCritic
from lfmri.models.critics.cpce import CPCECritic


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


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
