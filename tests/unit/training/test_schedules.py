"""Learning-rate schedules: warmup + cosine, constant then linear (the papers')."""

from __future__ import annotations

import pytest
import torch

from lfmri.training.schedules import ConstantThenLinearLR, WarmupCosineLR


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
    with pytest.raises(ValueError, match="total_steps"):
        WarmupCosineLR(opt, warmup_steps=10, total_steps=0)


def test_a_warm_up_longer_than_a_short_run_is_shortened_and_said(caplog):
    """experiment=srdensenet_kspace_x2 trainer.max_steps=6: a 200-step warm-up becomes 1 step."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    with caplog.at_level("INFO", logger="lfmri.training.schedules"):
        sched = WarmupCosineLR(opt, warmup_steps=200, total_steps=6, start_factor=0.01, min_factor=0.0)
    assert sched.warmup_steps == 1 and "warm-up of 200 steps shortened to 1" in caplog.text
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[1] == pytest.approx(1.0) and lrs[1] > lrs[3] > lrs[5]  # it learns, then decays within the run
    caplog.clear()
    assert WarmupCosineLR(opt, warmup_steps=200, total_steps=6000).warmup_steps == 200 and not caplog.text
