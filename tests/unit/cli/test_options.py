"""The command-line grammar of predict, export and pretrained: bad options are one line, exit 2, before any work."""

from __future__ import annotations

import pytest

from lfmri.cli import predict
from lfmri.cli.export import parse_args as export_parse_args
from lfmri.cli.predict import parse_args
from tests.helpers.bad_volumes import SHAPE
from tests.helpers.cli import refusal
from tests.helpers.volumes import write_phantom


def test_bad_options_are_named(capsys):
    from tests.helpers.cli import refusal

    assert "tile_sise" in refusal(capsys, parse_args, ["ckpt_path=a", "inputs=[b]", "output_dir=c", "tile_sise=3"])
    assert "output_dir" in refusal(capsys, parse_args, ["ckpt_path=a", "inputs=[b]"])
    assert parse_args(["ckpt_path=a", "inputs=b.nii.gz", "output_dir=c"]).inputs == ["b.nii.gz"]


@pytest.mark.parametrize(("option", "message"), [
    ("batch_size=-2", "'batch_size'"), ("batch_size=0", "'batch_size'"), ("tile_size=0", "'tile_size'"),
    ("threads=0", "'threads'"), ("inputs=[]", "'inputs' is empty"), ("device=cuda:7", "'device'"),
    ("device=banana", "'device'"),
])
def test_predict_options_are_checked_before_any_work(tmp_path, capsys, bicubic_checkpoint, option, message):
    from lfmri.cli.predict import parse_args
    from tests.helpers.cli import refusal

    scan = write_phantom(tmp_path / "a.nii.gz", shape=SHAPE)
    args = [f"ckpt_path={bicubic_checkpoint}", f"inputs=[{scan}]", f"output_dir={tmp_path / 'out'}"]
    key = option.split("=")[0]
    assert message in refusal(capsys, parse_args, [a for a in args if not a.startswith(key + "=")] + [option])
    assert not (tmp_path / "out").exists()


def test_predict_help_prints_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        predict.parse_args(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    assert "ckpt_path" in text and "inputs" in text and "glob" in text


def test_cli_errors_name_the_option(capsys):
    assert "missing required option(s) ckpt_path or pretrained" in refusal(capsys, export_parse_args, ["output_dir=x"])
    assert "unknown option 'ckpt'" in refusal(capsys, export_parse_args, ["ckpt=a.ckpt", "output_dir=x"])
    assert "bad value for option 'format'" in refusal(capsys, export_parse_args, ["ckpt_path=a.ckpt", "output_dir=x", "format=tflite"])
    cfg = export_parse_args(["ckpt_path=a.ckpt", "output_dir=x", "format=both", "overwrite=true", "opset=18"])
    assert (cfg.format, cfg.overwrite, cfg.opset) == ("both", True, 18)


def test_values_are_taken_literally_never_interpolated(monkeypatch, tmp_path):
    """A file named with ``${oc.env:VAR}`` given as an input is that file: the variable is never read."""
    monkeypatch.setenv("LFMRI_TEST_SECRET", "s3cr3t-value")
    names = ["/d/${oc.env:LFMRI_TEST_SECRET}.nii.gz", "a\\${x}.nii", "b\\\\${x}.nii", "${oc.create:{a: 1}}"]
    quoted = ",".join(f"'{n}'" for n in names)  # YAML single quotes: backslashes as typed
    cfg = parse_args(["ckpt_path=x.ckpt", f"inputs=[{quoted}]", f"output_dir={tmp_path}"])
    assert cfg.inputs == names
    assert parse_args(["ckpt_path=${oc.env:LFMRI_TEST_SECRET}", "inputs=a.nii", f"output_dir={tmp_path}"]).ckpt_path == \
        "${oc.env:LFMRI_TEST_SECRET}"
