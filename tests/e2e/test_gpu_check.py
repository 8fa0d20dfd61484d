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
