"""``benchmarks/gpu_check.py --dry-run``: the GPU check's code paths on CPU at tiny sizes."""

from __future__ import annotations

import pytest

from tests.helpers.run import ROOT, run_script

pytestmark = pytest.mark.e2e


def test_gpu_check_dry_run(tmp_path):
    result = run_script(str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path / "gpu.md"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "gpu.md").read_text()
    for row in ("srdensenet", "amir", "bf16-mixed", "channels_last", "compile", "predict", "ddp", "bf16 matmul"):
        assert row in report, row


@pytest.mark.parametrize("native", [True, False])
def test_predict_rows_run_bf16_where_native_and_check_the_refusal_elsewhere(monkeypatch, native):
    """``make test`` failed on CPUs without native bfloat16: the dry run's predict bf16 row counted the
    (correct) refusal as a failure. Both branches, whatever this machine has."""
    import importlib.util

    import torch

    from lfmri.inference import network

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    if native and not network.bf16_supported("cpu"):
        # emulated bf16 runs (slowly) when asked past the check: what a native CPU does, for the row's logic
        monkeypatch.setattr(network, "bf16_supported", lambda device: True)
    if not native:
        monkeypatch.setattr(network, "bf16_supported", lambda device: False)
    lines = []
    failures = gpu_check.predict_rows(gpu_check.Sizes(dry=True), torch.device("cpu"), lines.append)
    assert failures == 0, lines
    bf16_row = next(line for line in lines if line.startswith("| predict bf16"))
    assert ("refused as expected" in bf16_row) != native, bf16_row
