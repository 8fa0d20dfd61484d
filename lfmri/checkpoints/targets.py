"""Which classes a checkpoint's config may name: the allow-list every stored ``_target_`` passes.

Plain data is not enough: Hydra's ``instantiate`` calls whatever a ``_target_`` names, so a stored
config is a program. :func:`check_targets` therefore checks every ``_target_`` in a checkpoint's
metadata before anything is built from it: it must be a class defined inside ``lfmri`` (or a
module prefix the user trusts explicitly, ``trust_targets=[mypkg.models]`` or
``LFMRI_TRUST_TARGETS=mypkg.models``), or one of the few training classes in :data:`FOREIGN_TARGETS`.
"""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping


class CheckpointError(ValueError):
    """A checkpoint that lfmri cannot use; the message names the file."""


OWN_NAMESPACE = "lfmri"
TRUST_ENV = "LFMRI_TRUST_TARGETS"  # comma-separated module prefixes whose classes checkpoints may name
# Classes outside lfmri that lfmri's own training configs name (optimizers, schedulers, losses, the
# Trainer and its callbacks/strategies/loggers), as {module as written: allowed names}. Only classes, looked
# up directly in that module: ``torch.optim.adam.torch.hub.load`` or a function never pass.
FOREIGN_TARGETS = {
    "torch.optim": "*",
    "torch.optim.lr_scheduler": "*",
    "torch.nn": "*Loss",
    "lightning.pytorch": "Trainer",
    "lightning.pytorch.callbacks": "*",
    "lightning.pytorch.strategies": "*",
    # logger=tensorboard stores TensorBoardLogger in every checkpoint's config; Lightning's other
    # loggers are allowed alike, so a run that names one in its logger group still evaluates
    "lightning.pytorch.loggers": "*Logger",
}
# lfmri functions that configs name as factories (everything else in lfmri must be a class)
OWN_FUNCTIONS = {"lfmri.training.wandb_logger.wandb_logger"}


_DOTTED = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")


def trusted_prefixes(extra: Iterable[str] | None = None) -> tuple[str, ...]:
    """``lfmri`` plus the module prefixes the user trusts (option ``trust_targets`` and ``$LFMRI_TRUST_TARGETS``)."""
    names = [OWN_NAMESPACE, *(extra or ()), *os.environ.get(TRUST_ENV, "").split(",")]
    prefixes = []
    for name in names:
        name = str(name).strip()
        if not name:
            continue
        if not _DOTTED.fullmatch(name):
            raise ValueError(f"trust_targets: {name!r} is not a module name like mypkg.models")
        prefixes.append(name)
    return tuple(dict.fromkeys(prefixes))


def _import_inside(prefix: str, parts: list[str]):
    """Import ``prefix`` and the longest run of its submodules named by ``parts``, never a module outside it.

    Returns (module, remaining parts). Submodules are found with ``find_spec`` on packages only, so a
    name such as ``lfmri.checkpoints.card.subprocess`` stops at ``lfmri.checkpoints.card`` with ``subprocess`` left over.
    """
    module = importlib.import_module(prefix)
    rest = list(parts)
    while len(rest) > 1 and hasattr(module, "__path__"):
        name = f"{module.__name__}.{rest[0]}"
        if importlib.util.find_spec(name) is None:
            break
        module = importlib.import_module(name)
        rest.pop(0)
    return module, rest


def target_problem(target: object, trusted: tuple[str, ...]) -> str | None:
    """Why ``target`` may not be instantiated from a checkpoint, or ``None`` when it may."""
    if not isinstance(target, str):
        return f"is a {type(target).__name__}, not a dotted class name"
    if not _DOTTED.fullmatch(target) or "." not in target:
        return "is not a dotted class name"
    module_name, _, name = target.rpartition(".")
    if module_name in FOREIGN_TARGETS:
        if not fnmatch.fnmatchcase(name, FOREIGN_TARGETS[module_name]):
            return f"is outside lfmri and not one of the allowed {module_name}.{FOREIGN_TARGETS[module_name]} classes"
        obj = getattr(importlib.import_module(module_name), name, None)
        root = ".".join(module_name.split(".")[:2])
        if not isinstance(obj, type) or not (obj.__module__ == root or obj.__module__.startswith(root + ".")):
            return f"is not a class of {root}"
        return None
    prefix = next((p for p in trusted if target.startswith(p + ".")), None)
    if prefix is None:
        return f"is outside lfmri and the trusted modules {list(trusted)} (see trust_targets in docs/security.md)"
    try:
        module, rest = _import_inside(prefix, target[len(prefix) + 1 :].split("."))
    except Exception as err:  # an import error of lfmri's own or a trusted module
        return f"cannot be imported ({type(err).__name__}: {err})"
    if len(rest) != 1 and not hasattr(module, rest[0]):
        return f"does not exist (no {module.__name__}.{rest[0]})"
    if len(rest) != 1:
        return f"reaches {'.'.join(rest)} through module {module.__name__}; name a class directly"
    obj = getattr(module, rest[0], None)
    if obj is None:
        return "does not exist"
    if not (getattr(obj, "__module__", "") == prefix or str(getattr(obj, "__module__", "")).startswith(prefix + ".")):
        return f"is {getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', rest[0])}, defined outside {prefix}"
    if not isinstance(obj, type) and target not in OWN_FUNCTIONS:
        return "is not a class"
    return None


def config_targets(node: object) -> set[str]:
    """Every ``_target_`` string at any depth of a config (what a run itself instantiates)."""
    found: set[str] = set()
    if isinstance(node, Mapping):
        for key, child in node.items():
            if key == "_target_" and isinstance(child, str):
                found.add(child)
            found |= config_targets(child)
    elif isinstance(node, (list, tuple)):
        for child in node:
            found |= config_targets(child)
    return found


def check_targets(
    node: object,
    source: str | os.PathLike,
    trust_targets: Iterable[str] | None = None,
    path: str = "",
    known_targets: Iterable[str] = (),
) -> None:
    """Refuse (:class:`CheckpointError`) any ``_target_`` at any depth of ``node`` that may not be built.

    Runs before anything is instantiated from a checkpoint; the message names the file, the key
    path and the target. ``known_targets``: exact names the caller instantiates anyway (train.py
    passes those of its own config, so a run with the user's own callback can resume itself).
    """
    trusted = trusted_prefixes(trust_targets)
    known = set(known_targets)

    def walk(value: object, where: str) -> None:
        if isinstance(value, Mapping):
            for key, child in value.items():
                here = f"{where}.{key}" if where else str(key)
                if key == "_target_":
                    problem = None if isinstance(child, str) and child in known else target_problem(child, trusted)
                    if problem:
                        raise CheckpointError(f"{source}: refused to build {here}={child!r}: it {problem}")
                walk(child, here)
        elif isinstance(value, (list, tuple)):
            for i, child in enumerate(value):
                walk(child, f"{where}[{i}]")

    walk(node, path)


INTERPOLATION = "${"


def check_inert(node: object, source: str | os.PathLike, path: str = "") -> None:
    """Refuse (:class:`CheckpointError`, one line naming the file and the key) any string holding ``${``
    at any depth of a stored config: a checkpoint stores its config resolved (``train.py`` writes
    ``OmegaConf.to_container(cfg, resolve=True)``), so an interpolation there was put in by hand, and
    OmegaConf would evaluate it when the config is read or built (``${oc.create:...}`` builds any
    ``_target_``, ``${oc.env:VAR}`` reads the environment). Refused rather than read as a literal:
    no value lfmri wrote can hold one, and a literal ``${...}`` would still reach constructors as a
    path or a name that means nothing; the user learns the file was edited instead of getting a
    quietly different run.
    """

    def walk(value: object, where: str) -> None:
        if isinstance(value, str):
            if INTERPOLATION in value:
                shown = value if len(value) <= 80 else value[:77] + "..."
                raise CheckpointError(f"{source}: refused {where or 'the config'}={shown!r}: a stored config holds "
                                      "plain values, and lfmri never evaluates an interpolation ${...} read from a file")
        elif isinstance(value, Mapping):
            for key, child in value.items():
                walk(key, where)
                walk(child, f"{where}.{key}" if where else str(key))
        elif isinstance(value, (list, tuple)):
            for i, child in enumerate(value):
                walk(child, f"{where}[{i}]")

    walk(node, path)
