"""A checkpoint is data: crafted ``_target_`` values are refused by every entry point that reads one."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from lfmri.checkpoints.load import METADATA_KEY, CheckpointError, build_network, check_targets, load_checkpoint, target_problem, trusted_prefixes
from lfmri.evaluation.evaluator import evaluate
from lfmri.models.espcn import ESPCN
from lfmri.export.exporters import ExportConfig, export_checkpoint
from lfmri.cli.predict import main as predict_main
from lfmri.training.transfer import init_network
from tests.conftest import ROOT, run_script, write_phantom
from tests.test_end_to_end import TINY
from tests.test_predict import make_checkpoint


class MakeMarker:
    """Unpickled by ``numpy.load(allow_pickle=True)``, this creates a folder: proof that code ran."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def crafted(tmp_path: Path, kind: str) -> tuple[Path, Path]:
    """A real lfmri checkpoint whose stored config was edited by an attacker.

    ``pickle``: the model is ``numpy.load(io.BytesIO(<pickle that creates a marker>))``;
    ``open``: the degradation is ``builtins.open(victim, "w")``, which truncates the victim.
    Returns (checkpoint, marker or victim).
    """
    path = make_checkpoint(tmp_path / f"{kind}.ckpt", "model=espcn", "degradation=bicubic", "data=folder", "data.pattern=x")
    checkpoint = torch.load(path, weights_only=True)
    config = checkpoint[METADATA_KEY]["config"]
    if kind == "pickle":
        witness = tmp_path / "marker"
        payload = pickle.dumps(MakeMarker(str(witness)))
        config["model"] = {"_target_": "numpy.load", "allow_pickle": True,
                           "_args_": [{"_target_": "io.BytesIO", "_args_": [payload]}]}
    else:
        witness = tmp_path / "victim.txt"
        witness.write_text("precious")
        config["degradation"] = {"_target_": "builtins.open", "_args_": [str(witness), "w"]}
    torch.save(checkpoint, path)
    return path, witness


def untouched(kind: str, witness: Path) -> bool:
    return not witness.exists() if kind == "pickle" else witness.read_text() == "precious"


KINDS = ["pickle", "open"]


@pytest.mark.parametrize("kind", KINDS)
def test_predict_refuses_a_crafted_checkpoint(tmp_path, capsys, kind):
    ckpt, witness = crafted(tmp_path, kind)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    status = predict_main([f"ckpt_path={ckpt}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}", "progress=false"])
    assert status == 2 and untouched(kind, witness)
    err = capsys.readouterr().err
    assert f"{ckpt}: refused to build" in err and ("numpy.load" in err or "builtins.open" in err)


@pytest.mark.parametrize("kind", KINDS)
def test_evaluate_refuses_a_crafted_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    cfg = OmegaConf.merge(OmegaConf.load(ROOT / "conf" / "evaluate.yaml"),
                          {"output_dir": str(tmp_path / "out"), "ckpt_path": str(ckpt), "inputs": [str(scan)], "device": "cpu"})
    with pytest.raises(CheckpointError, match="refused to build lfmri.config.(model|degradation)"):
        evaluate(cfg)
    assert untouched(kind, witness)


@pytest.mark.parametrize("kind", KINDS)
def test_export_refuses_a_crafted_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    with pytest.raises(CheckpointError, match=f"{kind}.ckpt: refused to build"):
        export_checkpoint(ExportConfig(ckpt_path=str(ckpt), output=str(tmp_path / "out")))
    assert untouched(kind, witness) and not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind", KINDS)
def test_init_from_refuses_a_crafted_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    with pytest.raises(CheckpointError, match="refused to build"):
        init_network(ESPCN(scale=2), str(ckpt), None)
    assert untouched(kind, witness)


@pytest.mark.parametrize("kind", KINDS)
def test_resume_refuses_a_crafted_last_checkpoint(tmp_path, kind):
    ckpt, witness = crafted(tmp_path, kind)
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    ckpt.rename(run_dir / "checkpoints" / "last.ckpt")
    write_phantom(tmp_path / "volumes" / "a.nii.gz")
    proc = run_script("train.py", *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "resume=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode != 0 and "refused to build lfmri.config." in proc.stderr
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
    monkeypatch.setenv("LFMRI_TRUST_TARGETS", "tests.test_checkpoint_targets")
    assert type(build_network(load_checkpoint(ckpt))) is OwnNet
    # trusting a prefix trusts only classes defined under it: tests.conftest.os is still refused
    assert "defined outside" in target_problem("tests.conftest.Path", trusted_prefixes(["tests"]))
    with pytest.raises(ValueError, match="trust_targets"):
        trusted_prefixes(["mypkg..models"])


@pytest.mark.parametrize("target", [
    "numpy.load", "builtins.open", "io.BytesIO", "os.system", "subprocess.Popen",
    "lfmri..models", "lfmri_evil.Net", "lfmri.x:__import__", "lfmri", " lfmri.models.espcn.ESPCN",
    "lfmri.checkpoints.load.subprocess.run", "lfmri.checkpoints.load.os.system", "lfmri.checkpoints.load.Path",
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
    from hydra import compose, initialize_config_dir

    groups = {g: sorted(p.stem for p in (ROOT / "conf" / g).glob("*.yaml"))
              for g in ("data", "degradation", "model", "loss", "module", "logger", "callbacks", "experiment")}
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for group, options in groups.items():
            for option in options:
                cfg = compose("train", overrides=["output_dir=/tmp/x", f"{group}={option}"])
                check_targets(OmegaConf.to_container(cfg, resolve=False), f"{group}={option}")


def test_the_command_lines_refuse_in_one_line_with_exit_status_2(tmp_path):
    import subprocess
    import sys

    ckpt, witness = crafted(tmp_path, "open")
    scan = write_phantom(tmp_path / "scan.nii.gz", shape=(16, 16, 8))
    env = {k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}
    proc = subprocess.run([sys.executable, "evaluate.py", f"ckpt_path={ckpt}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}"],
                          cwd=ROOT, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert f"evaluate.py: error: {ckpt}: refused to build lfmri.config.degradation._target_='builtins.open'" in proc.stderr
    assert untouched("open", witness)
