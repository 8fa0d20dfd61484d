"""``lfmri.checkpoints.stored_run``: the one writer of checkpoint dictionaries and what is rebuilt from them."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

from lfmri.checkpoints.load import METADATA_KEY, SCHEMA_VERSION, CheckpointError
from lfmri.checkpoints.stored_run import StoredRun
from lfmri.degrade.degradations import BicubicDegradation
from lfmri.pretrained import checkpoint_path
from tests.helpers.checkpoints import SHIPPED
from tests.helpers.config import compose
from tests.helpers.predict import TINY_MODEL


def tiny_run(*overrides: str) -> tuple[StoredRun, torch.nn.Module]:
    cfg = compose(*TINY_MODEL, "degradation=bicubic", "data=folder", "data.pattern=x", *overrides)
    torch.manual_seed(0)
    net = instantiate(cfg.model).eval()
    split = {"train": [{"subject": "a", "start": 0, "stop": 4}], "val": [], "test": [{"subject": "b", "start": 0, "stop": 4}]}
    return StoredRun.of_network(net, OmegaConf.to_container(cfg, resolve=True), split, name="tiny"), net


def test_a_written_run_reads_back_with_its_config_split_card_degradation_and_network(tmp_path):
    run, net = tiny_run()
    path = run.save(tmp_path / "run.ckpt")
    raw = torch.load(path, map_location="cpu", weights_only=True)  # plain data only
    assert set(raw) == {"state_dict", METADATA_KEY}
    assert set(raw[METADATA_KEY]) == {"schema", "config", "split", "card"} and raw[METADATA_KEY]["schema"] == SCHEMA_VERSION
    assert all(key.startswith("net.") for key in raw["state_dict"])

    loaded = StoredRun.load(path)
    assert loaded.source == str(path) and loaded.split == run.split
    assert loaded.card["name"] == "tiny" and loaded.card["parameters"] == sum(p.numel() for p in net.parameters())
    assert int(loaded.config.data.slice_axis) == int(run.config.data.slice_axis)
    degradation = loaded.degradation()
    assert isinstance(degradation, BicubicDegradation) and degradation.scale == 2
    x = torch.rand(1, 1, 12, 10)
    with torch.no_grad():
        assert torch.equal(loaded.network()(x), net(x))
    datamodule = loaded.datamodule(degradation=degradation, input_mode="lr", split=loaded.split, split_file=None, num_workers=0)
    assert type(datamodule).__name__ == "FolderDataModule" and datamodule.degradation is degradation
    assert loaded.data_class() is type(datamodule)
    assert loaded.provenance(2).startswith("lfmri ") and "tiny x2 run.ckpt" in loaded.provenance(2)


def test_every_part_is_checked_against_the_allow_list_before_it_is_built(tmp_path):
    run, _ = tiny_run()
    run.checkpoint[METADATA_KEY]["config"]["degradation"] = {"_target_": "builtins.open", "_args_": ["x", "w"]}
    with pytest.raises(CheckpointError, match="refused to build lfmri.config.degradation._target_"):
        StoredRun(run.checkpoint, "crafted.ckpt").degradation()
    with pytest.raises(CheckpointError, match="crafted.ckpt"):
        StoredRun.load(run.save(tmp_path / "crafted.ckpt"))


def test_the_shipped_form_keeps_the_network_in_float16_and_the_given_card(tmp_path):
    run, net = tiny_run()
    run.checkpoint["state_dict"]["ema_shadow"] = torch.zeros(3)  # what is not the network is left out
    shipped = StoredRun.load(run.shipped({"name": "tiny-shipped", "scale": 2}).save(tmp_path / "tiny.ckpt"))
    assert set(shipped.checkpoint["state_dict"]) == {f"net.{k}" for k in net.state_dict()}
    assert all(v.dtype == torch.float16 for v in shipped.checkpoint["state_dict"].values() if v.is_floating_point())
    assert shipped.card == {"name": "tiny-shipped", "scale": 2} and shipped.split == run.split
    x = torch.rand(1, 1, 12, 10)
    with torch.no_grad():
        assert torch.allclose(shipped.network()(x), net(x), atol=1e-2)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_networks_rebuild_with_their_degradation(name):
    run = StoredRun.load(checkpoint_path(name))
    net, degradation = run.network(), run.degradation()
    assert degradation.scale == run.card["scale"] == net.scale
    assert all(p.dtype == torch.float32 for p in net.parameters())  # float16 storage, float32 network


def test_stored_paths_are_never_write_targets_and_stored_file_names_stay_literal(tmp_path, monkeypatch):
    """A stored data.report_file made evaluate overwrite any file; a file name of the stored split went
    through OmegaConf's resolution (Hydra merges instantiate's keyword arguments into the config)."""
    monkeypatch.setenv("LFMRI_TEST_SECRET", "s3cr3t-value")
    run, _ = tiny_run()
    victim = tmp_path / "victim.txt"
    run.checkpoint[METADATA_KEY]["config"]["data"]["split_file"] = str(victim)
    split = {"train": [], "val": [], "test": [{"subject": "${oc.env:LFMRI_TEST_SECRET}", "start": 0, "stop": 4}]}
    datamodule = run.datamodule(degradation=run.degradation(), input_mode="lr", split=split, num_workers=0)
    assert datamodule.split_file is None
    [segment] = datamodule.requested_split["test"]
    assert segment.subject == "${oc.env:LFMRI_TEST_SECRET}"
    paired = tiny_run()[0]
    data = OmegaConf.to_container(compose(*TINY_MODEL, "degradation=bicubic", "data=paired_lowfield", "data.root=/nowhere").data,
                                  resolve=True)
    paired.checkpoint[METADATA_KEY]["config"]["data"] = {**data, "report_file": str(victim)}
    built = paired.datamodule(degradation=paired.degradation(), input_mode="lr", num_workers=0)
    assert built.report_file is None and built.split_file is None and not victim.exists()
    # a caller's own output path (under its output_dir) is still honoured
    assert run.datamodule(degradation=run.degradation(), split_file=str(tmp_path / "split.json")).split_file == str(tmp_path / "split.json")


def test_a_config_holding_an_interpolation_is_refused_before_it_is_read(tmp_path):
    run, _ = tiny_run()
    run.checkpoint[METADATA_KEY]["config"]["data"]["slice_axis"] = "${oc.env:HOME}"
    crafted = StoredRun(run.checkpoint, "crafted.ckpt")
    with pytest.raises(CheckpointError, match=r"crafted.ckpt: refused lfmri.config.data.slice_axis='\$\{oc.env:HOME\}'"):
        crafted.config
    with pytest.raises(CheckpointError, match="refused lfmri.config.data.slice_axis"):
        crafted.datamodule(degradation=BicubicDegradation(scale=2, hr_size=32))
