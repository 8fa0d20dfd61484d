"""``lfmri.cli.sweep``: refusals and the summary's number formatting."""

from __future__ import annotations

import pytest

from lfmri.cli import sweep


def test_summarize_reports_an_unusable_directory():
    with pytest.raises(SystemExit) as refused:
        sweep.main(["summarize", "output_dir=/nonexistent/sweep"])
    assert refused.value.code == 2


def test_summary_rounds_long_numbers_in_overrides():
    assert sweep.round_numbers("module.optimizer.lr=0.0003574712922600243 model.growth=16") == (
        "module.optimizer.lr=0.0003575 model.growth=16"
    )


def test_summary_has_the_gain_over_zero_fill_and_the_old_option_name_still_works(tmp_path, capsys):
    import json

    run = tmp_path / "sweep" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- loss=l1\n")
    (run / "logs").mkdir()
    (run / "logs" / "metrics.csv").write_text(
        "epoch,step,val/psnr_brain,baselines/val/zerofill_psnr_brain,val/ssim_brain\n"
        "0,10,20.0,19.5,0.8\n"
        "1,20,21.0,19.5,0.85\n"
    )
    (run / "metrics.json").write_text(json.dumps({"metrics": {"test/psnr_brain": 22.25, "baselines/test/zerofill_psnr_brain": 21.0}}))
    assert sweep.main(["summarize", f"sweep_dir={tmp_path / 'sweep'}"]) == 0
    out = capsys.readouterr()
    assert "option 'sweep_dir' is deprecated, use output_dir=" in out.err
    [row] = sweep.summarize(tmp_path / "sweep")
    assert row["val/psnr_brain_vs_zerofill"] == 1.5 and row["step"] == 20  # at the best validation
    assert row["test/psnr_brain_vs_zerofill"] == 1.25
    assert "val/psnr_brain_vs_zerofill" in (tmp_path / "sweep" / "summary.md").read_text()


def test_summarize_replaces_only_its_own_unchanged_summary(tmp_path, capsys):
    """lfmri-sweep summarize replaced any existing summary.md, the user's own included."""
    run = tmp_path / "sweep" / "0"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "overrides.yaml").write_text("- loss=l1\n")
    (run / "metrics.json").write_text('{"metrics": {"val/psnr_brain": 20.0}}')
    md, csv_file = tmp_path / "sweep" / "summary.md", tmp_path / "sweep" / "summary.csv"
    md.write_text("my notes\n")
    capsys.readouterr()
    with pytest.raises(SystemExit) as stopped:
        sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"])
    err = capsys.readouterr().err
    assert stopped.value.code == 2 and err.count("\n") == 1 and f"{md} exists and is not a summary lfmri-sweep wrote" in err
    assert md.read_text() == "my notes\n" and not csv_file.exists()
    md.unlink()
    assert sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"]) == 0
    assert sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"]) == 0  # its own summary: refreshed
    csv_file.write_text(csv_file.read_text() + "edited,by,hand\n")
    with pytest.raises(SystemExit):
        sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"])
    assert csv_file.read_text().endswith("edited,by,hand\n")


def _run(folder, overrides="- loss=l1\n", metrics_json=None, history="epoch,step,val/psnr_brain\n0,10,20.0\n"):
    import json

    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(overrides)
    (folder / "logs").mkdir()
    (folder / "logs" / "metrics.csv").write_text(history)
    if metrics_json is not None:
        (folder / "metrics.json").write_text(metrics_json if isinstance(metrics_json, str) else json.dumps(metrics_json))
    return folder


@pytest.mark.parametrize(("damaged", "overrides", "metrics_json"), [
    ("metrics.json", "- loss=l1\n", '{"metrics": {"test/psnr'),
    ("overrides.yaml", "- [unclosed\n", {"metrics": {}}),
])
def test_a_damaged_run_file_is_named_in_its_row_and_the_others_are_summarized(tmp_path, capsys, damaged, overrides, metrics_json):
    _run(tmp_path / "sweep" / "0", metrics_json={"metrics": {"test/psnr_brain": 22.0}})
    _run(tmp_path / "sweep" / "1", overrides=overrides, metrics_json=metrics_json)
    assert sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and damaged in err and len(err.strip().splitlines()) == 1
    rows = {row["run"]: row for row in sweep.summarize(tmp_path / "sweep")}
    assert rows["0"]["status"] == "complete" and rows["0"]["test/psnr_brain"] == 22.0
    assert rows["1"]["status"].startswith("unreadable: ") and damaged in rows["1"]["status"]


def test_a_failed_job_is_marked_failed_in_the_summary(tmp_path):
    _run(tmp_path / "sweep" / "0", metrics_json={"metrics": {}})
    _run(tmp_path / "sweep" / "1")
    rows = {row["run"]: row for row in sweep.summarize(tmp_path / "sweep", failed={tmp_path / "sweep" / "1": "DataError: x"})}
    assert rows["0"]["status"] == "complete" and rows["1"]["status"] == "failed: DataError: x"


def test_a_metric_no_run_logged_is_one_line_and_a_test_metric_keeps_the_validation_columns(tmp_path, capsys):
    _run(tmp_path / "sweep" / "0", metrics_json={"metrics": {"test/psnr_brain": 22.0}},
         history="epoch,step,val/psnr_brain,val/psnr_brain_vs_zerofill\n0,10,20.0,1.75\n")
    _run(tmp_path / "sweep" / "1", overrides="- loss=mse\n", metrics_json={"metrics": {"test/psnr_brain": 23.0}})
    capsys.readouterr()
    with pytest.raises(SystemExit) as refused:
        sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}", "metric=val/loss_l1"])
    err = capsys.readouterr().err
    assert refused.value.code == 2 and len(err.strip().splitlines()) == 1
    assert "metric=val/loss_l1: no run below" in err and "val/psnr_brain" in err
    rows = sweep.summarize(tmp_path / "sweep", "test/psnr_brain")
    assert [r["run"] for r in rows] == ["1", "0"] and [r["val/psnr_brain"] for r in rows] == [20.0, 20.0]
    assert rows[1]["val/psnr_brain_vs_zerofill"] == 1.75  # the gain as the run logged it


def test_summarize_answers_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, lfmri.cli.sweep; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_the_html_summary_shows_each_runs_panel_nearest_its_best_validation(tmp_path):
    _run(tmp_path / "sweep" / "0", metrics_json={"metrics": {"test/psnr_brain": 22.0}},
         history="epoch,step,val/psnr_brain\n0,9,20.0\n0,19,21.0\n0,29,20.5\n")
    panels = tmp_path / "sweep" / "0" / "panels"
    panels.mkdir()
    for step in (10, 20, 30):
        (panels / f"step_{step:07d}.png").write_bytes(b"png")
    _run(tmp_path / "sweep" / "1", overrides="- loss=<mse>\n")  # no panels; a name to escape
    assert sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"]) == 0
    page = (tmp_path / "sweep" / "summary.html").read_text()
    assert '<img src="0/panels/step_0000020.png"' in page and "loss=&lt;mse&gt;" in page
    assert page.index("<td>0</td>") < page.index("<td>1</td>")  # best first
    assert sweep.main(["summarize", f"output_dir={tmp_path / 'sweep'}"]) == 0  # its own page: refreshed
