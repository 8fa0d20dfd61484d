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


def test_data_and_network_must_agree_on_the_neighbouring_slices():
    from lfmri.contracts import check_context
    from lfmri.errors import ConfigError
    from lfmri.models.fsrcnn import FSRCNN
    from lfmri.models.srdensenet import SRDenseNet

    check_context(SRDenseNet(scale=2, context_slices=1), 1)
    with pytest.raises(ConfigError, match="context_slices=. override"):
        check_context(SRDenseNet(scale=2, context_slices=1), 2)
    with pytest.raises(ConfigError, match="FSRCNN reads one slice only"):
        check_context(FSRCNN(scale=2), 2)
    with pytest.raises(ConfigError, match="context_slices must be a whole number"):
        SRDenseNet(scale=2, context_slices=-1)


def test_multi_slice_option_reaches_data_and_model():
    from hydra.utils import instantiate

    from tests.helpers.config import compose

    cfg = compose("data=folder", "data.pattern=x", "context_slices=2")
    assert cfg.data.context_slices == 2 and instantiate(cfg.model).low_level.in_channels == 5
    # paired low-field data reads neighbours too (a thick slice apart: tests/unit/data/test_paired_lowfield.py)
    cfg = compose("experiment=lowfield_sim", "data.synthetic_pattern=x", "context_slices=1")
    assert instantiate(cfg.data, degradation=instantiate(cfg.degradation)).context_slices == 1
    assert instantiate(cfg.model).low_level.in_channels == 3
