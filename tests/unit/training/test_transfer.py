"""``lfmri.training.transfer``: freezing by prefix, unknown names refused."""

from __future__ import annotations

import pytest

from lfmri.models.srdensenet import SRDenseNet
from lfmri.training.transfer import freeze_layers


def test_freeze_rejects_unknown_names_and_freezes_by_prefix():
    net = SRDenseNet(scale=2)
    frozen = freeze_layers(net, ["blocks.1"])
    assert frozen and all(not p.requires_grad for n, p in net.named_parameters() if n.startswith("blocks.1."))
    assert all(p.requires_grad for n, p in net.named_parameters() if n.startswith("blocks.10") or n.startswith("blocks.2."))
    with pytest.raises(ValueError, match="matches no parameter.*modules are"):
        freeze_layers(net, ["block.1"])
