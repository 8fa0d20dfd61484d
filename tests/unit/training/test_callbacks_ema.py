"""callbacks.ema: the test stage after fit scores the averaged weights that validation selected."""

from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint
from lightning.pytorch.demos.boring_classes import BoringModel

from lfmri.training.callbacks import AveragedWeightsInTest, RunFittedEMA, start_averaging_within_run


class Recorder(BoringModel):
    def __init__(self) -> None:
        super().__init__()
        self.tested_weights: torch.Tensor | None = None

    def configure_optimizers(self):
        return torch.optim.SGD(self.layer.parameters(), lr=0.5)  # large steps: raw and averaged weights differ

    def validation_step(self, batch, batch_idx):
        loss = super().validation_step(batch, batch_idx)["x"]
        self.log("val_loss", loss)
        return loss

    def test_step(self, batch, batch_idx):
        self.tested_weights = self.layer.weight.detach().clone()
        return super().test_step(batch, batch_idx)


def fit_and_test(tmp_path, extra: list) -> tuple[Recorder, dict]:
    model = Recorder()
    checkpoint = ModelCheckpoint(dirpath=tmp_path, monitor="val_loss", save_top_k=1)
    trainer = L.Trainer(max_steps=6, limit_train_batches=3, limit_val_batches=1, limit_test_batches=1,
                        callbacks=[EMAWeightAveraging(decay=0.5), checkpoint, *extra], logger=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model)
    trainer.test(model, ckpt_path=checkpoint.best_model_path, weights_only=False, verbose=False)
    return model, torch.load(checkpoint.best_model_path, map_location="cpu", weights_only=False)


def test_the_test_after_fit_scores_the_averaged_weights(tmp_path):
    model, ckpt = fit_and_test(tmp_path / "fixed", [AveragedWeightsInTest()])
    averaged, raw = ckpt["state_dict"]["layer.weight"], ckpt["current_model_state"]["layer.weight"]
    assert not torch.allclose(averaged, raw)
    assert torch.equal(model.tested_weights, averaged)
    # and without it, Lightning tests the raw weights (why the callback exists)
    model, ckpt = fit_and_test(tmp_path / "plain", [])
    assert torch.equal(model.tested_weights, ckpt["current_model_state"]["layer.weight"])


def test_without_weight_averaging_it_changes_nothing(tmp_path):
    model = Recorder()
    trainer = L.Trainer(max_steps=2, limit_train_batches=2, limit_val_batches=1, limit_test_batches=1,
                        callbacks=[AveragedWeightsInTest()], logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(model)
    trainer.test(model, verbose=False)
    assert torch.equal(model.tested_weights, model.layer.weight.detach())


def test_a_non_finite_loss_stops_training_with_one_clear_error():
    """``init_from=`` diverged weights or a too-high learning rate trained to the end on NaN and exited 0."""
    from types import SimpleNamespace

    import pytest
    import torch

    from lfmri.errors import DivergedError
    from lfmri.training.callbacks import FiniteLoss

    trainer = SimpleNamespace(global_step=7, current_epoch=1, callback_metrics={"train/loss": torch.tensor(0.5)})
    FiniteLoss().on_train_batch_end(trainer, None, torch.tensor(0.5), None, 0)
    with pytest.raises(DivergedError, match="diverged at step 7.*loss=nan"):
        FiniteLoss().on_train_batch_end(trainer, None, {"loss": torch.tensor(float("nan"))}, None, 0)
    trainer.callback_metrics["train/generator_loss"] = torch.tensor(float("inf"))  # modules that optimise by hand only log
    with pytest.raises(DivergedError, match="train/generator_loss=inf"):
        FiniteLoss().on_train_batch_end(trainer, None, None, None, 0)


def test_a_run_fitted_ema_averages_over_a_quarter_of_a_short_run_and_keeps_its_decay_in_a_long_one(caplog):
    short = RunFittedEMA(decay=0.998, update_starting_at_step=200)
    with caplog.at_level(logging.INFO):
        start_averaging_within_run([short], max_steps=120)
    # starts at step 30; a 500-step horizon over the 90 steps left becomes 22 steps
    assert short.update_starting_at_step == 30 and short.decay == pytest.approx(1 - 1 / 22)
    assert "EMA horizon" in caplog.text
    long = RunFittedEMA(decay=0.998, update_starting_at_step=200)
    start_averaging_within_run([long], max_steps=6000)
    assert long.decay == 0.998 and long.update_starting_at_step == 200
    with pytest.raises(ValueError, match="callbacks.ema.decay"):
        RunFittedEMA(decay=1.0)

    # the fitted decay is the one the averaged model applies
    net = torch.nn.Linear(1, 1, bias=False)
    module = L.LightningModule()
    module.net = net
    trainer = L.Trainer(logger=False, accelerator="cpu", max_steps=120, enable_progress_bar=False)
    short.setup(trainer, module, "fit")
    average = short._average_model
    with torch.no_grad():
        net.weight.fill_(0.0)
        average.update_parameters(module)  # the first update copies
        net.weight.fill_(1.0)
        average.update_parameters(module)
    assert average.module.net.weight.item() == pytest.approx(1 / 22)


class FallingValidation(Recorder):
    """Every validation scores worse than the one before (a fine-tune that only loses), so the best
    checkpoint is the first validation's."""

    def __init__(self) -> None:
        super().__init__()
        self.validations = 0

    def on_validation_epoch_end(self) -> None:
        self.validations += 1
        self.log("val_score", float(-self.validations))


def test_before_its_first_update_the_average_is_neither_validated_nor_stored(tmp_path):
    """Lightning's average is a copy of the initial module until its first update: a fine-tune whose
    validations only fell stored its init, bit-identical, as best.ckpt. Validated, stored and kept
    now: the raw network, until the average has been updated."""
    from lfmri.checkpoints.stored_run import CheckpointMetadata

    model = FallingValidation()
    init = model.layer.weight.detach().clone()
    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val_score", mode="max", save_top_k=1)
    ema = RunFittedEMA(decay=0.5, update_starting_at_step=4)
    metadata = CheckpointMetadata({"model": {}}, name="boring")
    trainer = L.Trainer(max_steps=8, limit_train_batches=2, limit_val_batches=1, limit_test_batches=1,
                        callbacks=[ema, metadata, best], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, accelerator="cpu")
    trainer.fit(model)
    first = torch.load(tmp_path / "best.ckpt", map_location="cpu", weights_only=False)
    assert first["global_step"] == 2  # the first validation won: before the average's first update
    assert not torch.equal(first["state_dict"]["layer.weight"], init)  # two SGD steps, not the init
    weights = first["lfmri"]["weights"]
    assert weights["step"] == 2 and weights["averaged"] is False and weights["same_as_init"] is False
    trainer.save_checkpoint(tmp_path / "end.ckpt")  # once the average has been updated, it is what is stored
    last = torch.load(tmp_path / "end.ckpt", map_location="cpu", weights_only=False)
    assert last["lfmri"]["weights"]["averaged"] is True and last["lfmri"]["weights"]["averaged_updates"] > 0


def test_a_checkpoint_that_holds_the_init_says_so(tmp_path):
    from lfmri.checkpoints.stored_run import CheckpointMetadata

    class Frozen(FallingValidation):
        def configure_optimizers(self):
            return torch.optim.SGD(self.layer.parameters(), lr=0.0)  # trains nothing

    best = ModelCheckpoint(dirpath=tmp_path, filename="best", monitor="val_score", mode="max", save_top_k=1)
    trainer = L.Trainer(max_steps=2, limit_train_batches=2, limit_val_batches=1, callbacks=[CheckpointMetadata({}), best],
                        logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    model = Frozen()
    model.net = model.layer  # CheckpointMetadata fingerprints the net.* weights, as lfmri's modules name them
    trainer.fit(model)
    from lfmri.training.run import describe_tested_weights

    note = describe_tested_weights(tmp_path / "best.ckpt")
    assert note is not None and "holds the initial weights unchanged" in note
