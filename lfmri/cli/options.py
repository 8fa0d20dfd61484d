"""One command-line grammar for the entry points that are not Hydra apps (predict, export, sweep,
pretrained, the IXI downloader): ``key=value`` options over a dataclass schema, as Hydra's.

Like ``train.py`` and ``evaluate.py`` they accept ``--help`` (the module's usage and every option
with its default) and ``--cfg job`` (the composed options as YAML, nothing run), and a mistake is
one line ``<prog>: error: <message>`` with exit status 2. Hydra apps would bring run directories,
logging set-up and output folders that these short commands do not want, so the grammar is kept
here, built on OmegaConf as Hydra's is.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import sys
import textwrap
import tokenize
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

T = TypeVar("T")


def fail(prog: str, message: str) -> None:
    """``<prog>: error: <message>`` on stderr and exit status 2 (argparse's and Hydra's convention)."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def descriptions(schema: type) -> dict[str, str]:
    """One line of description per field of the dataclass ``schema``, for ``--help``.

    Taken from ``field(metadata={"help": ...})`` where given, else from the comment on the field's
    line (``name: int = 1  # what it is``) or, when that line has none, the comment lines right above
    it: the options are documented where they are declared, once. Dataclasses have no field
    descriptions of their own and argparse's would need a second declaration of every option.
    """
    found: dict[str, str] = {}
    for cls in reversed(schema.__mro__):  # a subclass's comment wins over its base's
        if not dataclasses.is_dataclass(cls) or cls is object:
            continue
        try:
            lines, _ = inspect.getsourcelines(cls)
        except (OSError, TypeError):  # defined where no source is kept (an interactive session)
            continue
        source = textwrap.dedent("".join(lines))
        comments: dict[int, str] = {}  # line number in the class source -> comment text
        try:
            for token in tokenize.generate_tokens(io.StringIO(source).readline):
                if token.type == tokenize.COMMENT:
                    comments[token.start[0]] = token.string.lstrip("#").strip()
        except (tokenize.TokenError, IndentationError):
            continue
        body = ast.parse(source).body[0]
        text_lines = source.splitlines()
        for node in getattr(body, "body", []):
            if not isinstance(node, ast.AnnAssign) or not isinstance(node.target, ast.Name):
                continue
            line = node.end_lineno
            comment = comments.get(line, "")
            if not comment:  # comment lines directly above the field
                above, at = [], node.lineno - 1
                while at >= 1 and text_lines[at - 1].strip().startswith("#"):
                    above.insert(0, comments.get(at, ""))
                    at -= 1
                comment = " ".join(above)
            if comment:
                found[node.target.id] = comment
    for f in dataclasses.fields(schema):
        if f.metadata.get("help"):
            found[f.name] = str(f.metadata["help"])
    return found


# reStructuredText markup of the docstrings and comments --help shows: :func:`~a.b` and ``code``
_ROLE = re.compile(r":[a-z]+(?::[a-z]+)?:`(~?)([^`]+)`")
_LITERAL = re.compile(r"``(.+?)``")


def plain(text: str) -> str:
    """``text`` without reStructuredText markup, for a terminal: ``:func:`~a.b``` -> ``b``,
    ``:mod:`a.b``` -> ``a.b``, a double-backquoted literal -> the literal itself."""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return _LITERAL.sub(r"\1", text)


def usage(doc: str, schema: type, renamed: Mapping[str, str] | None = None) -> str:
    """The module docstring, then every option with its default (``(required)`` where it has none)
    and its description (:func:`descriptions`)."""
    structured = OmegaConf.structured(schema)
    values = OmegaConf.to_container(structured)
    helps = descriptions(schema)
    lines = []
    for name in structured:
        default = "(required)" if OmegaConf.is_missing(structured, name) else _shown(values[name])
        option = f"  {name}={default}"
        lines.append(f"{option:<28} {helps.get(name, '')}".rstrip())
    if renamed:
        lines.append("Old names, still accepted: " + ", ".join(f"{old}= (now {new}=)" for old, new in renamed.items()))
    return plain(f"{doc.strip()}\n\nOptions (key=value; --cfg job prints them composed):\n" + "\n".join(lines))


def _shown(value: Any) -> str:
    """A default as it is typed on the command line (``true``, ``null``, ``[a,b]``)."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_shown(v) for v in value) + "]"
    return str(value)


def rename_options(prog: str, argv: Sequence[str], renamed: Mapping[str, str]) -> list[str]:
    """``old=value`` words as ``new=value``, each with a one-line deprecation note on stderr.

    An option renamed so that every tool says the same (``output_dir``, ``inputs``, ``ckpt_path``)
    keeps working under its old name; giving both names is a mistake.
    """
    words = list(argv)
    for at, word in enumerate(words):
        key, sep, value = word.partition("=")
        if sep and key in renamed:
            new = renamed[key]
            if any(w.partition("=")[0] == new for w in words):
                fail(prog, f"option '{key}' is the old name of '{new}': give only {new}=")
            print(f"{prog}: note: option '{key}' is deprecated, use {new}={value}", file=sys.stderr, flush=True)
            words[at] = f"{new}={value}"
    return words


_ESCAPED = re.compile(r"(\\*)\$\{")


def literal(value: Any) -> Any:
    """``value`` (from :meth:`OmegaConf.from_dotlist`, unresolved) with every ``${`` escaped, at any depth.

    Options of these tools are paths, names and numbers, taken as typed: a file named
    ``scan_${oc.env:HOME}.nii.gz`` is that file, not an interpolation OmegaConf would evaluate when the
    options are read. OmegaConf reads ``\\${`` as a literal ``${`` and a run of backslashes before it
    as half as many backslashes (its escaping grammar), so each run is doubled and one more added.
    """
    if isinstance(value, str):
        return _ESCAPED.sub(lambda m: m[1] * 2 + "\\${", value)
    if isinstance(value, dict):
        return {k: literal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [literal(v) for v in value]
    return value


def parse_options(
    prog: str,
    schema: type[T],
    argv: Sequence[str],
    doc: str,
    required: Sequence[str] = (),
    lists: Sequence[str] = (),
    example: str = "",
    renamed: Mapping[str, str] | None = None,
) -> T:
    """``argv`` (``key=value`` words) merged over the dataclass ``schema``.

    Args:
        prog: the command as users type it, for messages (``lfmri-predict``).
        schema: a dataclass; its fields are the options and their defaults.
        argv: the words after the command.
        doc: the usage text ``--help`` prints above the options.
        required: option names that must be given (a name may read ``a|b``: one of them).
        lists: list options that also take one bare value (``inputs=scan.nii.gz`` is ``[scan.nii.gz]``).
        example: a full command line, added to the message about a missing option.
        renamed: old option names and their new ones (:func:`rename_options`).
    """
    argv = list(argv)
    if any(word in ("-h", "--help", "help") for word in argv):
        print(usage(doc, schema, renamed))
        raise SystemExit(0)
    argv = rename_options(prog, argv, renamed or {})
    show = False
    if "--cfg" in argv:
        at = argv.index("--cfg")
        if argv[at + 1 : at + 2] != ["job"]:
            fail(prog, "--cfg takes 'job' (print the composed options and exit)")
        del argv[at : at + 2]
        show = True
    names = [f.name for f in dataclasses.fields(schema)]
    bare = [word for word in argv if "=" not in word]
    if bare:
        fail(prog, f"expected key=value options, got {bare[0]!r} (options: {', '.join(names)}; --help lists them)")
    try:
        # values are taken literally: no ${...} typed on the command line (or in a file name) is evaluated
        given = OmegaConf.create(literal(OmegaConf.to_container(OmegaConf.from_dotlist(argv), resolve=False)))
        for key in lists:
            if isinstance(given.get(key), str):
                given[key] = [given[key]]
        cfg = OmegaConf.merge(OmegaConf.structured(schema), given)
    except ConfigKeyError as err:
        fail(prog, f"unknown option '{getattr(err, 'key', None) or err}' (options: {', '.join(names)})")
    except OmegaConfBaseException as err:
        key = getattr(err, "full_key", None) or getattr(err, "key", None)
        message = str(getattr(err, "msg", err)).strip().splitlines()[0]
        fail(prog, f"bad value for option '{key}': {message}")
    missing = [
        name for name in required
        if all(OmegaConf.is_missing(cfg, one) or cfg.get(one) is None for one in name.split("|"))
    ]
    if show:
        print(OmegaConf.to_yaml(cfg), end="")
        raise SystemExit(0)
    if missing:
        readable = [" or ".join(name.split("|")) for name in missing]
        fail(prog, f"missing required option(s) {', '.join(readable)}" + (f" (e.g. {prog} {example})" if example else ""))
    try:
        return OmegaConf.to_object(cfg)
    except ValueError as err:  # a schema's __post_init__ refusing a value it cannot honour, naming the option
        fail(prog, str(err))


def parse_command(
    prog: str,
    commands: Mapping[str, tuple[type, Mapping[str, Any]]],
    argv: Sequence[str],
    doc: str,
) -> tuple[str, Any]:
    """A sub-command word then its ``key=value`` options: ``prog COMMAND key=value ...``.

    ``commands`` maps each command to its schema and the keyword arguments of
    :func:`parse_options` (``required``, ``lists``, ``example``, ``renamed``). Returns (command, options).
    """
    argv = list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        listing = "\n".join(f"  {prog} {name} --help" for name in commands)
        print(plain(f"{doc.strip()}\n\nCommands:\n{listing}"))
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command not in commands:
        fail(prog, f"unknown command {command!r}; expected one of {', '.join(commands)}")
    schema, options = commands[command]
    return command, parse_options(f"{prog} {command}", schema, rest, doc, **options)
