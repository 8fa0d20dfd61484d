"""Each loss term's share of the gradient, and the one warning for a term that does not act."""

from __future__ import annotations

import pytest
import torch

from lfmri.losses.shares import ShareMonitor, gradient_norms, shares, weight_for_share


def test_gradient_norms_are_each_terms_own_and_leave_the_graph_usable():
    w = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    terms = {"a": 3.0 * w.sum(), "b": (w**2).sum(), "detached": w.sum().detach()}
    norms = gradient_norms(terms, [w])
    assert norms["a"] == pytest.approx(3.0 * 2**0.5)  # d(3 sum w)/dw = (3, 3)
    assert norms["b"] == pytest.approx((2.0**2 + 4.0**2) ** 0.5)  # 2w
    assert "detached" not in norms
    (terms["a"] + terms["b"]).backward()  # the training step's backward still works
    assert w.grad is not None


def test_shares_add_up_and_the_suggested_weight_gives_the_target_share():
    norms = {"l1": 9.0, "hfen": 0.01}
    assert sum(shares(norms).values()) == pytest.approx(1.0)
    weight = weight_for_share(norms, 0.1, "hfen", share=0.1)
    scaled = {"l1": 9.0, "hfen": 0.01 * weight / 0.1}
    assert shares(scaled)["hfen"] == pytest.approx(0.1)
    assert weight_for_share({"l1": 1.0}, 1.0, "l1") is None


def test_monitor_names_an_inert_term_once_after_its_first_steps():
    monitor = ShareMonitor(warn_after_steps=200)
    inert = {"l1": 1.0, "hfen": 0.0004}
    assert monitor.update(0, inert, {"l1": 1.0, "hfen": 0.1}) == []
    assert monitor.update(150, inert, {"l1": 1.0, "hfen": 0.1}) == []  # too early to judge
    lines = monitor.update(200, inert, {"l1": 1.0, "hfen": 0.1})
    assert len(lines) == 1 and "'hfen' at weight 0.1" in lines[0] and "would give it 10%" in lines[0]
    assert monitor.update(250, inert, {"l1": 1.0, "hfen": 0.1}) == []  # once
    # a term that acted once is never named; the pixel term is not named either
    acting = ShareMonitor(warn_after_steps=0)
    acting.update(0, {"l1": 1.0, "tv": 0.05}, {"l1": 1.0, "tv": 1.0})
    assert acting.update(10, {"l1": 1.0, "tv": 0.001}, {"l1": 1.0, "tv": 1.0}) == []
