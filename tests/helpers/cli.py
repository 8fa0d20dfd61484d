"""Checking the one-line refusals of the command-line entry points (``lfmri.cli.options``)."""

from __future__ import annotations

from collections.abc import Callable

import pytest


def refusal(capsys: pytest.CaptureFixture, call: Callable, *args) -> str:
    """What ``call(*args)`` printed on stderr, after checking that it exited with status 2."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        call(*args)
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ": error: " in err, err
    return err
