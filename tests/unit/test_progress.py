"""``lfmri.progress``: the time-left estimate of predict and evaluate, from the first slices on."""

from __future__ import annotations

import logging
import math

import pytest

from lfmri.progress import LineProgress, duration, time_left


def test_time_left_is_the_mean_rate_so_far_times_what_is_left():
    assert time_left(10, 144, 43.0) == pytest.approx(134 * 4.3)
    assert time_left(144, 144, 600.0) == 0
    assert time_left(0, 144, 5.0) is None and time_left(3, math.inf, 5.0) is None


@pytest.mark.parametrize("seconds, text", [(0, "0 s"), (44.6, "45 s"), (89, "89 s"), (90, "2 min"), (627, "10 min"),
                                           (3599, "1 h 00 min"), (3 * 3600 + 5 * 60, "3 h 05 min")])
def test_durations_read_as_a_person_says_them(seconds, text):
    assert duration(seconds) == text


def test_a_single_scan_gets_an_estimate_after_its_first_batch(caplog):
    """144 slices at 4.3 s each, in batches of 8: the first line comes after the first batch (not after a
    whole volume, not after a tenth of it), with the time left for the volume; the last says the total."""
    now = [0.0]
    bar = LineProgress(144, "scan", "slice", clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="lfmri.progress"):
        for _ in range(18):
            now[0] += 8 * 4.3
            bar.update(8)
    lines = [r.getMessage() for r in caplog.records]
    assert lines[0] == "scan: 8/144 slices (0.2 slices/s), about 10 min left"  # 136 x 4.3 s = 585 s
    assert lines[-1] == "scan: 144/144 slices (0.2 slices/s), done in 10 min"
    assert 8 <= len(lines) <= 12 and all("left" in line for line in lines[:-1])
