"""The test suite's own layout: helpers / unit / e2e, the ``e2e`` mark, one config composer.

Checked on the source with ``ast`` (imports at any depth, also inside functions):

- test modules import shared code from ``tests.helpers`` only, never from another test module,
  from ``tests.conftest`` or from ``tests.unit`` / ``tests.e2e``;
- every module under ``tests/e2e`` is marked ``pytestmark = pytest.mark.e2e`` and nothing under
  ``tests/unit`` carries the mark, so ``pytest -m "not e2e"`` is exactly the unit tests;
- test modules sit in ``tests/unit`` or ``tests/e2e``, in folders that are packages;
- Hydra's ``compose`` / ``initialize*`` are called in ``tests/helpers/config.py`` alone.
"""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
HELPERS = TESTS / "helpers"
COMPOSER = HELPERS / "config.py"


def all_test_modules() -> list[Path]:
    return sorted(TESTS.rglob("test_*.py"))


def python_files() -> list[Path]:
    return sorted(p for p in TESTS.rglob("*.py") if "conf" not in p.relative_to(TESTS).parts[:-1])


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports (``from a.b import c`` gives ``a.b`` and ``a.b.c``), relative ones resolved."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package of ``path`` (a file under tests/)
                package = path.relative_to(TESTS.parent).with_suffix("").parts[:-1]
                parent = list(package[: len(package) - node.level + 1])
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return found


def forbidden(module: str) -> bool:
    """A test module's import of ``module`` that goes to another test module (or conftest)."""
    parts = module.split(".")
    if parts[0] != "tests" or len(parts) == 1:
        return False
    if parts[1] == "helpers":
        return False
    return parts[1] in ("conftest", "unit", "e2e") or parts[1].startswith("test_")


def module_marks(path: Path) -> list[str]:
    """The marks of ``pytestmark = ...`` at module level (a single mark or a list of them)."""
    marks = []
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets):
            values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) else [node.value]
            marks += [ast.unparse(v) for v in values]
    return marks


def mentions_e2e(path: Path) -> bool:
    """Whether ``pytest.mark.e2e`` appears anywhere in the module (decorators, pytestmark, params)."""
    return any(
        isinstance(node, ast.Attribute) and node.attr == "e2e" and ast.unparse(node.value).endswith("mark")
        for node in ast.walk(ast.parse(path.read_text()))
    )


def test_no_test_module_imports_another_test_module():
    wrong = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path in python_files()
        for module in sorted(imported_modules(path))
        if forbidden(module) and not forbidden(module.rpartition(".")[0])  # ``from tests.test_x import y``: once
    ]
    assert not wrong, "import shared code from tests.helpers instead:\n" + "\n".join(wrong)


def test_every_e2e_module_is_marked_and_no_unit_module_is():
    e2e = [p for p in all_test_modules() if p.is_relative_to(TESTS / "e2e")]
    unit = [p for p in all_test_modules() if p.is_relative_to(TESTS / "unit")]
    assert e2e and unit
    unmarked = [str(p.relative_to(TESTS)) for p in e2e if "pytest.mark.e2e" not in module_marks(p)]
    assert not unmarked, "add `pytestmark = pytest.mark.e2e` to:\n" + "\n".join(unmarked)
    marked = [str(p.relative_to(TESTS)) for p in unit if mentions_e2e(p)]
    assert not marked, "unit tests must not be marked e2e (move them to tests/e2e):\n" + "\n".join(marked)


def test_test_modules_live_in_unit_or_e2e_packages():
    for path in all_test_modules():
        relative = path.relative_to(TESTS)
        assert relative.parts[0] in ("unit", "e2e"), f"{relative}: put it under tests/unit or tests/e2e"
        for folder in path.parents:
            if folder == TESTS.parent:
                break
            assert (folder / "__init__.py").is_file(), f"{folder.relative_to(TESTS.parent)} needs an __init__.py"


def test_hydra_composes_in_the_one_composer_only():
    composing = {"hydra.compose", "hydra.initialize", "hydra.initialize_config_dir", "hydra.initialize_config_module"}
    others = [
        f"{path.relative_to(TESTS)} imports {module}"
        for path in python_files()
        if path != COMPOSER
        for module in sorted(imported_modules(path) & composing)
    ]
    assert not others, "compose configs with tests.helpers.config.compose:\n" + "\n".join(others)
    assert composing & imported_modules(COMPOSER)


def test_the_checks_catch_what_they_are_for(tmp_path):
    """A sideways import, an unmarked e2e module and a marked unit module are all found."""
    for module in ("tests.test_end_to_end", "tests.conftest", "tests.e2e.test_usage", "tests.unit.models.test_zoo"):
        assert forbidden(module), module
    for module in ("tests.helpers.run", "tests", "lfmri.tests", "pytest"):
        assert not forbidden(module), module
    sample = tmp_path / "sample.py"
    sample.write_text("import pytest\nfrom tests.e2e import test_usage\npytestmark = [pytest.mark.slow, pytest.mark.e2e]\n")
    assert "tests.e2e.test_usage" in imported_modules(sample) and any(map(forbidden, imported_modules(sample)))
    assert module_marks(sample) == ["pytest.mark.slow", "pytest.mark.e2e"] and mentions_e2e(sample)
    sample.write_text("import pytest\n\n@pytest.mark.e2e\ndef test_x():\n    pass\n")
    assert module_marks(sample) == [] and mentions_e2e(sample)
