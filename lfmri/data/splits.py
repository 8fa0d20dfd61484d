"""Train/validation/test splits as lists of slice ranges of named volumes.

A split is by subject (whole volumes), never by slice, except for the one-brain MNI152 demo,
which cuts a single volume into slabs separated by gaps. Splits are plain JSON-able data so they
can be written to the run directory and stored in checkpoints.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

STAGES = ("train", "val", "test")


@dataclass(frozen=True)
class Segment:
    """Slices ``start:stop`` along the slice axis of volume ``subject``."""

    subject: str
    start: int
    stop: int


Split = dict[str, list[Segment]]


def split_to_dict(split: Split) -> dict[str, list[dict]]:
    return {stage: [asdict(seg) for seg in split.get(stage, [])] for stage in STAGES}


def split_from_dict(data: Mapping[str, Sequence[Mapping]]) -> Split:
    unknown = set(data) - set(STAGES)
    if unknown:
        raise ValueError(f"split has unknown stages {sorted(unknown)}; expected {list(STAGES)}")
    return {
        stage: [Segment(str(s["subject"]), int(s["start"]), int(s["stop"])) for s in data.get(stage, [])]
        for stage in STAGES
    }


UNSEEN = "unseen"
SEEN = "seen in training"


def subject_groups(subjects: Sequence[str], split: Mapping | None) -> dict[str, str]:
    """``{subject: "unseen" | "seen in training"}``: whether a network trained with ``split`` (a
    :data:`Split` or its dict form) saw any slice of each subject in training or validation.

    Report tables pool subjects within a group only: a score on a brain the network learned from
    (even on other slices of it, as in the one-brain MNI152 demo) measures memory, not
    super-resolution. Without a split every subject counts as unseen.
    """
    if not split:
        return {s: UNSEEN for s in subjects}
    stages = split if all(isinstance(v, list) and all(isinstance(x, Segment) for x in v) for v in split.values()) else split_from_dict(split)
    seen = {seg.subject for stage in ("train", "val") for seg in stages.get(stage, [])}
    return {s: (SEEN if s in seen else UNSEEN) for s in subjects}


def write_split(split: Split, path: str | Path) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(split_to_dict(split), indent=2) + "\n")


def subject_split(lengths: Mapping[str, int], fractions: Sequence[float], seed: int) -> Split:
    """Shuffle subjects with ``seed`` and cut them by ``fractions`` (train, val, test).

    Validation and test each get at least one subject, training gets the rest.
    """
    if len(fractions) != 3 or min(fractions) < 0 or sum(fractions) <= 0:
        raise ValueError(f"data.fractions must be three non-negative numbers (train, val, test), got {list(fractions)}")
    names = sorted(lengths)
    if len(names) < 3:
        raise ValueError(f"a subject split needs at least 3 volumes (train, val, test), found {len(names)}")
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    total = float(sum(fractions))
    n_val = max(1, round(fractions[1] / total * len(names)))
    n_test = max(1, round(fractions[2] / total * len(names)))
    n_train = len(names) - n_val - n_test
    if n_train < 1:
        raise ValueError(f"data.fractions={list(fractions)} leave no training subject out of {len(names)}")
    stages = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {stage: [Segment(name, 0, lengths[name]) for name in sorted(group)] for stage, group in stages.items()}


def explicit_split(lengths: Mapping[str, int], subjects: Mapping[str, Sequence[str]]) -> Split:
    """A subject split from explicit lists ``{train: [...], val: [...], test: [...]}``.

    ``train`` may be left out: it is then every subject not named for validation or test. A
    subject in two sets, or one that was not found, is an error naming it.
    """
    unknown = sorted({s for names in subjects.values() for s in names} - set(lengths))
    if unknown or set(subjects) - set(STAGES):
        raise ValueError(f"data.subjects names unknown subjects {unknown} or stages {sorted(set(subjects) - set(STAGES))}; "
                         f"available subjects: {sorted(lengths)}")
    held = {s for stage in ("val", "test") for s in subjects.get(stage) or []}
    groups = {"val": list(subjects.get("val") or []), "test": list(subjects.get("test") or []),
              "train": list(subjects.get("train") or sorted(set(lengths) - held))}
    overlap = sorted(set(groups["val"]) & set(groups["test"]) | (set(groups["train"]) & held))
    if overlap:
        raise ValueError(f"data.subjects puts {overlap} in more than one set")
    if not groups["train"]:
        raise ValueError("data.subjects leaves no training subject")
    return {stage: [Segment(s, 0, lengths[s]) for s in sorted(groups[stage])] for stage in STAGES}


def slab_split(
    subject: str,
    selected: np.ndarray,
    slabs: Mapping[str, Sequence[float]],
    gap: int,
) -> Split:
    """Cut one volume into contiguous val/test slabs and train on the rest (demo split).

    ``slabs`` gives each of ``val`` and ``test`` as ``[begin, end]`` fractions of the range of
    ``selected`` slices; ``gap`` slices around every slab are left out of training so that
    neighbouring, nearly identical slices do not leak between sets.
    """
    if set(slabs) != {"val", "test"}:
        raise ValueError(f"data.slabs must define exactly 'val' and 'test', got {sorted(slabs)}")
    if len(selected) == 0:
        raise ValueError(f"{subject}: no slice contains enough foreground to split")
    first, last = int(selected[0]), int(selected[-1]) + 1
    span = last - first
    bounds = {}
    for stage in ("val", "test"):
        begin, end = (float(f) for f in slabs[stage])
        if not 0 <= begin < end <= 1:
            raise ValueError(f"data.slabs.{stage}={list(slabs[stage])}: need 0 <= begin < end <= 1")
        bounds[stage] = (first + round(begin * span), first + max(round(end * span), round(begin * span) + 1))
    (a0, a1), (b0, b1) = sorted(bounds.values())
    if a1 > b0:
        raise ValueError(f"data.slabs overlap: {dict(slabs)}")
    train_ranges = [(first, a0 - gap), (a1 + gap, b0 - gap), (b1 + gap, last)]
    train = [Segment(subject, lo, hi) for lo, hi in train_ranges if hi > lo]
    if not train:
        raise ValueError(f"data.slabs={dict(slabs)} with gap={gap} leave no training slices")
    return {
        "train": train,
        "val": [Segment(subject, *bounds["val"])],
        "test": [Segment(subject, *bounds["test"])],
    }
