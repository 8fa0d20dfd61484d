"""The supervised module adds auxiliary images and losses to the loss."""

from __future__ import annotations

import pytest
import torch

from lfmri.contracts import SROutput
from lfmri.losses.composite import CompositeLoss
from lfmri.modules.supervised import SupervisedModule


def test_supervised_loss_adds_auxiliary_images_and_losses():
    class WithAux(torch.nn.Module):
        input_mode, scale = "lr", 1

        def forward(self, x):
            return SROutput(x, aux_images=(x + 1, x + 2), aux_loss=torch.tensor(0.25))

    module = SupervisedModule(WithAux(), CompositeLoss({"mse": torch.nn.MSELoss()}), optimizer=torch.optim.Adam, aux_weight=0.5, channels_last=False)
    zeros = torch.zeros(1, 1, 4, 4)
    with pytest.warns(UserWarning, match="self.log"):
        total = module.training_step({"lr": zeros, "hr": zeros}, 0)
    assert total == pytest.approx(0 + 0.5 * (1 + 4) + 0.25)


def test_the_panel_is_a_mid_brain_slice_not_the_largest_skull_base_one():
    """A head whose largest outline is at the skull base (face and neck, slice 2): the panel is the
    middle of the slices nearly as large (the brain), not that slice nor the small top of the head."""
    import torch

    from lfmri.modules.supervised import SupervisedModule

    module = SupervisedModule.__new__(SupervisedModule)
    module._panel_candidates = []
    areas = [50, 60, 100, 80, 85, 90, 88, 82, 75, 40, 20]  # slices 0-10, bottom to top
    hr = torch.zeros(len(areas), 1, 16, 16)
    mask = torch.zeros(len(areas), 1, 16, 16, dtype=torch.bool)
    for i, area in enumerate(areas):
        mask[i].view(-1)[:area] = True
    batch = {"hr": hr, "lr": hr[:, :, ::2, ::2], "lr_complex": hr[:, :, ::2, ::2].to(torch.complex64),
             "subject": ["s"] * len(areas), "slice": torch.arange(len(areas))}
    module._keep_panel({k: v[:6] for k, v in batch.items()}, hr[:6], mask[:6])  # two validation batches
    module._keep_panel({k: v[6:] for k, v in batch.items()}, hr[6:], mask[6:])
    panel = SupervisedModule._panel_slice(module._panel_candidates)
    assert panel["slice"] == 5 and panel["area"] == 90  # slices 2-8 have >= 70 % of the largest: their middle
    assert SupervisedModule._panel_slice([]) is None


def test_training_logs_each_term_weighted_and_its_gradient_share(caplog):
    """train/loss_<name> is the term as it enters the total; every grad_share_every_n_steps updates the
    share of each term's gradient is logged, and a term that stays under 1 % is named once."""
    import logging

    class Tiny(torch.nn.Module):
        input_mode, scale = "lr", 1

        def __init__(self):
            super().__init__()
            self.conv = torch.nn.Conv2d(1, 1, 3, padding=1)

        def forward(self, x):
            return self.conv(x)

    loss = CompositeLoss({"l1": torch.nn.L1Loss(), "mse": torch.nn.MSELoss()}, {"l1": 1.0, "mse": 1e-6})
    module = SupervisedModule(Tiny(), loss, optimizer=torch.optim.Adam, channels_last=False, grad_share_every_n_steps=1)
    logged: dict[str, float] = {}
    module.log = lambda key, value, **kw: logged.__setitem__(key, float(value))
    module.__dict__["_trainer"] = type("T", (), {"is_global_zero": True, "global_step": 0})()  # what the step reads
    torch.manual_seed(0)
    batch = {"lr": torch.rand(2, 1, 8, 8), "hr": torch.rand(2, 1, 8, 8)}
    module.share_monitor.warn_after_steps = 0
    with caplog.at_level(logging.WARNING, logger="lfmri.modules.supervised"):
        total = module.training_step(batch, 0)
    assert logged["train/loss_l1"] + logged["train/loss_mse"] == pytest.approx(float(total))
    assert logged["train/grad_share_l1"] + logged["train/grad_share_mse"] == pytest.approx(1.0)
    assert logged["train/grad_share_mse"] < 0.01
    assert "loss term 'mse' at weight 1e-06" in caplog.text and "would give it 10%" in caplog.text


def test_each_validation_logs_the_gain_over_each_baseline_and_a_step_interval_run_a_panel_each_time(phantom_dir, tmp_path):
    """What a sweep is ranked by and a dashboard groups on: val/psnr_brain_vs_<baseline> is the network's
    in-brain PSNR minus the baseline's on the same slices, at every validation; budget=quick-style
    validation on a step interval writes a panel at each one (the panel setting counts epochs)."""
    import csv
    import json

    from lfmri.training.run import train
    from tests.helpers.config import compose
    from tests.helpers.run import TINY

    cfg = compose(*TINY, f"data.pattern={phantom_dir}/*.nii.gz", "model=srcnn", "trainer.max_epochs=-1",
                  "trainer.max_steps=4", "+trainer.val_check_interval=2", "trainer.check_val_every_n_epoch=null",
                  "trainer.limit_val_batches=1", "trainer.limit_test_batches=1", "callbacks.progress_log=null",
                  output_dir=f"{tmp_path}/run")
    train(cfg)
    run = tmp_path / "run"
    rows = [r for r in csv.DictReader((run / "logs" / "metrics.csv").open()) if r.get("val/psnr_brain")]
    assert len(rows) == 2
    for row in rows:
        for baseline in ("zerofill", "bicubic"):
            gain = float(row[f"val/psnr_brain_vs_{baseline}"])
            assert gain == pytest.approx(float(row["val/psnr_brain"]) - float(row[f"baselines/val/{baseline}_psnr_brain"]), abs=1e-4)
    metrics = json.loads((run / "metrics.json").read_text())["metrics"]
    assert metrics["test/psnr_brain_vs_zerofill"] == pytest.approx(
        metrics["test/psnr_brain"] - metrics["baselines/test/zerofill_psnr_brain"], abs=1e-4)
    assert sorted(p.name for p in (run / "panels").iterdir()) == ["step_0000002.png", "step_0000004.png"]
