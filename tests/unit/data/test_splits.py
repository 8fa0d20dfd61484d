"""``lfmri.data.splits``: subject splits and slab splits with gaps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lfmri.data.splits import Segment, slab_split, split_from_dict, split_to_dict, subject_split


def test_subject_split_is_disjoint_seeded_and_complete():
    lengths = {f"s{i}": 10 + i for i in range(10)}
    split = subject_split(lengths, (0.8, 0.1, 0.1), seed=3)
    names = {stage: [seg.subject for seg in segs] for stage, segs in split.items()}
    assert len(names["val"]) == 1 and len(names["test"]) == 1 and len(names["train"]) == 8
    assert set(names["train"]).isdisjoint(names["val"]) and set(names["train"]).isdisjoint(names["test"])
    assert sorted(sum(names.values(), [])) == sorted(lengths)
    assert all(seg.stop == lengths[seg.subject] and seg.start == 0 for segs in split.values() for seg in segs)
    assert subject_split(lengths, (0.8, 0.1, 0.1), seed=3) == split
    assert subject_split(lengths, (0.8, 0.1, 0.1), seed=4) != split
    assert split_from_dict(json.loads(json.dumps(split_to_dict(split)))) == split
    with pytest.raises(ValueError, match="at least 3 volumes"):
        subject_split({"a": 1, "b": 1}, (0.8, 0.1, 0.1), 0)


def test_slab_split_keeps_gaps_between_sets():
    split = slab_split("mni", np.arange(10, 110), {"val": (0.2, 0.3), "test": (0.6, 0.8)}, gap=3)
    assert split["val"] == [Segment("mni", 30, 40)] and split["test"] == [Segment("mni", 70, 90)]
    train = {i for seg in split["train"] for i in range(seg.start, seg.stop)}
    held = set(range(27, 43)) | set(range(67, 93))
    assert train.isdisjoint(held)
    assert train == set(range(10, 110)) - held
    with pytest.raises(ValueError, match="overlap"):
        slab_split("mni", np.arange(100), {"val": (0.2, 0.5), "test": (0.4, 0.8)}, gap=0)
