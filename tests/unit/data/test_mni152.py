"""``data=mni152``: the demo's slab split."""

from __future__ import annotations

from lfmri.data.mni152 import MNI152DataModule
from lfmri.degrade.degradations import KSpaceDegradation


def test_mni152_demo_split_has_disjoint_slabs():
    dm = MNI152DataModule(degradation=KSpaceDegradation(), patches_per_epoch=4, batch_size=4)
    dm.setup()
    ranges = {stage: [range(s.start, s.stop) for s in segs] for stage, segs in dm.split.items()}
    train = {i for r in ranges["train"] for i in r}
    for stage in ("val", "test"):
        held = set(ranges[stage][0])
        assert held and train.isdisjoint(range(min(held) - 3, max(held) + 4))
    assert all(len(p.hr) > 5 for segs in dm.prepared.values() for p in segs[:1])
    assert dm.prepared["val"][0].hr.shape[-2:] == (128, 128)
