"""Train a super-resolution network: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for the groups and README.md for recipes.
"""

import hydra
from omegaconf import DictConfig

import lfmri.training.resolvers  # noqa: F401  registers ${lfmri.multiple:...} and ${metric_mode:...} before Hydra resolves


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lfmri.cli.common import run_entry
    from lfmri.training.run import train  # imported here so --help and --cfg stay fast

    metrics = run_entry("train.py", train, cfg)
    return metrics.get(cfg.get("optimized_metric") or "")


if __name__ == "__main__":
    main()
