"""``lfmri.cli.sweep``: refusals and the summary's number formatting."""

from __future__ import annotations

import pytest

from lfmri.cli import sweep


def test_summarize_reports_an_unusable_directory():
    with pytest.raises(SystemExit) as refused:
        sweep.main(["summarize", "sweep_dir=/nonexistent/sweep"])
    assert refused.value.code == 2


def test_summary_rounds_long_numbers_in_overrides():
    assert sweep.round_numbers("module.optimizer.lr=0.0003574712922600243 model.growth=16") == (
        "module.optimizer.lr=0.0003575 model.growth=16"
    )
