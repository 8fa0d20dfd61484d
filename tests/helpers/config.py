"""The one way tests compose lfmri's real configs (``conf/``): :func:`compose`.

``train.py`` and ``evaluate.py`` register lfmri's OmegaConf resolvers before Hydra resolves; this
module imports them too, so ``${lfmri.multiple:...}`` and ``${metric_mode:...}`` resolve here.
"""

from __future__ import annotations

from hydra import compose as hydra_compose
from hydra import initialize_config_dir
from omegaconf import DictConfig, OmegaConf

import lfmri.training.resolvers  # noqa: F401  registers ${lfmri.multiple:...} and ${metric_mode:...}
from tests.helpers.run import ROOT

CONF = ROOT / "conf"
OUTPUT_DIR = "/tmp/lfmri-tests"  # output_dir is ${hydra:runtime.output_dir}: unresolvable outside a run


def compose(*overrides: str, config: str = "train", output_dir: str | None = OUTPUT_DIR, hydra: bool = False) -> DictConfig:
    """``config`` (``conf/<config>.yaml``) composed with ``overrides``, as the entry point composes it.

    ``output_dir`` is set first (``None``: left as the config has it); ``hydra=True`` keeps the
    ``hydra`` node (run/sweep directories, sweeper, launcher).
    """
    first = [] if output_dir is None else [f"output_dir={output_dir}"]
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return hydra_compose(config, overrides=[*first, *overrides], return_hydra_config=hydra)


def evaluate_config(**values) -> DictConfig:
    """``conf/evaluate.yaml`` (without its ``hydra`` node) with ``values`` merged over it: what
    ``evaluate.py key=value ...`` passes to :func:`lfmri.evaluation.evaluator.evaluate`."""
    cfg = OmegaConf.load(CONF / "evaluate.yaml")
    cfg.pop("hydra")
    return OmegaConf.merge(cfg, values)
