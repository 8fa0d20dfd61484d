"""The networks shipped in ``lfmri/pretrained``: safe loading, cards, storage parity, names (their
whole-volume predictions are in tests/e2e/test_pretrained.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from lfmri.checkpoints.load import METADATA_KEY, build_network, load_checkpoint
from lfmri.cli.predict import parse_args
from lfmri.cli import pretrained as pretrained_cli
from lfmri.pretrained import available, checkpoint_path, resolve
from tests.helpers.checkpoints import SHIPPED, make_checkpoint

CARD_FACTS = ("command", "commit", "steps", "wall_time", "training_data", "unseen")


def test_every_documented_network_is_shipped():
    assert set(SHIPPED) <= set(available())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_checkpoint_loads_with_weights_only_and_its_card_parses(name, capsys):
    path = checkpoint_path(name)
    assert path.stat().st_size <= 10 * 1024 * 1024
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert all(v.dtype == torch.float16 for v in raw["state_dict"].values() if v.is_floating_point())
    card = load_checkpoint(path)[METADATA_KEY]["card"]
    facts = card["pretrained"]
    assert all(key in facts for key in CARD_FACTS), sorted(facts)
    assert facts["unseen"]["pooled"]["all unseen"]["slices"] > 0
    json.dumps(card)  # plain data only
    net = build_network(load_checkpoint(path))
    assert all(p.dtype == torch.float32 for p in net.parameters())
    text = path.with_suffix(".md").read_text()
    assert "unseen" in text and facts["command"] in text
    assert pretrained_cli.main(["list"]) == 0
    assert name in capsys.readouterr().out


def test_half_precision_storage_keeps_the_outputs(tmp_path):
    ckpt = make_checkpoint(tmp_path / "trained.ckpt", "model.residual=true", "data=folder", "data.pattern=x")
    # move the weights away from their residual start so the network does something
    checkpoint = torch.load(ckpt, weights_only=True)
    torch.manual_seed(1)
    checkpoint["state_dict"] = {k: v + 0.01 * torch.randn_like(v) for k, v in checkpoint["state_dict"].items()}
    torch.save(checkpoint, ckpt)
    assert pretrained_cli.main(["pack", f"checkpoint={ckpt}", "name=tiny-test", f"dest={tmp_path}"]) == 0
    full, half = (build_network(load_checkpoint(p)) for p in (ckpt, tmp_path / "tiny-test.ckpt"))
    x = torch.rand(2, 1, 32, 32)
    with torch.no_grad():
        a, b = full(x), half(x)
    mse = float(((a - b) ** 2).mean())
    assert mse > 0  # the weights really were rounded
    # the rounding error is far below anything a metric resolves: PSNR of half vs full > 60 dB
    assert -10 * np.log10(mse / float(a.abs().max()) ** 2) > 60


def test_pretrained_names_are_checked_and_exclusive_with_ckpt_path():
    with pytest.raises(ValueError, match="not a shipped network; available: .*srdensenet-kspace-x2"):
        checkpoint_path("../../etc/passwd")
    with pytest.raises(ValueError, match="exactly one of"):
        resolve("a.ckpt", "srdensenet-kspace-x2")
    assert parse_args(["pretrained=srdensenet-kspace-x2", "inputs=a.nii.gz", "output_dir=o"]).pretrained == "srdensenet-kspace-x2"


def test_pack_never_clobbers_a_shipped_pair_by_accident(tmp_path, monkeypatch, capsys):
    ckpt = make_checkpoint(tmp_path / "trained.ckpt", "data=folder", "data.pattern=x")
    args = ["pack", f"checkpoint={ckpt}", "name=tiny-test", f"dest={tmp_path}"]
    assert pretrained_cli.main(args) == 0
    shipped, card = tmp_path / "tiny-test.ckpt", tmp_path / "tiny-test.md"
    before = shipped.read_bytes(), card.read_text()
    with pytest.raises(SystemExit) as refused:
        pretrained_cli.main(args)
    assert refused.value.code == 2 and "overwrite=true" in capsys.readouterr().err
    assert (shipped.read_bytes(), card.read_text()) == before
    # over the size limit: refused, and the pair already there is untouched (nothing half-written)
    monkeypatch.setattr(pretrained_cli, "MAX_BYTES", 10)
    with pytest.raises(SystemExit):
        pretrained_cli.main([*args, "overwrite=true"])
    assert (shipped.read_bytes(), card.read_text()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny-test.ckpt", "tiny-test.md", "trained.ckpt"]
    monkeypatch.undo()
    assert pretrained_cli.main([*args, "overwrite=true", "facts=" + str(_facts(tmp_path))]) == 0
    assert "a replaced card" in card.read_text()


def _facts(tmp_path):
    path = tmp_path / "facts.json"
    path.write_text(json.dumps({"summary": "a replaced card", "command": "python train.py"}))
    return path


def test_pack_stores_the_input_contract_with_the_weights_and_a_repack_keeps_it(tmp_path, capsys):
    """The contract goes from the facts into the checkpoint's card and the Markdown card; repacking a
    shipped checkpoint from its own weights keeps its contract and leaves the weights bit for bit."""
    contract = {"summary": "T1 brain; 2 mm", "contrast": "T1", "orientation": "axial", "slice_axis": 2,
                "scan_voxel_mm": [[1.5, 2.5], [1.5, 2.5], [1.5, 2.5]], "field_of_view": "any"}
    facts = tmp_path / "facts.json"
    facts.write_text(json.dumps({"summary": "with a contract", "input_contract": contract}))
    ckpt = make_checkpoint(tmp_path / "trained.ckpt", "data=folder", "data.pattern=x")
    first, second = tmp_path / "first", tmp_path / "second"
    assert pretrained_cli.main(["pack", f"checkpoint={ckpt}", "name=tiny-test", f"dest={first}", f"facts={facts}"]) == 0
    packed = first / "tiny-test.ckpt"
    assert load_checkpoint(packed)[METADATA_KEY]["card"]["input_contract"] == contract
    text = packed.with_suffix(".md").read_text()
    assert "## Expected input" in text and "1.5-2.5 x 1.5-2.5 x 1.5-2.5 mm" in text
    facts.write_text(json.dumps({"summary": "no contract given"}))
    assert pretrained_cli.main(["pack", f"checkpoint={packed}", "name=tiny-test", f"dest={second}", f"facts={facts}"]) == 0
    again = torch.load(second / "tiny-test.ckpt", weights_only=True)
    assert again[METADATA_KEY]["card"]["input_contract"] == contract
    before = torch.load(packed, weights_only=True)["state_dict"]
    assert all(torch.equal(before[k], again["state_dict"][k]) for k in before)


def test_the_list_names_each_networks_scan_and_the_baseline_it_beats(capsys):
    assert pretrained_cli.main(["list"]) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines() if line.strip()}
    assert "64 mT T1 brain; scan 1.2-2.2 x 1.2-2.2 x 4-6 mm" in lines["lowfield-sim"]
    assert "over the cubic-resampled input" in lines["lowfield-sim"] and "zero-fill" not in lines["lowfield-sim"]
    assert "T1 brain; scan 2.3-4.4 mm in-plane" in lines["srdensenet-kspace-x2"] and "over zero-fill" in lines["srdensenet-kspace-x2"]


@pytest.mark.parametrize("name", SHIPPED)
def test_cards_name_no_folder_users_do_not_have(name):
    text = checkpoint_path(name).with_suffix(".md").read_text()
    assert "shared/data" not in text and "17 real volumes from 3 sites" in text
