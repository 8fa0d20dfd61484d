"""``lfmri.scoring.report``: bolding, column order, seen/unseen pools, old tables."""

from __future__ import annotations

import math

from lfmri.data.splits import subject_groups
from lfmri.scoring.metrics import METRICS
from lfmri.scoring.report import DISPLAY_ORDER, MetricsTable


def test_markdown_bolds_the_lowest_error_and_the_highest_score():
    def row(method, value):
        return {"subject": "s", "slice": 0, "method": method, **{k: value for k in METRICS}}

    markdown = MetricsTable([row("a", 0.2), row("b", 0.4)]).to_markdown()
    cells = {line.split(" | ")[1]: line.split(" | ")[3:] for line in markdown.splitlines() if line.startswith("| s |")}
    for i, key in enumerate(DISPLAY_ORDER):
        higher_better = key.startswith(("psnr", "ssim"))
        assert cells["b" if higher_better else "a"][i].startswith("**"), key
        assert not cells["a" if higher_better else "b"][i].startswith("**"), key


def test_markdown_puts_brain_columns_first_and_never_pools_seen_with_unseen_subjects():
    def row(subject, method, value):
        return {"subject": subject, "slice": 0, "method": method, **{k: value for k in METRICS}}

    table = MetricsTable([row("train1", "m", 40.0), row("new1", "m", 20.0), row("new2", "m", 22.0)])
    split = {"train": [{"subject": "train1", "start": 0, "stop": 5}], "val": [], "test": []}
    groups = subject_groups(table.subjects, split)
    assert groups == {"train1": "seen in training", "new1": "unseen", "new2": "unseen"}
    markdown = table.to_markdown("t", groups)
    header = next(line for line in markdown.splitlines() if line.startswith("| subject"))
    assert header.split(" | ")[3] == "PSNR brain (dB)"
    pooled = {line.split(" | ")[0][2:]: float(line.split(" | ")[3].split(" ")[0]) for line in markdown.splitlines()
              if line.startswith("| all")}
    # the unseen pool is the mean of the unseen subjects only (21), the seen one its own (40)
    assert pooled == {"all seen in training (1)": 40.0, "all unseen (2)": 21.0}
    assert "Not a generalisation estimate**: train1 trained" in markdown
    assert "Not a generalisation" not in table.to_markdown("t", subject_groups(table.subjects, None))


def test_tables_written_before_nrmse_and_hfen_still_read(tmp_path):
    path = tmp_path / "old.csv"
    path.write_text("subject,slice,method,psnr,ssim,psnr_brain,ssim_brain\ns,3,m,30.0,0.9,28.0,0.8\n")
    table = MetricsTable.read_csv(path)
    assert table.rows[0]["psnr"] == 30.0 and math.isnan(table.rows[0]["hfen"])
    assert "30.00 ± 0.00" in table.to_markdown()
