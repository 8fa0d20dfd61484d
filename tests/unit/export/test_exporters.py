"""Export to ONNX and TorchScript: files that reproduce PyTorch at any size and carry the model card."""

from __future__ import annotations

import copy
import json

import numpy as np
import onnx
import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn

from lfmri.checkpoints.load import model_card
from lfmri.contracts import SROutput
from lfmri.export.exporters import (
    ExportError,
    check_onnx,
    check_torchscript,
    example_input,
    export_onnx,
    export_torchscript,
    mni_slice,
    onnx_card,
    onnx_metadata,
    reference_images,
    torchscript_metadata,
)
from tests.helpers.config import compose


def zoo_model(name: str) -> tuple[nn.Module, dict]:
    """A zoo network as ``train.py model=NAME`` builds it, with the model card a checkpoint would carry."""
    cfg = compose(f"model={name}", output_dir="/tmp/lfmri-export-test")
    torch.manual_seed(0)
    net = instantiate(cfg.model)
    return net, model_card(OmegaConf.to_container(cfg, resolve=True), net, None, name)


@pytest.fixture(scope="module")
def brain_crop() -> torch.Tensor:
    """A central 72 x 88 crop of the real MNI152 slice: anatomy at a size the big models run fast on."""
    hr = mni_slice()
    top, left = (hr.shape[0] - 72) // 2, (hr.shape[1] - 88) // 2
    return hr[top : top + 72, left : left + 88]


@pytest.fixture(scope="module")
def espcn_onnx(tmp_path_factory):
    net, card = zoo_model("espcn")
    path = export_onnx(net, tmp_path_factory.mktemp("espcn") / "espcn.onnx", card)
    return net, card, path


@pytest.mark.parametrize("name", ["srdensenet", "vdsr", "mrln"])
def test_onnx_matches_pytorch_at_two_sizes(name, brain_crop, tmp_path):
    net, card = zoo_model(name)
    net.train()  # MRLN returns its branch images in train mode: the export must hold the eval path
    images = reference_images(net, brain_crop)
    assert images[0].shape[0] == 1 and images[1].shape[0] == 2 and images[0].shape[-2:] != images[1].shape[-2:]
    expected_h = brain_crop.shape[0] if name == "vdsr" else brain_crop.shape[0] // 2  # upsampled: HR grid
    assert images[0].shape[-2] == expected_h
    path = export_onnx(net, tmp_path / f"{name}.onnx", card)
    diff = check_onnx(path, net, images)
    print(f"{name}: max abs difference {diff:.3g}")
    assert 0 <= diff < 1e-4
    meta = onnx_metadata(path)
    assert meta["lfmri_onnx_exporter"] == "torch.export"
    assert meta["lfmri_input_mode"] == card["input_mode"] and meta["lfmri_scale"] == "2"


def test_onnx_has_named_dynamic_axes_the_card_and_matches_on_the_whole_mni_slice(espcn_onnx):
    net, card, path = espcn_onnx
    model = onnx.load(str(path))
    (inp,), (out,) = model.graph.input, model.graph.output
    assert (inp.name, out.name) == ("image", "sr")
    assert inp.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert dims[1] == 1 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3]))
    assert onnx_card(path) == json.loads(json.dumps(card, default=str))
    assert onnx_card(path)["name"] == "espcn" and onnx_card(path)["parameters"] == 21_284

    images = reference_images(net)  # the full 1 mm middle axial slice, LR = 2x2 area means
    hr = mni_slice()
    assert images[0].shape == (1, 1, hr.shape[0] // 2, hr.shape[1] // 2) and 0 <= images[0].min() < images[0].max() <= 1
    diff = check_onnx(path, net, images)
    print(f"espcn on the MNI152 slice: max abs difference {diff:.3g}")
    assert diff < 1e-4


def test_a_file_that_disagrees_with_pytorch_is_rejected(espcn_onnx, brain_crop):
    net, _, path = espcn_onnx
    other = copy.deepcopy(net)
    with torch.no_grad():
        other.conv3.bias += 1e-3
    with pytest.raises(ExportError, match="ESPCN: onnxruntime differs from PyTorch by"):
        check_onnx(path, other, reference_images(other, brain_crop))


def test_existing_files_are_never_replaced_unless_asked(espcn_onnx, tmp_path):
    net, card, path = espcn_onnx
    target = tmp_path / "model.onnx"
    target.write_bytes(b"keep me")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export_onnx(net, target, card)
    scripted = tmp_path / "model.pt"
    scripted.write_bytes(b"keep me too")
    with pytest.raises(FileExistsError, match="overwrite=true"):
        export_torchscript(net, scripted, card)
    assert target.read_bytes() == b"keep me" and scripted.read_bytes() == b"keep me too"
    export_onnx(net, target, card, overwrite=True)
    assert onnx_card(target)["name"] == "espcn"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.pt"]  # no staging file left


@pytest.mark.parametrize("name, method", [("espcn", "script"), ("mrln", "trace")])
def test_torchscript_matches_pytorch_at_two_sizes(name, method, brain_crop, tmp_path):
    net, card = zoo_model(name)
    images = reference_images(net, brain_crop)
    path = export_torchscript(net, tmp_path / f"{name}.pt", card, images)
    meta = torchscript_metadata(path)
    assert meta["lfmri_torchscript"] == method  # MRLN's SROutput branch cannot be scripted; its trace must hold
    assert meta["card"]["name"] == name
    diff = check_torchscript(path, net, images)
    assert diff < 1e-4


class BakedWidth(nn.Module):
    """Not scriptable (numpy) and its trace freezes the width: TorchScript must be refused."""

    input_mode, scale = "upsampled", 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        ramp = torch.from_numpy(np.linspace(0, 1, x.shape[-1], dtype=np.float32))
        out = self.conv(x) + ramp
        return SROutput(out) if self.training else out


def test_torchscript_is_refused_with_the_reason_when_the_model_does_not_allow_it(tmp_path):
    net = BakedWidth()
    images = [torch.rand(1, 1, 12, 16), torch.rand(2, 1, 10, 14)]
    with pytest.raises(ExportError, match="BakedWidth cannot be exported to TorchScript: torch.jit.script failed .* torch.jit.trace"):
        export_torchscript(net, tmp_path / "baked.pt", None, images)
    assert not list(tmp_path.iterdir())


class Routed(nn.Module):
    """Data-dependent routing (like AMIR's experts): torch.export cannot capture it."""

    input_mode, scale = "upsampled", 2

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)

    def forward(self, x):
        y = self.conv(x).flatten()
        idx = torch.nonzero(y > 0, as_tuple=True)[0]
        if len(idx):
            y = y.index_add(0, idx, y[idx])
        return y.view(x.shape)


def test_models_torch_export_cannot_capture_go_through_the_legacy_exporter_and_are_checked(tmp_path):
    images = [torch.rand(1, 1, 12, 16), torch.rand(2, 1, 10, 14)]
    routed = Routed()
    path = export_onnx(routed, tmp_path / "routed.onnx", {"name": "routed"})
    assert onnx_metadata(path)["lfmri_onnx_exporter"] == "torchscript"
    assert check_onnx(path, routed, images) < 1e-4
    # the legacy exporter traces: a size frozen into the graph is caught at the second size
    baked = BakedWidth()
    path = export_onnx(baked, tmp_path / "baked.onnx", None)
    traced_size = example_input(baked)[:1]  # the size the exporter traced at still works
    assert check_onnx(path, baked, [traced_size]) < 1e-4
    with pytest.raises(ExportError, match=r"BakedWidth: onnxruntime failed on input \(2, 1, 10, 14\)"):
        check_onnx(path, baked, [traced_size, images[1]])


@pytest.mark.parametrize("name", ["../../escaped", "/abs/escaped", "..", "a/../../escaped", "..\\..\\escaped", "\x00"])
def test_an_export_named_by_a_hostile_card_stays_in_its_folder(tmp_path, name):
    from lfmri.export.exporters import output_paths

    out = tmp_path / "deep" / "exports"
    paths = output_paths(out, "both", {"name": name, "scale": "2/../../x"})
    for path in paths.values():
        assert path.parent == out and not path.name.startswith(".")


def test_export_of_a_checkpoint_with_a_traversal_name_writes_inside_the_output_folder(tmp_path):
    from lfmri.checkpoints.load import METADATA_KEY
    from lfmri.export.exporters import ExportConfig, export_checkpoint
    from tests.helpers.checkpoints import make_checkpoint

    ckpt = make_checkpoint(tmp_path / "a.ckpt", "model=espcn")
    checkpoint = torch.load(ckpt, weights_only=True)
    checkpoint[METADATA_KEY]["card"]["name"] = "../../escaped"
    torch.save(checkpoint, ckpt)
    out = tmp_path / "one" / "two" / "exports"
    done = export_checkpoint(ExportConfig(ckpt_path=str(ckpt), output_dir=str(out), format="torchscript"))
    assert done["torchscript"][0] == out / "escaped_x2.pt" and (out / "escaped_x2.pt").is_file()
    assert not list(tmp_path.glob("**/escaped*.pt"))[1:] and not (tmp_path / "one" / "escaped_x2.pt").exists()


def test_onnx_initializer_merges_are_not_logged_and_other_onnx_ir_lines_are(caplog):
    """onnx_ir's "Replaced initializer" INFO lines (one per merged constant) are dropped; only that message."""
    import logging

    from lfmri.export.onnx_file import INITIALIZER_LOGGER, _quiet

    with _quiet():
        pass  # installs the filter, as every export does
    dedup = logging.getLogger(INITIALIZER_LOGGER)
    with caplog.at_level(logging.INFO, logger=INITIALIZER_LOGGER):
        dedup.info("Replaced initializer '%s' with existing initializer '%s'", "val_3", "val_1")
        dedup.info("Deduplicated 2 initializers")
    assert [r.getMessage() for r in caplog.records] == ["Deduplicated 2 initializers"]


def test_the_written_opset_is_the_one_asked_for(tmp_path, monkeypatch):
    import lfmri.export.onnx_file as onnx_file
    from lfmri.export.onnx_file import ExportError, onnx_opset

    net, card = zoo_model("espcn")
    assert onnx_opset(export_onnx(net, tmp_path / "a.onnx", card, opset=19)) == 19
    real = onnx_file._export_dynamo
    monkeypatch.setattr(onnx_file, "_export_dynamo", lambda net, tmp, meta, opset: real(net, tmp, meta, None))  # ignores the request
    with pytest.raises(ExportError, match="opset=19 was asked but the exporter wrote opset"):
        export_onnx(net, tmp_path / "b.onnx", card, opset=19)
    assert not (tmp_path / "b.onnx").exists()
