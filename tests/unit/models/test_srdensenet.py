"""SRDenseNet: the paper's size and wiring, any input size, gradients, residual start, the fast inference paths."""

from __future__ import annotations

import pytest
import torch

from lfmri.geometry.grid import upsample_lr
from lfmri.inference.network import network_forward
from lfmri.models.srdensenet import SRDenseNet, conv_by_taps
from tests.helpers.predict import TINY_NET, tiny_net


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


def test_residual_srdensenet_starts_as_the_aligned_bicubic_and_learns_a_correction():
    x = torch.rand(2, 1, 12, 10)
    for grid in ("kspace", "area"):
        net = SRDenseNet(scale=2, growth=4, layers_per_block=2, blocks=2, bottleneck_channels=8, residual=True, grid=grid)
        assert torch.allclose(net(x), upsample_lr(x, 2, grid), atol=1e-6)
    plain = SRDenseNet(scale=2, growth=4, layers_per_block=2, blocks=2, bottleneck_channels=8)
    assert not torch.allclose(plain(x), upsample_lr(x, 2, "kspace"), atol=1e-2)
    # same parameters as the paper's network: checkpoints of either load into the other
    assert plain.state_dict().keys() == net.state_dict().keys()
    # one step moves the output away from the baseline (the correction path gets gradients)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    loss = (net(x) - torch.rand(2, 1, 24, 20)).abs().mean()
    loss.backward()
    opt.step()
    assert not torch.allclose(net(x), upsample_lr(x, 2, "area"), atol=1e-4)
    with pytest.raises(ValueError, match="model.grid"):
        SRDenseNet(grid="pixel")


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_buffered_dense_path_and_gemm_reconstruction_equal_the_plain_network(scale):
    net = tiny_net(scale)
    full = SRDenseNet(scale=scale).eval()  # the real widths too: 1040 trunk maps, 256 -> 1 reconstruction
    for model, x in ((net, torch.rand(2, 1, 13, 17)), (full, torch.rand(1, 1, 12, 10))):
        reference = model(x).detach()  # with autograd: the plain torch.cat path
        assert list(model.state_dict()) == list(SRDenseNet(scale=scale, **({} if model is full else TINY_NET)).state_dict())
        with torch.no_grad():
            buffered = model(x)  # NCHW inference: preallocated buffer
            fast = network_forward(model, "cpu", "fp32", channels_last=True)(x)  # channels_last: GEMM reconstruction
        torch.testing.assert_close(buffered, reference, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(fast, reference, rtol=1e-5, atol=1e-5)
        model.to(memory_format=torch.contiguous_format)


def test_conv_by_taps_equals_conv2d():
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(7, 3, 3, padding=1)
    y = torch.rand(2, 7, 9, 11).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(conv_by_taps(y, conv.weight, conv.bias), conv(y), rtol=1e-5, atol=1e-5)
