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


def test_a_two_dimensional_checkpoint_starts_a_multi_slice_network_as_itself(tmp_path):
    import torch

    from lfmri.training.transfer import load_network_weights
    from tests.helpers.checkpoints import make_checkpoint
    from tests.helpers.predict import TINY_MODEL

    flat = make_checkpoint(tmp_path / "flat.ckpt", *TINY_MODEL, "data=folder", "data.pattern=x")
    stored = torch.load(flat, weights_only=True)
    stored["state_dict"]["net.reconstruction.weight"].normal_(std=0.05)
    torch.save(stored, flat)
    from tests.helpers.predict import TINY_NET

    torch.manual_seed(1)
    two_d = SRDenseNet(scale=2, **TINY_NET).eval()
    load_network_weights(two_d, flat)
    multi = SRDenseNet(scale=2, context_slices=2, **TINY_NET).eval()
    load_network_weights(multi, flat)
    assert multi.low_level.weight.shape[1] == 5 and multi.low_level.weight[:, [0, 1, 3, 4]].abs().max() == 0
    x = torch.rand(2, 5, 12, 10)
    with torch.no_grad():
        torch.testing.assert_close(multi(x), two_d(x[:, 2:3]), atol=1e-5, rtol=1e-5)
