import pytest
import torch

from lfmri.degrade.degradations import BicubicDegradation, KSpaceDegradation, KSpaceZeroFillDegradation
from lfmri.inference.network import predict
from lfmri.contracts import check_compatible
from lfmri.degrade.baselines import Bicubic
from lfmri.models.srdensenet import SRDenseNet
from lfmri.degrade.baselines import ZeroFill


def n_params(model):
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("scale, expected", [(2, 1_910_689), (3, 1_910_689), (4, 2_500_769)])
def test_srdensenet_parameter_count_matches_the_paper_configuration(scale, expected):
    assert n_params(SRDenseNet(scale=scale)) == expected


def test_srdensenet_wiring():
    net = SRDenseNet()
    assert [b.convs[0].in_channels for b in net.blocks] == [16 + 128 * b for b in range(8)]
    assert [c.in_channels for c in net.blocks[0].convs] == [16] + [16 * j for j in range(1, 8)]
    assert net.bottleneck.in_channels == 1040 and net.bottleneck.out_channels == 256


@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("size", [(16, 16), (13, 7), (1, 5)])
def test_srdensenet_output_is_scale_times_input_at_any_size(scale, size):
    out = SRDenseNet(scale=scale)(torch.rand(2, 1, *size))
    assert out.shape == (2, 1, size[0] * scale, size[1] * scale)


def test_srdensenet_gradients_reach_every_parameter_and_a_step_lowers_the_loss():
    torch.manual_seed(0)
    net = SRDenseNet()
    x, y = torch.rand(4, 1, 8, 8), torch.rand(4, 1, 16, 16)
    loss = torch.nn.functional.mse_loss(net(x), y)
    loss.backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())
    # a small gradient-descent step must lower the loss (Adam's first step is sign-like and large)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3)
    opt.step()
    assert torch.nn.functional.mse_loss(net(x), y) < loss


def test_initial_output_has_image_scale():
    torch.manual_seed(0)
    out = SRDenseNet()(torch.rand(4, 1, 16, 16))
    assert 0.01 < out.std() < 1.0  # a variance-exploding init would start at ~1e7


def test_unsupported_scale_fails_with_the_supported_ones():
    with pytest.raises(ValueError, match=r"SRDenseNet cannot do scale x5; supported scales: x2, x3, x4"):
        SRDenseNet(scale=5)


def test_compatibility_is_checked_before_training():
    check_compatible(SRDenseNet(scale=2), KSpaceDegradation(scale=2))
    with pytest.raises(ValueError, match="x4 but the degradation is x2"):
        check_compatible(SRDenseNet(scale=4), KSpaceDegradation(scale=2))
    with pytest.raises(ValueError, match="returns its LR on the HR grid"):
        check_compatible(SRDenseNet(scale=2), KSpaceZeroFillDegradation(scale=2))


@pytest.mark.parametrize("deg", [KSpaceDegradation(), BicubicDegradation(), KSpaceZeroFillDegradation()])
def test_baselines_produce_hr_sized_outputs(deg):
    hr = torch.rand(2, 1, 32, 48)
    lr, lr_complex = deg.degrade(hr, torch.Generator().manual_seed(0))
    for net, x in [(ZeroFill(deg), lr_complex), (Bicubic(deg), lr)]:
        assert predict(net, x).shape == hr.shape
        assert not list(net.parameters())


def test_predict_pads_to_the_size_a_model_needs():
    class NeedsEight(torch.nn.Module):
        input_mode, scale, size_multiple = "lr", 2, 8

        def forward(self, x):
            assert x.shape[-2] % 8 == 0 and x.shape[-1] % 8 == 0
            return torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")

    x = torch.rand(1, 1, 13, 10)
    out = predict(NeedsEight(), x)
    assert out.shape == (1, 1, 26, 20)
    assert torch.equal(out, torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest"))
