"""lfmri-evaluate: score checkpoints against zero-filling and bicubic (also ``python evaluate.py``).

    lfmri-evaluate ckpt_path=RUN/checkpoints/best.ckpt                     # the checkpoint's own test split
    lfmri-evaluate ckpt_path=RUN/checkpoints/best.ckpt inputs='[a.nii.gz,b.nii.gz]' output_dir=DIR
    lfmri-evaluate ckpt_paths='[a.ckpt,b.ckpt]' [inputs=...] [output_dir=DIR]   # several, in one table
    lfmri-evaluate pretrained=srdensenet-kspace-x2 inputs='[a.nii.gz,b.nii.gz]'

Each HR volume is degraded with the checkpoint's own degradation; writes NIfTI volumes, metrics
tables and comparison figures. inputs: a file, a list '[a.nii.gz,b.mgz]', a folder, a quoted glob
'dir/*.nii.gz', or a folder of DICOM files (one volume per series, outputs NIfTI).
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

import lfmri.training.resolvers  # noqa: F401  registers ${lfmri.multiple:...} and ${metric_mode:...} before Hydra resolves
from lfmri.cli.apps import CONF_DIR, prog_name, run_app


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="evaluate")
def evaluate_app(cfg: DictConfig) -> None:
    from lfmri.cli.common import run_entry
    from lfmri.evaluation.evaluator import evaluate

    table = run_entry(prog_name("lfmri-evaluate"), evaluate, cfg, unwind_on_signals=True)
    if table.failures:  # the other volumes were evaluated; say which were not, and exit 1
        print(f"{len(table.failures)} input(s) failed:", file=sys.stderr)
        for message in table.failures.values():
            print(f"  {message}", file=sys.stderr)
        sys.exit(1)


def main() -> None:
    """The ``lfmri-evaluate`` console script (and ``evaluate.py``)."""
    run_app("evaluate", __doc__, evaluate_app)


if __name__ == "__main__":
    main()
