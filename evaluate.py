"""Evaluate a checkpoint against zero-filling and bicubic: ``python evaluate.py ckpt_path=PATH``.

Compare several on the same degraded slices: ``python evaluate.py ckpt_paths='[a.ckpt,b.ckpt]'``.

Add ``inputs='[a.nii.gz,b.nii.gz]' output_dir=DIR`` to degrade and super-resolve your own HR
volumes. See conf/evaluate.yaml.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    from lfmri.cli import run_entry
    from lfmri.evaluation import evaluate

    run_entry("evaluate.py", evaluate, cfg)


if __name__ == "__main__":
    main()
