"""What the two Hydra apps (``lfmri-train``, ``lfmri-evaluate``) share: where their configs are, and
a ``--help`` with one line per option.

The configs live in ``conf/`` of the source tree, beside the ``lfmri`` package: the editable install
(``pip install -e .``, what ``make install`` and the Docker image do) is the supported one, and the
console scripts find ``conf/`` from the package's own location, whatever the working directory.

``--help`` is built here from the comments of ``conf/<app>.yaml`` (the options are documented where
they are declared, once) and from the group folders of ``conf/``; it reads text files only, so it
takes a fraction of a second and imports neither torch nor Lightning. Hydra's own help, which prints
the composed config without its comments, stays available as ``--hydra-help``.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

from lfmri.cli.options import plain

CONF_DIR = Path(__file__).resolve().parents[2] / "conf"

# a YAML line "key: value  # comment" (value and comment optional), and a comment-only line
_KEY = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_][\w.-]*):\s*(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")
_GROUP = re.compile(r"^\s*-\s*(?:override\s+)?(?P<group>[\w/]+):\s*(?P<value>[^#]*?)\s*(?:#\s?(?P<comment>.*))?$")
_COMMENT = re.compile(r"^\s*#\s?(?P<comment>.*)$")


def prog_name(default: str) -> str:
    """The command as the user typed it: ``lfmri-train``, ``train.py`` or ``python -m lfmri.cli.train``."""
    name = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else ""
    return name if name and name not in ("-c", "__main__.py", "-m") else default


def yaml_options(path: Path) -> tuple[list[tuple[str, str, str]], list[tuple[str, str, str]]]:
    """(groups, options) of an app's config file: (name, default, description) each.

    Options are the leaves of the file outside ``hydra:`` and ``defaults:`` (nested keys dotted,
    ``extras.print_config``); a description is the key's end-of-line comment joined with the
    comment-only lines indented below it (a comment that goes on).
    """
    groups: list[tuple[str, str, str]] = []
    options: list[tuple[str, str, str]] = []
    stack: list[tuple[int, str]] = []  # (indent, key) of the open mappings
    section = ""
    last: list | None = None  # the entry a continuation comment belongs to
    for line in path.read_text().splitlines():
        if not line.strip():
            last = None
            continue
        comment = _COMMENT.match(line)
        if comment:
            if last is not None and line.startswith(" "):
                last[2] = f"{last[2]} {comment['comment'].strip()}".strip()
            continue
        indent = len(line) - len(line.lstrip())
        if section == "defaults" and indent > 0 or (section == "defaults" and line.lstrip().startswith("-")):
            group = _GROUP.match(line)
            if group and group["group"] != "_self_":
                last = [group["group"], group["value"] or "null", (group["comment"] or "").strip()]
                groups.append(last)
            continue
        match = _KEY.match(line)
        if not match:
            last = None
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if indent == 0:
            section = match["key"]
        if section in ("hydra", "defaults"):
            last = None
            continue
        dotted = ".".join([*(k for _, k in stack), match["key"]])
        if match["value"] == "":  # a mapping: its keys follow, indented
            stack.append((indent, match["key"]))
            last = None
            continue
        last = [dotted, match["value"], (match["comment"] or "").strip()]
        options.append(last)
    return [tuple(g) for g in groups], [tuple(o) for o in options]


def group_choices(group: str) -> str:
    """The options of a config group: the YAML files of ``conf/<group>/``."""
    folder = CONF_DIR / group
    names = sorted(p.stem for p in folder.glob("*.yaml")) if folder.is_dir() else []
    return " | ".join(names)


def app_help(app: str, doc: str) -> str:
    """``--help`` of a Hydra app: its docstring, its groups with their choices, its options."""
    groups, options = yaml_options(CONF_DIR / f"{app}.yaml")
    width = 30  # a longer name=default pushes its description to the right
    lines = [doc.strip(), ""]
    if groups:
        lines.append("Groups (group=option; one YAML file each under conf/<group>/):")
        for name, value, comment in groups:
            choices = group_choices(name)
            text = "; ".join(part for part in (choices, comment) if part)
            lines.append(f"  {f'{name}={value}':<{width - 1}} {text}".rstrip())
        lines.append("")
    lines.append("Options (key=value):")
    for name, value, comment in options:
        lines.append(f"  {f'{name}={value}':<{width - 1}} {comment}".rstrip())
    example = " (e.g. trainer.max_steps=100, data.pattern=...)" if groups else ""
    lines += [
        "",
        f"Any key of the composed config takes key=value the same way{example}: --cfg job prints them all;"
        " --hydra-help shows Hydra's own options (-m multirun, hydra.run.dir=...).",
    ]
    return plain("\n".join(lines))


def run_app(app: str, doc: str, hydra_main: Callable[[], object]) -> None:
    """Start the Hydra app ``hydra_main`` after answering ``--help`` and checking that ``conf/`` is there."""
    if any(word in ("-h", "--help") for word in sys.argv[1:]):
        print(app_help(app, doc))
        raise SystemExit(0)
    if not (CONF_DIR / f"{app}.yaml").is_file():
        print(f"{prog_name(app)}: error: the configs are not at {CONF_DIR}: lfmri's Hydra apps read conf/ of the source "
              "tree; install lfmri from a checkout with pip install -e <checkout>", file=sys.stderr)
        raise SystemExit(2)
    hydra_main()
