"""``benchmarks/comparisons.py`` without training: the sweep and fine-tune commands of every set compose
into real configs, rows land in their own folders, simulated sets name their subjects ``sim-...``
(the tiny end-to-end run is tests/e2e/test_comparisons.py)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.helpers.config import compose
from tests.helpers.run import ROOT


@pytest.fixture(scope="module")
def comparisons():
    spec = importlib.util.spec_from_file_location("lfmri_comparisons", ROOT / "benchmarks" / "comparisons.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


def arguments(**values) -> SimpleNamespace:
    defaults = dict(data="/data/*.nii.gz", subjects="{val:[nichart_Subj20_T1],test:[IXI012-HH-1211_T1_2mm, nichart_Subj22_T1]}",
                    steps=300, batch=8, validations=5, launcher=None)
    return SimpleNamespace(**{**defaults, **values})


def options(command: list[str]) -> list[str]:
    """The overrides of one sweep job: the command's, with the swept value list reduced to its first value."""
    out = []
    for item in command[command.index("lfmri.cli.train") + 2:]:  # after "python -m lfmri.cli.train -m"
        if item.startswith("hydra."):
            continue
        key, equals, value = item.partition("=")
        out.append(f"{key}={value.split(',')[0]}" if equals and "{" not in value and "[" not in value else item)
    return out


def test_every_row_of_every_set_composes_into_a_real_config(comparisons):
    for name, comparison in comparisons.COMPARISONS.items():
        command = comparisons.sweep_command(comparison, list(comparison.rows), Path("/out"), name, arguments())
        base = [o for o in options(command) if not o.startswith(f"{comparison.key}=")]
        compose(*base)  # a multirun first composes its primary config without the swept option
        for row in comparison.rows:
            cfg = compose(*base, f"{comparison.key}={row}")
            assert cfg.trainer.max_steps == 300 and cfg.data.batch_size == 8, (name, row)
        for row, (_, start, _) in comparison.extra_rows.items():
            cfg = compose(*options(comparisons.extra_row_command(comparison, row, Path("/out"), name, arguments())))
            assert cfg.init_from == (f"/out/{name}/{start}/checkpoints/best.ckpt" if start else None)


def test_simulated_sets_name_their_subjects_as_the_simulation_does(comparisons):
    lowfield = comparisons.COMPARISONS["lowfield"]
    subjects = next(o for o in comparisons.data_overrides(lowfield, arguments(subjects="{val:[a, sim-b],test:[c]}"))
                    if o.startswith("data.subjects="))
    assert subjects == "data.subjects={val:[sim-a,sim-b],test:[sim-c]}"
    cfg = compose(*options(comparisons.sweep_command(lowfield, ["lowfield_sim"], Path("/out"), "lowfield", arguments())))
    assert cfg.data.synthetic_pattern == "/data/*.nii.gz" and list(cfg.data.subjects.test) == [
        "sim-IXI012-HH-1211_T1_2mm", "sim-nichart_Subj22_T1"]
    folder = comparisons.data_overrides(comparisons.COMPARISONS["mrln_x2"], arguments())
    assert "data=folder" in folder and "data.subjects={val:[nichart_Subj20_T1],test:[IXI012-HH-1211_T1_2mm, nichart_Subj22_T1]}" in folder


def test_rows_of_a_plain_option_get_named_folders_and_fine_tunes_their_own(comparisons):
    lowfield = comparisons.COMPARISONS["lowfield"]
    command = comparisons.sweep_command(lowfield, ["0", "1"], Path("/out"), "lowfield", arguments())
    assert "context_slices=0,1" in command and "hydra.sweep.subdir=context_slices_${context_slices}" in command
    assert comparisons.run_dir(Path("/out"), "lowfield", "1") == Path("/out/lowfield/context_slices_1")
    # AMIR: its own experiment in place of lowfield-sim's, the other shared options kept, no swept value
    amir = comparisons.extra_row_command(lowfield, "amir_lowfield_cpu", Path("/out"), "lowfield", arguments())
    assert "experiment=amir_lowfield_cpu" in amir and "experiment=lowfield_sim" not in amir and "data.slice_axis=2" in amir
    assert not any(o.startswith("context_slices=") for o in amir) and "hydra.sweep.subdir=amir_lowfield_cpu" in amir
    cfg = compose(*options(amir))
    assert cfg.model._target_.endswith("AMIR") and cfg.data.slice_axis == 2 and cfg.callbacks.ema is None
    losses = comparisons.COMPARISONS["losses"]
    assert "hydra.sweep.subdir=${hydra.runtime.choices.loss}" in comparisons.sweep_command(losses, ["l1"], Path("/o"), "losses", arguments())
    finetune = comparisons.extra_row_command(losses, "l1_wgan", Path("/o"), "losses", arguments())
    keys = [o.partition("=")[0] for o in finetune[finetune.index("lfmri.cli.train") + 2:]]
    assert len(keys) == len(set(keys))  # Hydra refuses an option given twice
    assert "hydra.sweep.subdir=l1_wgan" in finetune and comparisons.run_dir(Path("/o"), "losses", "l1_wgan") == Path("/o/losses/l1_wgan")
    assert "l1_wgan" in losses.labels() and "l1_wgan" not in losses.rows


def test_a_stopped_row_is_reported_as_stopped_with_its_last_validation(comparisons, tmp_path, capsys):
    logs = tmp_path / "lyu" / "lyu2018_gan_circle" / "logs"
    logs.mkdir(parents=True)
    (logs / "metrics.csv").write_text("step,val/psnr_brain,train/loss\n49,19.5,\n60,,0.1\n99,20.87,\n")
    comparisons.report(comparisons.COMPARISONS["lyu"], tmp_path, "lyu", ["ixi"])
    lines = {line.split("|")[1].strip(): line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")}
    assert "stopped, not tested (last validation: step 100, in-brain 20.87 dB)" in lines["GAN-CIRCLE"]
    assert "not trained yet" in lines["GAN-CPCE (MSE + WGAN-GP)"]
