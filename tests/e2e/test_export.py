"""``lfmri.cli.export`` on a checkpoint train.py wrote: both formats, and no overwriting."""

from __future__ import annotations

import json

import pytest

from lfmri.cli.export import main
from lfmri.export.exporters import (
    CARD_KEY,
    onnx_card,
    onnx_metadata,
    torchscript_metadata,
)
from tests.helpers.cli import refusal
from tests.helpers.run import TINY as E2E_TINY
from tests.helpers.run import run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e


TINY = [*E2E_TINY, "model=espcn"]  # the cheapest trained network keeps the end-to-end run short


def test_cli_exports_a_trained_checkpoint_and_refuses_to_overwrite(tmp_path, capsys):
    write_phantom_volumes(tmp_path / "volumes")
    run_dir = tmp_path / "run"
    proc = run_script("train.py", *TINY, f"data.pattern={tmp_path}/volumes/*.nii.gz", "trainer.fast_dev_run=true", f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = run_dir / "checkpoints" / "last.ckpt"

    out = tmp_path / "export"
    proc = run_script("-m", "lfmri.cli.export", f"ckpt_path={ckpt}", f"output_dir={out}", "format=both")
    assert proc.returncode == 0, proc.stderr[-3000:]
    onnx_path, ts_path = out / "espcn_x2.onnx", out / "espcn_x2.pt"
    assert sorted(p.name for p in out.iterdir()) == ["espcn_x2.onnx", "espcn_x2.pt"]
    for line in proc.stdout.splitlines():  # one line per format with the measured difference
        assert float(line.rsplit(":", 1)[1]) < 1e-4
    assert "onnx:" in proc.stdout and "torchscript (script):" in proc.stdout
    card = onnx_card(onnx_path)
    assert card["name"] == "espcn" and card["degradation"]["_target_"].endswith("KSpaceDegradation")
    assert json.loads(onnx_metadata(onnx_path)[CARD_KEY]) == torchscript_metadata(ts_path)["card"]

    before = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert "already exists; pass overwrite=true" in refusal(capsys, main, [f"ckpt_path={ckpt}", f"output_dir={out}", "format=both"])
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == before
