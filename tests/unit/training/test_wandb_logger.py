"""wandb credentials from a key file, the environment or ~/.netrc."""

from __future__ import annotations


def test_wandb_key_file_gives_credentials(tmp_path, monkeypatch):
    from lfmri.training import wandb_logger

    monkeypatch.setenv("HOME", str(tmp_path))
    for var in ("WANDB_API_KEY", "WANDB_IDENTITY_TOKEN_FILE", "NETRC"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_API_KEY_FILE", "/dev/null")  # compose's default: no key
    assert not wandb_logger.has_credentials()
    (tmp_path / "key").write_text("0123456789abcdef\n")
    monkeypatch.setenv("WANDB_API_KEY_FILE", str(tmp_path / "key"))
    assert wandb_logger.has_credentials()
    import os

    assert os.environ["WANDB_API_KEY"] == "0123456789abcdef"  # what wandb itself reads
    monkeypatch.delenv("WANDB_API_KEY")
    monkeypatch.delenv("WANDB_API_KEY_FILE")
    (tmp_path / ".netrc").write_text("machine api.wandb.ai\n  login user\n  password 0123456789abcdef\n")
    assert wandb_logger.has_credentials()


def test_the_logger_does_not_pass_wandbs_deprecated_anonymous_setting(tmp_path, monkeypatch):
    """Lightning passes wandb.init(anonymous=None), which wandb answers on every run with "The anonymous
    setting has no effect"; lfmri's factory leaves the key out, unless the user sets it."""
    from lfmri.training import wandb_logger

    monkeypatch.setenv("WANDB_MODE", "offline")
    plain = wandb_logger.wandb_logger(str(tmp_path / "a"), name="a", tags=[])
    assert "anonymous" not in plain._wandb_init and plain._wandb_init["project"] == "lfmri"
    asked = wandb_logger.wandb_logger(str(tmp_path / "b"), name="b", tags=[], anonymous=True)
    assert asked._wandb_init["anonymous"] == "allow"


def test_a_sweep_run_is_named_by_its_swept_values_only(tmp_path):
    """model=a,b loss=l1,mse with shared settings: the name is the swept values (config group choices as
    values, config values as leaf=value); settings (logger, tags, hydra) never name a run."""
    from lfmri.training.wandb_logger import run_name, swept_keys

    (tmp_path / "multirun.yaml").write_text(
        "hydra:\n  overrides:\n    task:\n    - model=srdensenet,espcn\n    - loss=l1,mse\n    - budget=quick\n"
        "    - module.optimizer.lr=range(1,3)\n    - logger=wandb\n    - tags=[trial]\n")
    swept = swept_keys(tmp_path, [])
    assert swept == ["model", "loss", "module.optimizer.lr"]
    job = {"swept": swept, "choices": {"model": "espcn", "loss": "mse", "budget": "quick", "logger": "wandb"},
           "overrides": ["model=espcn", "loss=mse", "budget=quick", "module.optimizer.lr=2", "logger=wandb", "tags=[trial]"]}
    assert run_name(job) == "espcn-mse-lr=2"
    # the Optuna sweeper writes no multirun.yaml: its search space names what varies
    assert swept_keys(tmp_path / "missing", ["module.optimizer.lr"]) == ["module.optimizer.lr"]
    assert swept_keys(tmp_path / "missing", []) is None
    # a single run: what it changes, settings left out; nothing changed: no name (the folder's is used)
    single = {"swept": None, "choices": {"model": "vdsr"}, "overrides": ["model=vdsr", "logger=wandb", "seed=3"]}
    assert run_name(single) == "vdsr-seed=3"
    assert run_name({"swept": None, "choices": {}, "overrides": ["logger=wandb", "hydra.run.dir=x"]}) is None


def test_a_damaged_multirun_record_names_nothing_and_hurts_nothing(tmp_path):
    import os

    from lfmri.training.wandb_logger import swept_keys

    (tmp_path / "multirun.yaml").write_text("a: &x [1, 2]\nhydra: {overrides: {task: [*x, *x]}}\n")  # an alias
    assert swept_keys(tmp_path, []) is None
    os.remove(tmp_path / "multirun.yaml")
    os.mkfifo(tmp_path / "multirun.yaml")  # would block a plain read
    assert swept_keys(tmp_path, ["seed"]) == ["seed"]


def test_short_config_keys_name_the_choices_scale_and_seed():
    from lfmri.training.wandb_logger import short_config

    job = {"choices": {"model": "srdensenet", "loss": "l1", "degradation": "kspace", "data": "folder", "trainer": "default"}}
    assert short_config(job, {"scale": 2, "seed": 42, "model": {}}) == {
        "model_name": "srdensenet", "loss_name": "l1", "degradation_name": "kspace", "data_name": "folder", "scale": 2, "seed": 42}
