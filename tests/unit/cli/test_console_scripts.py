"""Every console script of pyproject.toml: ``--help`` answers without importing torch, from any
directory, and describes every option in one line (speed itself is printed by
``benchmarks/cli_help.py``, not asserted)."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib

import pytest

from lfmri.cli.apps import CONF_DIR, yaml_options
from lfmri.cli.options import descriptions
from tests.helpers.run import ROOT

SCRIPTS = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
# the words after the command that ask for help (tools with sub-commands: the help of one of them)
HELP_WORDS = {"lfmri-sweep": ["summarize", "--help"], "lfmri-pretrained": ["pack", "--help"]}

# runs the entry point as the console script does (sys.argv set, function called), from another
# directory; prints whether torch was imported
PROBE = """
import importlib, sys
module, function = sys.argv[1].split(":")
sys.argv = [sys.argv[2], *sys.argv[3:]]
try:
    getattr(importlib.import_module(module), function)()
except SystemExit as done:
    assert done.code in (0, None), done.code
print("TORCH_IMPORTED" if "torch" in sys.modules else "NO_TORCH")
"""


def test_the_five_tools_have_console_scripts():
    assert {"lfmri-train", "lfmri-evaluate", "lfmri-predict", "lfmri-export", "lfmri-sweep"} <= set(SCRIPTS)


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_imports_no_torch(script, tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROBE, SCRIPTS[script], script, *HELP_WORDS.get(script, ["--help"])],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip().endswith("NO_TORCH"), proc.stdout[-3000:]
    assert "Options" in proc.stdout and "=" in proc.stdout
    assert "``" not in proc.stdout and ":func:`" not in proc.stdout and ":class:`" not in proc.stdout  # no reStructuredText


def test_every_option_of_every_tool_has_a_description():
    from lfmri.cli.pretrained import COMMANDS
    from lfmri.cli.sweep import SummarizeOptions
    from lfmri.export.options import ExportConfig
    from lfmri.inference.options import PredictConfig

    schemas = [PredictConfig, ExportConfig, SummarizeOptions, *(schema for schema, _ in COMMANDS.values())]
    for schema in schemas:
        helps = descriptions(schema)
        undocumented = [f.name for f in dataclasses.fields(schema) if not helps.get(f.name)]
        assert not undocumented, f"{schema.__name__}: add a comment to {undocumented}"
    for app in ("train", "evaluate"):
        groups, options = yaml_options(CONF_DIR / f"{app}.yaml")
        undocumented = [name for name, _, text in options if not text]
        assert options and not undocumented, f"conf/{app}.yaml: add a comment to {undocumented}"
        assert app != "train" or {"data", "model", "experiment"} <= {name for name, _, _ in groups}


def test_descriptions_come_from_metadata_comments_and_comment_lines():
    @dataclasses.dataclass
    class Sample:
        a: int = 1  # the first
        # the second, described
        # on two lines
        b: int = 2
        c: int = dataclasses.field(default=3, metadata={"help": "the third"})  # not this

    assert descriptions(Sample) == {"a": "the first", "b": "the second, described on two lines", "c": "the third"}


def test_an_old_option_name_works_with_a_note_and_clashes_with_its_new_name(capsys):
    from lfmri.cli.export import parse_args

    cfg = parse_args(["ckpt_path=a.ckpt", "output=x"])
    assert cfg.output_dir == "x"
    assert "option 'output' is deprecated, use output_dir=x" in capsys.readouterr().err
    with pytest.raises(SystemExit) as refused:
        parse_args(["ckpt_path=a.ckpt", "output=x", "output_dir=y"])
    assert refused.value.code == 2
    assert "give only output_dir=" in capsys.readouterr().err


@pytest.mark.parametrize(("script", "expected"), [("lfmri-train", "seed: 42"), ("lfmri-evaluate", "tile_size: 256")])
def test_the_hydra_apps_find_their_configs_from_any_directory(script, expected, tmp_path):
    """Started as a console script outside the checkout, the app composes conf/ of the package."""
    proc = subprocess.run([sys.executable, "-c", PROBE, SCRIPTS[script], script, "--cfg", "job"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert expected in proc.stdout and not list(tmp_path.iterdir())  # nothing written where it was started


def test_help_text_loses_restructuredtext_markup():
    from lfmri.cli.options import plain

    assert plain("run ``python train.py`` (:func:`~lfmri.training.run.train`, :mod:`lfmri.cli`)") == \
        "run python train.py (train, lfmri.cli)"
    assert plain("a `markdown` word and a ``literal``") == "a `markdown` word and a literal"
