"""lightning-hydra-template's names where its users reach for them: ``paths``, ``task_name``,
``callbacks=none`` (``trainer=cpu|gpu`` is in tests/unit/cli/test_config_mistakes.py)."""

from __future__ import annotations

import re

from tests.helpers.config import compose


def test_run_folders_come_from_paths_and_task_name():
    from omegaconf import OmegaConf

    cfg = compose("paths.output_root=/scratch/me", "task_name=ablation", hydra=True)
    run_dir = OmegaConf.select(cfg, "hydra.run.dir")
    sweep_dir = OmegaConf.select(cfg, "hydra.sweep.dir")
    assert re.fullmatch(r"/scratch/me/ablation/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", run_dir)
    assert re.fullmatch(r"/scratch/me/ablation/multirun/\d{4}-\d\d-\d\d_\d\d-\d\d-\d\d", sweep_dir)
    default = OmegaConf.select(compose(hydra=True), "hydra.run.dir")
    assert default.startswith("outputs/train/")  # where runs always went


def test_callbacks_none_trains_and_tests_with_lightnings_own_checkpoint(phantom_dir, tmp_path):
    import json

    from lfmri.training.run import train
    from tests.helpers.run import TINY

    cfg = compose(*TINY, f"data.pattern={phantom_dir}/*.nii.gz", "model=srcnn", "callbacks=none", "trainer.max_epochs=1",
                  "trainer.limit_train_batches=2", "trainer.limit_val_batches=1", "trainer.limit_test_batches=1",
                  output_dir=f"{tmp_path}/run")
    assert not cfg.get("callbacks")
    train(cfg)
    record = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert record["global_step"] == 2 and "test/psnr_brain" in record["metrics"]
