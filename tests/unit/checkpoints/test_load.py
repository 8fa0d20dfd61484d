"""``lfmri.checkpoints.load``: networks rebuilt from the stored config; foreign, outdated and malicious files refused."""

from __future__ import annotations

import os

import pytest
import torch

from lfmri.checkpoints.load import METADATA_KEY, SCHEMA_VERSION, CheckpointError, build_network, load_checkpoint
from lfmri.models.srdensenet import SRDenseNet


def fake_checkpoint(path, schema=SCHEMA_VERSION, scale=2):
    net = SRDenseNet(scale=scale)
    torch.save(
        {
            "state_dict": {f"net.{k}": v for k, v in net.state_dict().items()},
            METADATA_KEY: {
                "schema": schema,
                "config": {"model": {"_target_": "lfmri.models.srdensenet.SRDenseNet", "scale": scale}},
                "split": None,
            },
        },
        path,
    )
    return net


def test_network_is_rebuilt_from_the_stored_config(tmp_path):
    net = fake_checkpoint(tmp_path / "a.ckpt", scale=4)
    rebuilt = build_network(load_checkpoint(tmp_path / "a.ckpt"))
    assert rebuilt.scale == 4
    x = torch.rand(1, 1, 5, 6)
    assert torch.equal(rebuilt(x), net.eval()(x))


def test_foreign_and_outdated_checkpoints_get_clear_messages(tmp_path):
    torch.save({"state_dict": {}}, tmp_path / "foreign.ckpt")
    with pytest.raises(CheckpointError, match="foreign.ckpt: not an lfmri checkpoint"):
        load_checkpoint(tmp_path / "foreign.ckpt")
    fake_checkpoint(tmp_path / "old.ckpt", schema=0)
    with pytest.raises(CheckpointError, match="schema 0"):
        load_checkpoint(tmp_path / "old.ckpt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.ckpt")
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.ckpt: not a loadable checkpoint"):
        load_checkpoint(tmp_path / "junk.ckpt")


class Payload:
    """Unpickling this would create a file: loading must refuse instead of executing it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def test_loading_never_executes_code_from_the_checkpoint(tmp_path):
    marker = str(tmp_path / "pwned")
    torch.save({"state_dict": {}, METADATA_KEY: {"schema": SCHEMA_VERSION, "config": {}}, "x": Payload(marker)}, tmp_path / "evil.ckpt")
    with pytest.raises(CheckpointError, match="evil.ckpt"):
        load_checkpoint(tmp_path / "evil.ckpt")
    assert not os.path.exists(marker)


def test_non_finite_weights_are_refused_at_load_with_the_file_and_tensor_named(tmp_path):
    """What a diverged run leaves in last.ckpt: predict wrote all-NaN volumes, init_from trained on NaN."""
    import pytest
    import torch

    from lfmri.checkpoints.load import CheckpointError, load_checkpoint
    from tests.helpers.checkpoints import make_checkpoint
    from tests.helpers.predict import TINY_MODEL

    path = make_checkpoint(tmp_path / "last.ckpt", *TINY_MODEL)
    checkpoint = torch.load(path, weights_only=True)
    key = sorted(checkpoint["state_dict"])[-1]
    checkpoint["state_dict"][key].view(-1)[0] = float("inf")
    torch.save(checkpoint, path)
    with pytest.raises(CheckpointError, match=f"{path}: weights {key} hold 1 NaN/Inf"):
        load_checkpoint(path)


def test_build_hands_keyword_arguments_to_the_constructor_unresolved(monkeypatch):
    """``instantiate(node, **kwargs)`` merges kwargs into the config and resolves ``${...}`` in them."""
    from omegaconf import OmegaConf

    from lfmri.checkpoints.load import build

    monkeypatch.setenv("LFMRI_TEST_SECRET", "s3cr3t-value")
    node = OmegaConf.create({"_target_": "builtins.dict", "a": 1})
    built = build(node, name="${oc.env:LFMRI_TEST_SECRET}", nested={"x": ["${oc.env:LFMRI_TEST_SECRET}"]})
    assert built == {"a": 1, "name": "${oc.env:LFMRI_TEST_SECRET}", "nested": {"x": ["${oc.env:LFMRI_TEST_SECRET}"]}}
    assert build(node) == {"a": 1}
