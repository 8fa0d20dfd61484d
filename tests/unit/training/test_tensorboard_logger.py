"""The TensorBoard logger configs: where they write, what ``logger=many`` holds, and the checkpoint allow-list."""

from __future__ import annotations

import pytest
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger
from omegaconf import OmegaConf

from lfmri.checkpoints.load import CheckpointError, check_targets, target_problem, trusted_prefixes
from lfmri.training.run import instantiate_group
from tests.helpers.config import compose


def logger_config(option: str, output_dir) -> OmegaConf:
    return compose(f"logger={option}", output_dir=str(output_dir))


def test_logger_tensorboard_writes_into_the_run_directory_beside_the_csv_log(tmp_path):
    cfg = logger_config("tensorboard", tmp_path)
    assert set(cfg.logger) == {"csv", "tensorboard"}
    loggers = {type(logger): logger for logger in instantiate_group(cfg.logger)}
    board = loggers[TensorBoardLogger]
    # version "": no version_N folder, so a resumed run keeps writing into the same TensorBoard run
    assert board.log_dir.rstrip("/") == str(tmp_path / "tensorboard")
    board.log_metrics({"val/psnr": 30.0}, step=1)
    board.finalize("success")
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents.*"))


def test_logger_many_holds_csv_wandb_and_tensorboard(tmp_path):
    cfg = logger_config("many", tmp_path)
    assert set(cfg.logger) == {"csv", "wandb", "tensorboard"}
    assert cfg.logger.tensorboard._target_ == "lightning.pytorch.loggers.TensorBoardLogger"


@pytest.mark.parametrize("option", ["tensorboard", "many"])
def test_a_checkpoint_config_naming_the_tensorboard_logger_passes_the_check(tmp_path, option):
    config = OmegaConf.to_container(logger_config(option, tmp_path), resolve=False)
    check_targets(config, f"logger={option}")  # raises CheckpointError for a refused target


def test_lightning_loggers_pass_and_other_names_in_that_module_do_not():
    trusted = trusted_prefixes()
    assert target_problem(f"lightning.pytorch.loggers.{TensorBoardLogger.__name__}", trusted) is None
    assert target_problem(f"lightning.pytorch.loggers.{CSVLogger.__name__}", trusted) is None
    assert target_problem("lightning.pytorch.loggers.os", trusted) is not None
    with pytest.raises(CheckpointError, match="refused"):
        check_targets({"logger": {"x": {"_target_": "lightning.pytorch.loggers.tensorboard.os.system"}}}, "x.ckpt")
