"""Runs on real pairs resume mid-epoch exactly: the paired datamodule trains through the base
module's ResumableLoader (it used to build a plain DataLoader, which Lightning cannot restore)."""

from __future__ import annotations

import torch

from lfmri.data.paired_lowfield import PairedLowFieldDataModule
from lfmri.data.resumable import ResumableLoader
from lfmri.degrade.degradations import KSpaceDegradation
from tests.helpers.paired import HF_SHAPE, HF_SPACING, LF_SHAPE, LF_SPACING, write_volume_layout


def datamodule(root) -> PairedLowFieldDataModule:
    dm = PairedLowFieldDataModule(root=str(root), layout="volumes", degradation=KSpaceDegradation(), input_mode="lr",
                                  lf_shape=LF_SHAPE, lf_spacing=LF_SPACING, hf_shape=HF_SHAPE, hf_spacing=HF_SPACING,
                                  patch_size=8, batch_size=4, eval_batch_size=4, fractions=(0.5, 0.25, 0.25),
                                  num_workers=0, patches_per_epoch=24)
    dm.setup("fit")
    return dm


def test_a_paired_run_resumed_mid_epoch_sees_the_batches_it_had_left(tmp_path):
    root = write_volume_layout(tmp_path / "pairs")
    loader = datamodule(root).train_dataloader()
    assert isinstance(loader, ResumableLoader)
    uninterrupted = [batch["hr"] for batch in loader]
    resumed_loader = datamodule(root).train_dataloader()
    resumed_loader.load_state_dict({"trained_batches": 2})  # what Lightning restores from a checkpoint
    resumed = [batch["hr"] for batch in resumed_loader]
    assert len(uninterrupted) == 6 and len(resumed) == 4
    for a, b in zip(uninterrupted[2:], resumed):
        assert torch.equal(a, b)
