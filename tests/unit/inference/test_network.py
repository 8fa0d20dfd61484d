"""``lfmri.inference.network``: bf16 and ``precision=auto``, the ONNX Runtime backend, padding to a model's size multiple."""

from __future__ import annotations

import pytest
import torch

from lfmri.inference.network import BF16_PARITY_KEY, network_forward, predict, resolve_precision
from lfmri.models.srdensenet import SRDenseNet
from tests.helpers.predict import BF16, TINY_NET, tiny_net


def test_bf16_matches_fp32_or_is_refused():
    net, x = tiny_net(), torch.rand(2, 1, 20, 24)
    with torch.no_grad():
        fp32 = predict(net, x, forward=network_forward(net, "cpu", "fp32"))
        if not BF16:  # this CPU emulates bf16: an explicit request is refused with the option named
            with pytest.raises(ValueError, match="precision=bf16"):
                network_forward(net, "cpu", "bf16")
            return
        bf16 = predict(net, x, forward=network_forward(net, "cpu", "bf16"))
    assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape == (2, 1, 40, 48)
    assert not torch.equal(bf16, fp32)  # it did run in bf16
    assert (bf16 - fp32).abs().max() < 0.02 * fp32.abs().max()


def test_auto_needs_the_cards_parity_record():
    assert resolve_precision("auto", "cpu", {}) == "fp32"
    assert resolve_precision("auto", "cpu", {BF16_PARITY_KEY: 0.3}) == "fp32"  # measured, but too far
    assert resolve_precision("auto", "cpu", {BF16_PARITY_KEY: -0.01}) == ("bf16" if BF16 else "fp32")
    assert resolve_precision("auto", "cpu", {BF16_PARITY_KEY: -0.01}, backend="onnxruntime") == "fp32"
    assert resolve_precision("32", "cpu") == "fp32"
    with pytest.raises(ValueError, match="precision='fp64'"):
        resolve_precision("fp64", "cpu")
    with pytest.raises(ValueError, match="precision=16"):
        resolve_precision("16", "cpu")
    with pytest.raises(ValueError, match="backend='tensorrt'"):
        network_forward(tiny_net(), "cpu", backend="tensorrt")


def test_onnxruntime_backend_equals_torch(tmp_path):
    from lfmri.export.exporters import export_onnx

    net, x = tiny_net(), torch.rand(3, 1, 18, 22)
    with torch.no_grad():
        want = predict(net, x, forward=network_forward(net, "cpu", "fp32"))
        got = predict(net, x, forward=network_forward(net, "cpu", "auto", backend="onnxruntime"))
        path = export_onnx(net, tmp_path / "net.onnx")
        from_file = predict(net, x, forward=network_forward(net, "cpu", backend="onnxruntime", onnx_path=path))
    assert got.shape == want.shape and (got - want).abs().max() < 1e-4
    assert torch.equal(from_file, got)
    with pytest.raises(ValueError, match="precision='bf16' needs backend=torch"):
        network_forward(net, "cpu", "bf16", backend="onnxruntime")


def test_onnx_file_of_another_network_is_refused(tmp_path):
    from lfmri.export.exporters import ExportError, export_onnx

    path = export_onnx(tiny_net(), tmp_path / "net.onnx")
    torch.manual_seed(1)
    other = SRDenseNet(scale=2, **TINY_NET).eval()
    with pytest.raises(ExportError, match="differs from PyTorch"):
        network_forward(other, "cpu", backend="onnxruntime", onnx_path=path)


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
