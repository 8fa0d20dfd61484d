"""Evaluate a checkpoint against zero-filling and bicubic: ``python evaluate.py ckpt_path=PATH``.

Compare several on the same degraded slices: ``python evaluate.py ckpt_paths='[a.ckpt,b.ckpt]'``.

Add ``inputs='[a.nii.gz,b.nii.gz]' output_dir=DIR`` to degrade and super-resolve your own HR
volumes. See conf/evaluate.yaml.
"""

import sys

import hydra
from omegaconf import DictConfig

import lfmri.training.resolvers  # noqa: F401  registers ${lfmri.multiple:...} and ${metric_mode:...} before Hydra resolves


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from lfmri.cli.common import run_entry
    from lfmri.evaluation.evaluator import evaluate

    table = run_entry("evaluate.py", evaluate, cfg)
    if table.failures:  # the other volumes were evaluated; say which were not, and exit 1
        print(f"{len(table.failures)} input(s) failed:", file=sys.stderr)
        for message in table.failures.values():
            print(f"  {message}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
