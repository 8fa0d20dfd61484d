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

import os
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
        launchers = group_choices("hydra/launcher")
        if launchers:  # where a sweep's jobs run (with -m): Hydra's group, lfmri's options for it
            lines.append(f"  {'hydra/launcher=basic':<{width - 1}} basic | {launchers}; with -m: where the jobs of a sweep run"
                         " (basic: one after the other here; docs/scale-out.md)")
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


def _groups(app: str) -> list[str]:
    """The config groups of an app: the groups of its defaults list and the other folders of ``conf/``."""
    groups, _ = yaml_options(CONF_DIR / f"{app}.yaml")
    folders = sorted(p.name for p in CONF_DIR.iterdir() if p.is_dir() and p.name != "hydra")
    return list(dict.fromkeys([*(g for g, _, _ in groups), *folders]))


def _user_overrides(argv: list[str]) -> list[str]:
    return [a for a in argv if "=" in a and not a.startswith("-")]


def config_mistake(app: str, argv: list[str], error: BaseException) -> str:
    """One line for a command line that Hydra could not compose into a config (``error``): the override
    at fault, what is wrong and the valid or closest names. Hydra's own report is several lines with
    an environment-variable hint, and a null group option even a traceback."""
    import difflib

    from hydra.errors import MissingConfigException

    groups = _groups(app)
    _, options = yaml_options(CONF_DIR / f"{app}.yaml")
    keys = [*groups, *(name.split(".")[0] for name, _, _ in options)]
    text = str(error)
    if isinstance(error, MissingConfigException) and getattr(error, "missing_cfg_file", None):
        group, _, option = str(error.missing_cfg_file).rpartition("/")
        given = next((a for a in _user_overrides(argv) if a.lstrip("+~").split("=")[0].split("@")[0] == group), f"{group}={option}")
        choices = group_choices(group).split(" | ") if group else []
        close = difflib.get_close_matches(option, choices, n=1)
        hint = f" (did you mean {group}={close[0]}?)" if close else ""
        return f"{given}: {group} has no option {option!r}{hint}; options: {' | '.join(choices) or 'none'}"
    if "Config group override must be a string or a list" in text:
        nulls = [a for a in _user_overrides(argv) if a.split("=", 1)[1] in ("null", "~", "") and a.lstrip("+").split("=")[0] in groups]
        given = nulls[0] if nulls else "a config group"
        group = given.lstrip("+").split("=")[0]
        return (f"{given}: a config group takes one of its options ({group_choices(group)}); "
                f"to drop the group's default, write ~{group}")
    first, *rest = [line.strip() for line in text.splitlines() if line.strip()]
    unknown = re.match(r"Could not override '([^']+)'", first)
    if unknown:
        head = unknown.group(1).split(".")[0]
        close = difflib.get_close_matches(head, keys, n=1)
        hint = f"did you mean {close[0]}? " if close and close[0] != head else ""
        return f"{unknown.group(1)}: no such option; {hint}to add a new key write +{unknown.group(1)}=... (--help lists the options)"
    first = resolver_message(first)
    return "; ".join([first, *(line for line in rest[:2] if not line.startswith(("full_key:", "object_type=")))])


def resolver_message(text: str) -> str:
    """A resolver's own message, without the ``ValueError raised while resolving interpolation: `` OmegaConf
    puts before it (the text OmegaConf keeps of a resolver's error)."""
    return re.sub(r"^\w+ raised while resolving interpolation: ", "", text)


def check_group_options(app: str, argv: list[str]) -> None:
    """Every option named for a config group of ``conf/`` exists, checked before Hydra starts: a sweep
    with a misspelt option would otherwise leave its new sweep folder behind (Hydra creates it before
    composing the jobs). Raises Hydra's ``MissingConfigException`` (reported by :func:`config_mistake`)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import HydraException, MissingConfigException

    if any(a.startswith(("-cd", "--config-dir", "hydra.searchpath", "+hydra.searchpath")) for a in argv):
        return  # options may come from elsewhere: Hydra decides
    groups = set(_groups(app))
    for text in _user_overrides(argv):
        try:
            override = OverridesParser.create().parse_override(text)
        except HydraException:
            return  # a syntax error: Hydra's own message
        group = override.key_or_group
        if group not in groups or override.is_delete() or override.value_type is None:
            continue
        if override.is_sweep_override():
            if override.is_discrete_sweep() and "glob" not in text:
                values = list(override.sweep_string_iterator())
            else:
                continue
        else:
            value = override.value()
            values = value if isinstance(value, list) else [value]
        for value in values:
            if isinstance(value, str) and not (CONF_DIR / group / f"{value}.yaml").is_file():
                raise MissingConfigException(f"Could not find '{group}/{value}'", missing_cfg_file=f"{group}/{value}")


def _raised_in_a_job(error: BaseException) -> bool:
    """Whether ``error`` came out of a job (a frame of Hydra's ``run_job`` in its traceback: the test
    Hydra itself uses to trim its reports), not out of composing the config."""
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_name == "run_job":
            return True
        tb = tb.tb_next
    return False


def run_app(app: str, doc: str, hydra_main: Callable[[], object]) -> None:
    """Start the Hydra app ``hydra_main`` after answering ``--help`` and checking that ``conf/`` is there.

    A command line that does not compose into a config (an unknown group option, ``logger=null``, a key
    that is not there) is one line and exit status 2 (:func:`config_mistake`); Hydra is asked to raise
    its errors for that (``HYDRA_FULL_ERROR``), and an error raised inside a job is not a command-line
    mistake: it is raised as it is. A user's own ``HYDRA_FULL_ERROR=1`` keeps Hydra's
    tracebacks throughout.
    """
    if any(word in ("-h", "--help") for word in sys.argv[1:]):
        print(app_help(app, doc))
        raise SystemExit(0)
    if not (CONF_DIR / f"{app}.yaml").is_file():
        print(f"{prog_name(app)}: error: the configs are not at {CONF_DIR}: lfmri's Hydra apps read conf/ of the source "
              "tree; install lfmri from a checkout with pip install -e <checkout>", file=sys.stderr)
        raise SystemExit(2)
    user_full_error = os.environ.get("HYDRA_FULL_ERROR") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"
    try:
        if not user_full_error:  # a user's HYDRA_FULL_ERROR=1: Hydra's own report, untouched
            check_group_options(app, sys.argv[1:])
        hydra_main()
    except Exception as error:  # noqa: BLE001 - Hydra's composition errors have no common base class
        if user_full_error or _raised_in_a_job(error):
            raise
        print(f"{prog_name(app)}: error: {config_mistake(app, sys.argv[1:], error)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None
    finally:
        if not user_full_error:
            os.environ.pop("HYDRA_FULL_ERROR", None)
