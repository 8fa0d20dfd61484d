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
