"""Every network of the zoo, built from its config: size, shapes, gradients, one learning step."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from lfmri.contracts import SROutput, as_image, input_mode
from lfmri.geometry.grid import upsample_lr
from lfmri.inference.network import output_scale, predict
from lfmri.models.amir import AMIR
from lfmri.models.circle import CircleGenerator
from lfmri.models.cpce import CPCE
from lfmri.models.mrln import MRLN
from tests.helpers.config import compose

EXPECTED = {
    "srdensenet": 1_910_689,
    "srcnn": 8_129,
    "fsrcnn": 12_809,
    "espcn": 21_284,
    "vdsr": 665_921,
    "mrln": 2_658_954,
    "cpce": 62_016,
    "circle": 343_568,
    "amir": 23_540_498,
}


LEARNED = sorted(EXPECTED)


def build(name: str, *overrides: str) -> torch.nn.Module:
    return instantiate(compose(f"model={name}", *overrides, output_dir="/tmp/lfmri-zoo").model)


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("name", LEARNED)
def test_parameter_count_matches_the_spec(name):
    count = n_params(build(name))
    assert count == EXPECTED[name]
    if name == "amir":
        assert 20e6 <= count <= 24.5e6


@pytest.mark.parametrize(
    "name, scale, expected",
    [("srdensenet", 3, 1_910_689), ("srdensenet", 4, 2_500_769), ("mrln", 3, 2_661_002), ("mrln", 4, 2_664_074),
     ("espcn", 3, 22_729), ("espcn", 4, 24_752)],
)
def test_parameter_counts_at_other_scales(name, scale, expected):
    assert n_params(build(name, f"scale={scale}")) == expected


def _input(model, size, scale):
    lr = torch.rand(2, 1, *size)
    return upsample_lr(lr, scale, "area") if input_mode(model) == "upsampled" else lr


@pytest.mark.parametrize("name", LEARNED)
@pytest.mark.parametrize("size", [(16, 16), (13, 11)])
def test_output_shape_is_scale_times_lr_or_equal_for_pre_upsampled(name, size):
    model = build(name).eval()
    x = _input(model, size, 2)
    with torch.no_grad():
        out = predict(model, x)  # pads for models that need it (AMIR: multiples of 8)
    factor = output_scale(model)
    assert factor == (1 if input_mode(model) == "upsampled" else 2)
    assert out.shape == (2, 1, x.shape[-2] * factor, x.shape[-1] * factor)
    assert out.shape[-2:] == (2 * size[0], 2 * size[1])  # always the HR grid of the LR input
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["srcnn", "fsrcnn", "espcn", "vdsr", "mrln", "cpce", "circle", "srdensenet"])
def test_fully_convolutional_models_take_odd_sizes_directly(name):
    model = build(name).eval()
    x = _input(model, (13, 11), 2)
    with torch.no_grad():
        assert as_image(model(x)).shape[-2:] == (26, 22)


@pytest.mark.parametrize("name", LEARNED)
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)
    model = build(name).train()
    with torch.no_grad():  # move off zero-initialised gates (AMIR's channel routing) so none is stuck
        for p in model.parameters():
            p.add_(1e-2 * torch.randn_like(p))
    x = _input(model, (16, 16), 2)
    out = model(x)
    loss = as_image(out).square().mean()
    if isinstance(out, SROutput):
        loss = loss + sum(a.square().mean() for a in out.aux_images) + (out.aux_loss if out.aux_loss is not None else 0)
    loss.backward()
    stuck = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not stuck


@pytest.mark.parametrize("name", LEARNED)
def test_one_gradient_step_lowers_the_loss(name):
    torch.manual_seed(0)
    model = build(name).eval()  # eval: deterministic (no gating noise) so the comparison is fair
    x = _input(model, (16, 16), 2)
    target = torch.rand(2, 1, 32, 32) * 0.5 + 0.25
    loss = torch.nn.functional.mse_loss(as_image(model(x)), target)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=1e-4).step()
    with torch.no_grad():
        assert torch.nn.functional.mse_loss(as_image(model(x)), target) < loss


@pytest.mark.parametrize(
    "name, overrides, message",
    [
        ("srdensenet", ["scale=5"], "SRDenseNet cannot do scale x5"),
        ("mrln", ["scale=5"], "MRLN cannot do scale x5"),
        ("circle", ["scale=3"], "CircleGenerator cannot do scale x3"),
        ("mrln", ["model.unit=dense"], "model.unit"),
    ],
)
def test_impossible_configurations_fail_when_built(name, overrides, message):
    with pytest.raises(Exception, match=message):
        build(name, *overrides)


def test_mrln_branches_start_at_the_upsampled_image_and_are_returned_in_training():
    model = MRLN(scale=3, grid="kspace")
    x = torch.rand(1, 1, 10, 10)
    out = model.train()(x)
    assert isinstance(out, SROutput) and len(out.aux_images) == 9
    assert all(a.shape == (1, 1, 30, 30) for a in out.aux_images)
    with torch.no_grad():
        image = model.eval()(x)
    # deconvolutions start near zero and the weights at 1/9: the output starts at U(x)
    assert torch.allclose(image, upsample_lr(x, 3, "kspace"), atol=0.05)
    assert torch.allclose(model.weights, torch.full((9,), 1 / 9))


def unit_feature_growth(model: MRLN, x: torch.Tensor) -> float:
    """std of the last unit's features over std of the coarse features (the drrn recurrence)."""
    with torch.no_grad():
        coarse = torch.relu(model.coarse(x))
        h = coarse
        for unit in model.units:
            h = unit(h) + coarse
    return (h.std() / coarse.std()).item()


def test_mrln_residual_init_keeps_unit_features_at_the_coarse_scale():
    torch.manual_seed(0)
    x = torch.rand(2, 1, 16, 16)
    torch.manual_seed(1)
    scaled = unit_feature_growth(MRLN(scale=2), x)
    torch.manual_seed(1)
    plain = unit_feature_growth(MRLN(scale=2, residual_init_scale=1.0), x)
    # the choice documented in mrln.py: plain Kaiming lets H_9 grow many times past F0
    assert scaled < 2.0 < 5.0 < plain


def test_amir_routing_and_outputs():
    torch.manual_seed(0)
    model = AMIR()
    x = torch.rand(2, 1, 16, 16)
    out = model.train()(x)
    assert isinstance(out, SROutput) and out.aux_loss.ndim == 0 and out.aux_loss >= 0
    model.eval()
    with torch.no_grad():
        y = model(x)
        assert isinstance(y, torch.Tensor) and y.shape == x.shape
        assert torch.equal(model.route_latent(torch.ones(1, 336, 2, 2), torch.rand(1, 256)), torch.ones(1, 336, 2, 2))
    with pytest.raises(ValueError, match="divisible by 8"):
        model(torch.rand(1, 1, 20, 20))


def test_cpce_is_bias_free_non_negative_and_size_preserving():
    model = CPCE()
    assert all(m.bias is None for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)))
    out = model(torch.rand(1, 1, 64, 64))
    assert out.shape == (1, 1, 64, 64) and out.min() >= 0


def test_circle_same_size_form_reads_the_hr_grid():
    model = CircleGenerator(mode="same_size")
    assert input_mode(model) == "upsampled" and model.size_multiple == 2
    assert model(torch.rand(1, 1, 32, 32)).shape == (1, 1, 32, 32)
    assert n_params(model) == n_params(CircleGenerator())
