"""Every network trains (fast_dev_run) and evaluates through the same train.py / evaluate.py."""

from __future__ import annotations

import pytest

from lfmri.scoring.report import MetricsTable
from tests.helpers.run import check, run_script
from tests.helpers.volumes import write_phantom_volumes

pytestmark = pytest.mark.e2e


TINY = [
    "data=folder",
    "degradation.hr_size=[36,44]",  # not a multiple of 8: AMIR pads and crops back
    "data.patch_size=16",
    "data.batch_size=2",
    "data.eval_batch_size=4",
    "data.fractions=[0.5,0.25,0.25]",
    "trainer.fast_dev_run=true",
]


@pytest.fixture(scope="module")
def volumes(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo")
    write_phantom_volumes(root / "volumes")
    return root


def job_dirs(sweep):
    return sorted(p for p in sweep.iterdir() if p.is_dir() and p.name.isdigit())


def test_baselines_x2_experiment_trains_six_models_as_one_multirun(volumes):
    sweep = volumes / "baselines"
    check(run_script("train.py", "experiment=baselines_x2", *TINY, f"data.pattern={volumes}/volumes/*.nii.gz", f"hydra.sweep.dir={sweep}"))
    jobs = job_dirs(sweep)
    methods = set()
    for job in jobs:
        assert (job / "checkpoints" / "last.ckpt").is_file()
        methods |= set(MetricsTable.read_csv(job / "test" / "metrics.csv").methods)
    assert len(jobs) == 6
    assert methods == {"srcnn", "fsrcnn", "espcn", "vdsr", "srdensenet", "mrln", "zerofill", "bicubic"}


def test_remaining_models_train_and_evaluate(volumes, tmp_path):
    sweep = volumes / "others"
    models = ["cpce", "circle", "amir", "zerofill", "bicubic"]
    check(run_script("train.py", "-m", f"model={','.join(models)}", *TINY, f"data.pattern={volumes}/volumes/*.nii.gz", f"hydra.sweep.dir={sweep}"))
    jobs = job_dirs(sweep)
    assert len(jobs) == len(models)
    for job, name in zip(jobs, models):
        table = MetricsTable.read_csv(job / "test" / "metrics.csv")
        assert name in table.methods
        assert (job / "checkpoints" / "last.ckpt").is_file() == (name not in ("zerofill", "bicubic"))
    # a pre-upsampled, padded transformer evaluates through the same command
    out = tmp_path / "amir_eval"
    proc = check(run_script("evaluate.py", f"ckpt_path={jobs[2]}/checkpoints/last.ckpt", f"inputs=[{volumes}/volumes/sub-03.nii.gz]", f"output_dir={out}"))
    assert "| sub-03 | amir |" in proc.stdout
    assert (out / "sub-03_sr.nii.gz").is_file()
