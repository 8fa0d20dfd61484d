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
