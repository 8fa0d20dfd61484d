"""The import graph of lfmri runs one way: a package imports only packages of a lower layer.

Checked on the source (every ``import`` statement, also those inside functions), so a lazy import
cannot hide an arrow that runs back up. Modules of one package may import each other.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "lfmri"

# lowest first; a module may import its own package and anything of a strictly lower layer
LAYERS = [
    {"lfmri", "lfmri.errors"},
    {"lfmri.contracts", "lfmri.files", "lfmri.progress", "lfmri.pretrained", "lfmri.run_options"},
    {"lfmri.geometry"},
    {"lfmri.degrade"},
    {"lfmri.data", "lfmri.models", "lfmri.losses"},
    {"lfmri.scoring"},
    {"lfmri.checkpoints"},
    {"lfmri.export"},
    {"lfmri.inference"},
    {"lfmri.modules"},
    {"lfmri.training"},
    {"lfmri.evaluation"},
    {"lfmri.cli"},
]


def unit(module: str) -> str:
    """The package (or top-level module) of ``module`` that the layers name."""
    names = {name for layer in LAYERS for name in layer}
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in names:
            return ".".join(parts[:n])
    raise KeyError(f"{module} is in no layer of tests/unit/test_layers.py; add it")


def layer(module: str) -> int:
    name = unit(module)
    return next(i for i, members in enumerate(LAYERS) if name in members)


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every lfmri module ``path`` imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "lfmri"}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "lfmri":
            found.add(node.module)
            # ``from lfmri.inference import consistency`` imports lfmri.inference.consistency
            found |= {f"{node.module}.{a.name}" for a in node.names if (PACKAGE.parent / Path(*node.module.split("."), f"{a.name}.py")).exists()}
    return found


def arrows() -> list[tuple[str, str]]:
    return [(module_name(p), target) for p in sorted(PACKAGE.rglob("*.py")) for target in sorted(imports(p))]


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer(module_name(path))


def test_no_import_runs_up_or_sideways():
    wrong = [
        f"{source} (layer {layer(source)}) imports {target} (layer {layer(target)})"
        for source, target in arrows()
        if unit(source) != unit(target) and layer(target) >= layer(source) and target != "lfmri"
    ]
    assert not wrong, "imports against the layers:\n" + "\n".join(wrong)


def test_the_rule_refuses_upward_and_sideways_imports():
    """Geometry importing a model runs up; data importing a model runs sideways: both refused."""
    for source, target in [("lfmri.geometry.grid", "lfmri.models.srdensenet"), ("lfmri.data.datamodule", "lfmri.models.srdensenet")]:
        assert unit(source) != unit(target) and layer(target) >= layer(source)
    assert layer("lfmri.inference.network") > layer("lfmri.checkpoints.load")
