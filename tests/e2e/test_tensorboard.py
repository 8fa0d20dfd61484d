"""``logger=tensorboard``: a real training writes TensorBoard event files, and its checkpoints still load.

The logger node is stored in every checkpoint's config, and evaluate/predict refuse a checkpoint
naming a class outside lfmri's allow-list: the run's own best.ckpt must pass that check.
"""

from __future__ import annotations

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from lfmri.checkpoints.load import METADATA_KEY, load_checkpoint
from tests.helpers.run import TINY, check, run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e


def test_a_tensorboard_run_writes_events_and_a_loadable_checkpoint(tmp_path):
    volumes = write_phantom_volumes(tmp_path / "volumes")
    run_dir = tmp_path / "run"
    # one short epoch that ends (limit_train_batches), so validation, the panel and best.ckpt happen
    check(run_script("train.py", *TINY, f"data.pattern={volumes}/*.nii.gz", "logger=tensorboard",
                     "trainer.max_epochs=1", "trainer.limit_train_batches=2", "trainer.limit_val_batches=1",
                     "trainer.limit_test_batches=1", "trainer.log_every_n_steps=1", f"hydra.run.dir={run_dir}"))
    events = sorted((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert events, sorted(p.name for p in run_dir.rglob("*"))
    tags = {"scalars": set(), "images": set()}
    for path in events:  # fit and test each open a writer of their own: one events file each
        accumulator = EventAccumulator(str(path))
        accumulator.Reload()
        for kind, found in tags.items():
            found.update(accumulator.Tags()[kind])
    assert {"train/loss", "val/psnr", "test/psnr_brain"} <= tags["scalars"], tags
    assert "val/panel" in tags["images"], tags
    assert (run_dir / "logs" / "metrics.csv").is_file()  # the CSV log stays beside it

    checkpoint = load_checkpoint(run_dir / "checkpoints" / "best.ckpt")
    stored = checkpoint[METADATA_KEY]["config"]["logger"]
    assert stored["tensorboard"]["_target_"] == "lightning.pytorch.loggers.TensorBoardLogger"
    assert stored["tensorboard"]["save_dir"] == str(run_dir)
