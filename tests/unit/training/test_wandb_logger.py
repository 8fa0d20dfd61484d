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
