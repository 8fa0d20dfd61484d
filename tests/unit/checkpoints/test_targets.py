"""A checkpoint is data: crafted ``_target_`` values and interpolations in its stored config are refused by
every in-process reader of one (predict, evaluate, export, init_from, pretrained pack)."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from lfmri.checkpoints.load import (
    METADATA_KEY,
    CheckpointError,
    build_network,
    check_inert,
    check_targets,
    load_checkpoint,
    target_problem,
    trusted_prefixes,
)
from lfmri.cli.predict import main as predict_main
from lfmri.evaluation.evaluator import evaluate
from lfmri.export.exporters import ExportConfig, export_checkpoint
from lfmri.models.espcn import ESPCN
from lfmri.training.transfer import init_network
from tests.helpers.checkpoints import GROUPS, KINDS, crafted, interpolating, make_checkpoint, untouched
from tests.helpers.cli import refusal
from tests.helpers.config import compose, evaluate_config
from tests.helpers.run import ROOT
from tests.helpers.volumes import write_phantom


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_a_crafted_checkpoint(tmp_path, capsys, kind):
    ckpt, witness = crafted(tmp_path, kind)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    # a refusal is one line and exit status 2 (lfmri.cli.options.fail raises SystemExit(2))
    err = refusal(capsys, predict_main, [f"ckpt_path={ckpt}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}", "progress=false"])
    assert untouched(kind, witness)
    assert f"{ckpt}: refused to build" in err and ("numpy.load" in err or "builtins.open" in err)


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_refuses_a_crafted_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    cfg = evaluate_config(output_dir=str(tmp_path / "out"), ckpt_path=str(ckpt), inputs=[str(scan)], device="cpu")
    with pytest.raises(CheckpointError, match="refused to build lfmri.config.(model|degradation)"):
        evaluate(cfg)
    assert untouched(kind, witness)


@pytest.mark.parametrize("kind", KINDS)
def test_export_refuses_a_crafted_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    with pytest.raises(CheckpointError, match=f"{kind}.ckpt: refused to build"):
        export_checkpoint(ExportConfig(ckpt_path=str(ckpt), output_dir=str(tmp_path / "out")))
    assert untouched(kind, witness) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_init_from_refuses_a_crafted_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    with pytest.raises(CheckpointError, match="refused to build"):
        init_network(ESPCN(scale=2), str(ckpt), None)
    assert untouched(kind, witness)


class OwnNet(ESPCN):
    """A user's own network class, outside lfmri."""


def test_own_model_classes_need_an_explicit_opt_in(tmp_path, monkeypatch):
    ckpt = make_checkpoint(tmp_path / "own.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint[METADATA_KEY]["config"]["model"]["_target_"] = f"{__name__}.OwnNet"
    torch.save(checkpoint, ckpt)
    with pytest.raises(CheckpointError, match=f"own.ckpt: refused to build lfmri.config.model._target_='{__name__}.OwnNet'"):
        load_checkpoint(ckpt)
    assert type(build_network(load_checkpoint(ckpt, trust_targets=["tests"]), ["tests"])) is OwnNet
    monkeypatch.setenv("LFMRI_TRUST_TARGETS", __name__)
    assert type(build_network(load_checkpoint(ckpt))) is OwnNet
    # trusting a prefix trusts only classes defined under it: tests.conftest.os is still refused
    assert "defined outside" in target_problem("tests.conftest.Path", trusted_prefixes(["tests"]))
    with pytest.raises(ValueError, match="trust_targets"):
        trusted_prefixes(["mypkg..models"])


@pytest.mark.parametrize("target", [
    "numpy.load", "builtins.open", "io.BytesIO", "os.system", "subprocess.Popen",
    "lfmri..models", "lfmri_evil.Net", "lfmri.x:__import__", "lfmri", " lfmri.models.espcn.ESPCN",
    "lfmri.checkpoints.card.subprocess.run", "lfmri.checkpoints.targets.os.system", "lfmri.checkpoints.load.Path",
    "lfmri.checkpoints.atomic_io.atomic_torch_save", "lfmri.checkpoints.load.torch", "lfmri.nonexistent.Net",
    "torch.nn.Linear", "torch.optim.adam.torch.hub.load", "torch.optim.optimizer.torch.load", "torch.hub.load",
    "lightning.pytorch.Trainer.__init__", 42, None,
])
def test_targets_outside_lfmri_or_disguised_are_refused(target):
    assert target_problem(target, trusted_prefixes()) is not None


def test_refusal_names_the_file_and_the_key_at_any_depth():
    config = {"model": {"_target_": "lfmri.models.espcn.ESPCN", "layers": [{"deep": {"_partial_": True, "_target_": "os.system"}}]}}
    with pytest.raises(CheckpointError, match=r"^x\.ckpt: refused to build model\.layers\[0\]\.deep\._target_='os\.system'"):
        check_targets(config, "x.ckpt")


def test_every_shipped_config_passes_the_check():
    """What train.py writes must load: every config option and experiment composes to allowed targets."""
    groups = {g: sorted(p.stem for p in (ROOT / "conf" / g).glob("*.yaml"))
              for g in ("data", "degradation", "model", "loss", "module", "logger", "callbacks", "experiment")}
    for group, options in groups.items():
        for option in options:
            cfg = compose(f"{group}={option}", output_dir="/tmp/x")
            check_targets(OmegaConf.to_container(cfg, resolve=False), f"{group}={option}")


# ---- interpolations: ${oc.create:{_target_: numpy.savetxt ...}} in a stored value wrote its file during
# predict, evaluate and export (exit 0); a checkpoint's config is resolved, so any ${ is refused in one line


@pytest.mark.parametrize("group", GROUPS)
def test_predict_refuses_an_interpolation_in_the_stored_config(tmp_path, capsys, group):
    ckpt, witness = interpolating(tmp_path, group)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    err = refusal(capsys, predict_main, [f"ckpt_path={ckpt}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}", "progress=false"])
    assert f"{ckpt}: refused lfmri.config.{group}.payload=" in err and "interpolation" in err
    assert not witness.exists() and not list((tmp_path / "out").glob("*.nii.gz"))


@pytest.mark.parametrize("group", GROUPS)
def test_evaluate_refuses_an_interpolation_in_the_stored_config(tmp_path, group):
    ckpt, witness = interpolating(tmp_path, group)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    cfg = evaluate_config(output_dir=str(tmp_path / "out"), ckpt_path=str(ckpt), inputs=[str(scan)], device="cpu")
    with pytest.raises(CheckpointError, match=f"refused lfmri.config.{group}.payload="):
        evaluate(cfg)
    assert not witness.exists()


def test_export_refuses_an_interpolation_in_the_stored_config(tmp_path):
    ckpt, witness = interpolating(tmp_path, "model")
    with pytest.raises(CheckpointError, match="refused lfmri.config.model.payload="):
        export_checkpoint(ExportConfig(ckpt_path=str(ckpt), output_dir=str(tmp_path / "out")))
    assert not witness.exists() and not (tmp_path / "out").exists()


def test_init_from_refuses_an_interpolation_in_the_stored_config(tmp_path):
    ckpt, witness = interpolating(tmp_path, "model")
    with pytest.raises(CheckpointError, match="refused lfmri.config.model.payload="):
        init_network(ESPCN(scale=2), str(ckpt), None)
    assert not witness.exists()


def test_pretrained_pack_refuses_an_interpolation_in_the_stored_config(tmp_path, capsys):
    from lfmri.cli import pretrained as pretrained_cli

    ckpt, witness = interpolating(tmp_path, "degradation")
    err = refusal(capsys, pretrained_cli.main, ["pack", f"checkpoint={ckpt}", "name=tiny-test", f"dest={tmp_path / 'dest'}"])
    assert "refused lfmri.config.degradation.payload=" in err
    assert not witness.exists() and not (tmp_path / "dest").exists()


def test_an_environment_variable_in_a_stored_value_is_never_read(tmp_path, capsys, monkeypatch):
    """``${oc.env:VAR}`` in a stored value put the variable's value into logs and tracebacks."""
    monkeypatch.setenv("LFMRI_TEST_SECRET", "s3cr3t-value")
    ckpt = make_checkpoint(tmp_path / "env.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint[METADATA_KEY]["config"]["data"]["pattern"] = "/data/${oc.env:LFMRI_TEST_SECRET}/*.nii.gz"
    torch.save(checkpoint, ckpt)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    err = refusal(capsys, predict_main, [f"ckpt_path={ckpt}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}", "progress=false"])
    assert "lfmri.config.data.pattern='/data/${oc.env:LFMRI_TEST_SECRET}/*.nii.gz'" in err and "s3cr3t" not in err


def test_inert_check_finds_interpolations_at_any_depth_and_passes_plain_values():
    check_inert({"model": {"layers": [1, "a$b", "{x}", {"deep": "$ {x}"}]}}, "x.ckpt")  # plain values pass
    with pytest.raises(CheckpointError, match=r"^x\.ckpt: refused model\.layers\[1\]\.deep='a \$\{x\}'"):
        check_inert({"model": {"layers": [1, {"deep": "a ${x}"}]}}, "x.ckpt")
    with pytest.raises(CheckpointError, match="interpolation"):
        check_inert({"${oc.env:HOME}": 1}, "x.ckpt")  # a key is checked too


def test_every_shipped_and_fixture_checkpoint_is_inert():
    """Checkpoints lfmri wrote store resolved values: the refusal never hits one of them."""
    for path in [*(ROOT / "lfmri" / "pretrained").glob("*.ckpt"), *(ROOT / "tests" / "fixtures").glob("*.ckpt")]:
        load_checkpoint(path)
