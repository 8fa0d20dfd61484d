"""``lfmri.export.options``: values no export can honour are refused before any work."""

from __future__ import annotations

import pytest

from lfmri.cli.export import parse_args
from lfmri.export.options import MAX_OPSET, MIN_OPSET


@pytest.mark.parametrize(("option", "named"), [("opset=1", "opset=1"), ("opset=99", "opset=99"), ("tolerance=nan", "tolerance=nan"),
                                               ("tolerance=-1", "tolerance=-1"), ("tolerance=0", "tolerance=0"),
                                               ("tolerance=inf", "tolerance=inf")])
def test_an_option_no_export_can_honour_is_one_line_before_the_export(option, named, capsys):
    with pytest.raises(SystemExit) as stopped:
        parse_args(["ckpt_path=x.ckpt", "output_dir=out", option])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and named in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_the_opset_range_is_torchs():
    from torch.onnx import _constants

    assert MAX_OPSET == _constants.ONNX_MAX_OPSET
    assert parse_args(["ckpt_path=x.ckpt", "output_dir=out", f"opset={MIN_OPSET}"]).opset == MIN_OPSET
