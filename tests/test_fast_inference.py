"""Fast CPU inference (issue 15): bf16 and ``precision=auto``, the ONNX Runtime backend, SRDenseNet's
buffered dense path and GEMM reconstruction, parallel volumes in predict, and the GPU check's dry run.

Correctness only: speed is measured by ``benchmarks/``, never asserted here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from lfmri.inference.network import BF16_PARITY_KEY, bf16_supported, network_forward, predict, resolve_precision
from lfmri.models.srdensenet import SRDenseNet, conv_by_taps
from lfmri.cli.predict import run_predict
from lfmri.inference.predictor import Predictor
from tests.conftest import ROOT, run_script, write_phantom
from tests.test_predict import config, make_checkpoint

TINY_NET = dict(low_level_channels=8, growth=4, layers_per_block=3, blocks=2, bottleneck_channels=16)
TINY_MODEL = [f"model.{k}={v}" for k, v in TINY_NET.items()]
BF16 = bf16_supported("cpu")


def tiny_net(scale: int = 2) -> SRDenseNet:
    torch.manual_seed(0)
    return SRDenseNet(scale=scale, **TINY_NET).eval()


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


def test_predictor_auto_reads_the_card(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    checkpoint = torch.load(ckpt, weights_only=True)
    x = torch.rand(1, 1, 16, 16)
    plain = Predictor(checkpoint, config(tmp_path, ckpt)).runner(x)
    assert torch.equal(plain, Predictor(checkpoint, config(tmp_path, ckpt, precision="fp32")).runner(x))
    checkpoint["lfmri"]["card"][BF16_PARITY_KEY] = 0.01
    recorded = Predictor(checkpoint, config(tmp_path, ckpt)).runner(x)
    assert torch.equal(recorded, plain) != BF16  # bf16 exactly where the CPU has it


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


def test_predict_workers_give_the_single_process_outputs(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    inputs = [write_phantom(tmp_path / f"in/s{i}.nii.gz", shape=(24, 28, 6), seed=i) for i in range(3)]
    outputs = {}
    for workers in (1, 2):
        cfg = config(tmp_path, ckpt, *inputs, workers=workers, threads=1, preview=False)
        cfg.output_dir = str(tmp_path / f"out{workers}")
        done, failed = run_predict(cfg)
        assert not failed and len(done) == 3
        outputs[workers] = [np.asarray(nib.load(done[str(p)]["sr"]).dataobj) for p in inputs]
    for one, two in zip(outputs[1], outputs[2]):
        assert np.array_equal(one, two)


def test_predict_rejects_bad_workers(tmp_path):
    ckpt = make_checkpoint(tmp_path / "m.ckpt", *TINY_MODEL)
    with pytest.raises(ValueError, match="workers=0"):
        run_predict(config(tmp_path, ckpt, tmp_path, workers=0))


def test_gpu_check_dry_run(tmp_path):
    result = run_script(str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--out", str(tmp_path / "gpu.md"), timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    report = (tmp_path / "gpu.md").read_text()
    for row in ("srdensenet", "amir", "bf16-mixed", "channels_last", "compile", "predict", "ddp", "bf16 matmul"):
        assert row in report, row
