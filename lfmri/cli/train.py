"""lfmri-train: train a super-resolution network (also ``python train.py``).

    lfmri-train [group=option ...] [key=value ...]
    lfmri-train data=folder data.pattern='/data/IXI-T1/*.nii.gz'       # your HR volumes, split by subject
    lfmri-train -m model=srdensenet,vdsr loss=mse,l1                  # a sweep: one run directory per job

Every run writes outputs/train/<date_time>/ (or hydra.run.dir=DIR): config, split, checkpoints,
metrics, panels and the test table. Recipes: README.md and docs/training.md.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import lfmri.training.resolvers  # noqa: F401  registers ${lfmri.multiple:...} and ${metric_mode:...} before Hydra resolves
from lfmri.cli.apps import CONF_DIR, prog_name, run_app


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="train")
def train_app(cfg: DictConfig) -> float | None:
    from lfmri.cli.common import run_entry
    from lfmri.training.run import train  # imported here so --help and --cfg stay fast

    metrics = run_entry(prog_name("lfmri-train"), train, cfg)
    return metrics.get(cfg.get("optimized_metric") or "")


def main() -> None:
    """The ``lfmri-train`` console script (and ``train.py``)."""
    try:
        run_app("train", __doc__, train_app)
    finally:  # a sweep with a failed job ends without on_multirun_end: its summary is written here
        common = sys.modules.get("lfmri.cli.common")  # loaded by the RunChecks callback; --help never imports it
        if common is not None:
            common.write_sweep_summary()


if __name__ == "__main__":
    main()
