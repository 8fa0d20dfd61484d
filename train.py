"""Train a super-resolution network: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for the groups and README.md for recipes.
"""

import hydra

import lfmri.resolvers  # noqa: F401  (${lfmri.multiple:...} in the configs)
from omegaconf import DictConfig

import lfmri  # noqa: F401  registers the config resolvers (metric_mode) before Hydra resolves anything


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lfmri.cli import run_entry
    from lfmri.training import train  # imported here so --help and --cfg stay fast

    metrics = run_entry("train.py", train, cfg)
    return metrics.get(cfg.get("optimized_metric") or "")


if __name__ == "__main__":
    main()
