"""Which checkpoints an evaluation compares, whether they may be compared, and their table names."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from lfmri.checkpoints.stored_run import StoredRun
from lfmri.data.splits import Segment, split_from_dict
from lfmri.errors import ConfigError
from lfmri.pretrained import checkpoint_path

log = logging.getLogger(__name__)

CHECKPOINT_OPTIONS = (
    "ckpt_path=PATH (one checkpoint), pretrained=NAME (a shipped network: python -m lfmri.pretrained list) "
    "or ckpt_paths='[a.ckpt,b.ckpt]' (a comparison)"
)


def checkpoint_paths(cfg: DictConfig) -> list[Path]:
    """The checkpoints named by exactly one of ``ckpt_path``, ``pretrained`` and ``ckpt_paths``."""
    single, several, shipped = cfg.get("ckpt_path"), cfg.get("ckpt_paths"), cfg.get("pretrained")
    given = [x for x in (single, several, shipped) if x is not None]
    if len(given) != 1:
        raise ConfigError(f"give exactly one of {CHECKPOINT_OPTIONS}; got {('neither', '', 'both', 'all three')[len(given)]}")
    if shipped is not None:
        return [checkpoint_path(str(shipped))]
    if single is not None:
        return [Path(str(single))]
    if isinstance(several, str) or not several:
        raise ConfigError(
            f"ckpt_paths must be a non-empty list, e.g. ckpt_paths='[a.ckpt,b.ckpt]' "
            f"(or ckpt_path=PATH for one checkpoint); got {several!r}"
        )
    paths = [Path(str(p)) for p in several]
    resolved = [p.resolve() for p in paths]
    repeated = sorted({str(p) for p, r in zip(paths, resolved) if resolved.count(r) > 1})
    if repeated:
        raise ConfigError(f"ckpt_paths names the same checkpoint more than once: {', '.join(repeated)}")
    return paths


def shared_settings(config: Mapping) -> dict[str, Any]:
    """What compared checkpoints must share (dotted keys): scale, degradation, normalisation, slice axis."""
    data = config.get("data") or {}
    return {
        "scale": config.get("scale"),
        **{f"degradation.{k}": v for k, v in (config.get("degradation") or {}).items()},
        "data.slice_axis": data.get("slice_axis"),
        "data.percentiles": data.get("percentiles"),
    }


def check_comparable(paths: Sequence[Path], runs: Sequence[StoredRun]) -> None:
    """Fail, naming both files and every differing key, unless all share the first's settings."""
    missing = "<unset>"
    reference = shared_settings(runs[0].meta["config"])
    problems = []
    for path, run in zip(paths[1:], runs[1:]):
        settings = shared_settings(run.meta["config"])
        differing = [
            f"    {key}: {reference.get(key, missing)!r} vs {settings.get(key, missing)!r}"
            for key in dict.fromkeys([*reference, *settings])
            if reference.get(key, missing) != settings.get(key, missing)
        ]
        if differing:
            problems.append(f"  {path} differs from {paths[0]} in\n" + "\n".join(differing))
    if problems:
        raise ConfigError(
            "cannot compare checkpoints trained with different degradation, scale or data "
            f"normalisation/slice axis (the first, {paths[0]}, fixes them):\n" + "\n".join(problems)
        )


def check_unseen(test: Sequence[Segment], paths: Sequence[Path], runs: Sequence[StoredRun]) -> None:
    """Fail when a compared checkpoint trained or validated on slices of the first one's test split."""
    problems = []
    for path, run in zip(paths[1:], runs[1:]):
        split = run.split
        if not split:
            log.warning("%s stores no data split: cannot check that it never saw the test slices", path)
            continue
        seen = split_from_dict(split)
        overlap = sorted({
            t.subject
            for t in test
            for s in (*seen["train"], *seen["val"])
            if s.subject == t.subject and max(s.start, t.start) < min(s.stop, t.stop)
        })
        if overlap:
            problems.append(f"  {path} trained or validated on {overlap}")
    if problems:
        raise ConfigError(
            f"the test split of {paths[0]} is not unseen by every compared checkpoint:\n" + "\n".join(problems)
            + "\nevaluate on volumes none of them saw with inputs='[a.nii.gz,...]'"
        )


def run_label(path: Path, level: int) -> str:
    """Increasingly specific labels for where a checkpoint lives: its run directory name, then
    that name and the file stem, then the whole path."""
    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    return (run.name, f"{run.name}/{path.stem}", str(path))[level]


def job_overrides(path: Path) -> list[str] | None:
    """The command-line overrides of the run a checkpoint belongs to (``.hydra/overrides.yaml``)."""
    import yaml

    run = path.parent.parent if path.parent.name == "checkpoints" else path.parent
    file = run / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return None
    return [str(o) for o in yaml.safe_load(file.read_text()) or [] if not str(o).startswith("hydra.")]


MAX_LABEL = 40  # longer override lists (paths, many keys) make table names and file names unreadable


def override_labels(paths: Sequence[Path]) -> list[str | None]:
    """Per checkpoint, the overrides in which its run differs from the others (``loss=l1``): what
    tells the jobs of a sweep apart. ``None`` where a run records none, or where they run longer
    than :data:`MAX_LABEL` characters (e.g. a ``ckpt_path=...`` path): the run directory names it then."""
    lists = [job_overrides(p) for p in paths]
    known = [set(o) for o in lists if o is not None]
    common = set.intersection(*known) if known else set()
    labels = [None if o is None else (",".join(x for x in o if x not in common) or None) for o in lists]
    return [label if label is None or len(label) <= MAX_LABEL else None for label in labels]


def method_names(names: Sequence[str], paths: Sequence[Path], reserved: Iterable[str] = ()) -> list[str]:
    """Table names: each model card name, with what tells colliding ones apart added: the job's
    differing overrides for runs of a sweep (``srdensenet (loss=l1)``), else the run directory
    (``srdensenet (run1)``), so rows never merge."""
    reserved = set(reserved)
    labels = list(names)
    clashing = {label for label in labels if labels.count(label) > 1} | reserved
    labels = [
        f"{name} ({extra})" if label in clashing and extra else label
        for label, name, extra in zip(labels, names, override_labels(paths))
    ]
    for level in range(3):
        clashing = {label for label in labels if labels.count(label) > 1} | reserved
        if not clashing & set(labels):
            break
        labels = [
            f"{name} ({run_label(path, level)})" if label in clashing else label
            for label, name, path in zip(labels, names, paths)
        ]
    return labels
