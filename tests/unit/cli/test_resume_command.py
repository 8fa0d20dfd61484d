"""A refused resume says the exact command that continues the run with its own options."""

from __future__ import annotations

import yaml

from lfmri.cli.common import run_command


def test_the_refusal_quotes_the_runs_own_overrides(tmp_path):
    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    overrides = ["experiment=srdensenet_kspace_x2", "data.pattern=/data/IXI T1/*.nii.gz", "hydra.job.name=x", "resume=false"]
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    assert run_command(run) == (
        f" (python train.py experiment=srdensenet_kspace_x2 'data.pattern=/data/IXI T1/*.nii.gz' "
        f"resume=true hydra.run.dir={run})"
    )
    assert run_command(tmp_path / "elsewhere") == ""
