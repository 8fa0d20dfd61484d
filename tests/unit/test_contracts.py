"""``lfmri.contracts``: a network and a degradation are checked for compatibility before training."""

from __future__ import annotations

import pytest

from lfmri.contracts import check_compatible
from lfmri.degrade.degradations import KSpaceDegradation, KSpaceZeroFillDegradation
from lfmri.models.srdensenet import SRDenseNet


def test_compatibility_is_checked_before_training():
    check_compatible(SRDenseNet(scale=2), KSpaceDegradation(scale=2))
    with pytest.raises(ValueError, match="x4 but the degradation is x2"):
        check_compatible(SRDenseNet(scale=4), KSpaceDegradation(scale=2))
    with pytest.raises(ValueError, match="returns its LR on the HR grid"):
        check_compatible(SRDenseNet(scale=2), KSpaceZeroFillDegradation(scale=2))
