"""Train a super-resolution network: ``python train.py [group=option ...] [key=value ...]``.

See conf/train.yaml for the groups and README.md for recipes.
"""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> float | None:
    from lfmri.run_record import report_user_error
    from lfmri.training import train  # imported here so --help and --cfg stay fast

    try:
        metrics = train(cfg)
    except (ValueError, FileNotFoundError, FileExistsError) as err:  # bad options, files, checkpoints
        report_user_error("train.py", err)
    return metrics.get(cfg.get("optimized_metric") or "")


if __name__ == "__main__":
    main()
