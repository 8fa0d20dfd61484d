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


def test_resume_of_a_finished_run_says_so_and_changes_nothing(tmp_path, capsys):
    """It rewrote metrics.json with best_score: null; now one line, exit 0, every file as it was."""
    import json

    import pytest
    from omegaconf import OmegaConf

    from lfmri.cli.common import check_resume

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"weights")
    config = {"resume": True, "trainer": {"max_epochs": 2, "max_steps": -1}}
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (run / "metrics.json").write_text(json.dumps({"global_step": 12, "epoch": 2, "best_score": 13.5, "metrics": {}}))
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()}
    with pytest.raises(SystemExit) as stopped:
        check_resume(OmegaConf.create(config), run, given_dirs=True)
    out = capsys.readouterr().out
    assert stopped.value.code == 0 and len(out.strip().splitlines()) == 1
    assert f"{run} already finished (epoch 2, step 12" in out and "nothing changed" in out
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.rglob("*") if p.is_file()} == before
    # a raised limit trains on (max_epochs and max_steps may change on resume)
    for trainer in ({"max_epochs": 3, "max_steps": -1}, {"max_epochs": None, "max_steps": 20}):
        check_resume(OmegaConf.create({**config, "trainer": trainer}), run, given_dirs=True)
    # killed before its end: no metrics.json, resumed
    (run / "metrics.json").unlink()
    check_resume(OmegaConf.create(config), run, given_dirs=True)


def test_a_recipe_value_that_became_an_interpolation_is_no_change_unless_it_resolves_otherwise(tmp_path):
    """Runs stored before the recipes' batch sizes and learning rates followed batch_scale (a literal 12
    then, ${lfmri.batch_scaled:12,${batch_scale}} now) resume; hardware=gpu's batch of 96 is a change."""
    import pytest
    from omegaconf import OmegaConf

    import lfmri.training.resolvers  # noqa: F401
    from lfmri.cli.common import check_resume
    from lfmri.errors import ConfigError

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "last.ckpt").write_bytes(b"")
    (run / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"resume": True, "data": {"batch_size": 12, "num_workers": 2}}))
    today = {"resume": True, "batch_scale": None, "data": {"batch_size": "${lfmri.batch_scaled:12,${batch_scale}}",
                                                           "num_workers": 0, "degrade_on": "device", "resident": True}}
    check_resume(OmegaConf.create(today), run, given_dirs=True)  # throughput switches and an equal value: no change
    with pytest.raises(ConfigError, match=r"data.batch_size: 12 -> '\$\{lfmri.batch_scaled:12,\$\{batch_scale\}\}'.*batch_scale: '<unset>' -> 8"):
        check_resume(OmegaConf.create({**today, "batch_scale": 8}), run, given_dirs=True)
