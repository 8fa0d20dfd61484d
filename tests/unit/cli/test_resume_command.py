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
        f" (lfmri-train experiment=srdensenet_kspace_x2 'data.pattern=/data/IXI T1/*.nii.gz' "
        f"resume=true hydra.run.dir={run})"
    )
    assert run_command(tmp_path / "elsewhere") == ""


def test_a_run_started_before_the_moves_resumes_without_a_refusal(tmp_path):
    """A run whose stored config names pre-restructure module paths (``lfmri.schedules``...) is the
    same config today: resuming it must not ask for ``resume_allow_changes``; a real change still does."""
    import pytest
    from omegaconf import OmegaConf

    from lfmri.cli.common import check_resume
    from lfmri.errors import ConfigError

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    today = {
        "resume": True,
        "degradation": {"_target_": "lfmri.degrade.lowfield.LowFieldDegradation", "scale": 2},
        "module": {"scheduler": {"_target_": "lfmri.training.schedules.WarmupCosineLR", "warmup_steps": 200}},
        "trainer": {"plugins": [{"_target_": "lfmri.checkpoints.atomic_io.AtomicCheckpointIO"}]},
    }
    old = {
        "resume": True,
        "degradation": {"_target_": "lfmri.data.lowfield.LowFieldDegradation", "scale": 2},
        "module": {"scheduler": {"_target_": "lfmri.schedules.WarmupCosineLR", "warmup_steps": 200}},
        "trainer": {"plugins": [{"_target_": "lfmri.checkpoint_io.AtomicCheckpointIO"}]},
    }
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(old))
    check_resume(OmegaConf.create(today), run, given_dirs=True)
    assert not (run / "resume_changes.yaml").exists()

    changed = OmegaConf.create(today)
    changed.module.scheduler.warmup_steps = 100
    with pytest.raises(ConfigError, match="warmup_steps: 200 -> 100"):
        check_resume(changed, run, given_dirs=True)
