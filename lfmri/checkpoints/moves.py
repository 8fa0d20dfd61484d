"""Where classes lived before they moved: old checkpoints name them by their old module paths.

When a class a config can name (``_target_``) moves to another module, its old module goes into
:data:`MOVED_MODULES`; :func:`lfmri.checkpoints.load.load_checkpoint` rewrites stored targets
with :func:`rewrite_moved_targets` before checking and building them.
"""

from __future__ import annotations


# Where classes lived before lfmri was grouped by job (0.1.0 checkpoints store these paths):
# load_checkpoint rewrites them, so checkpoints trained before the move keep working.
MOVED_MODULES = {
    "lfmri.models.base": "lfmri.contracts",
    "lfmri.data.grid": "lfmri.geometry.grid",
    "lfmri.data.resample": "lfmri.geometry.resample",
    "lfmri.data.slicing": "lfmri.geometry.slicing",
    "lfmri.data.io": "lfmri.geometry.nifti",
    "lfmri.data.inputs": "lfmri.geometry.inputs",
    "lfmri.data.kspace": "lfmri.degrade.kspace",
    "lfmri.data.degradations": "lfmri.degrade.degradations",
    "lfmri.data.lowfield": "lfmri.degrade.lowfield",
    "lfmri.models.zerofill": "lfmri.degrade.baselines",
    "lfmri.models.bicubic": "lfmri.degrade.baselines",
    "lfmri.models.critic_base": "lfmri.models.critics.base",
    "lfmri.models.cpce_critic": "lfmri.models.critics.cpce",
    "lfmri.models.circle_critic": "lfmri.models.critics.circle",
    "lfmri.metrics": "lfmri.scoring.metrics",
    "lfmri.checkpoint_io": "lfmri.checkpoints.atomic_io",
    "lfmri.callbacks": "lfmri.training.callbacks",
    "lfmri.csv_logger": "lfmri.training.csv_logger",
    "lfmri.wandb_logger": "lfmri.training.wandb_logger",
    "lfmri.run_record": "lfmri.training.run_record",
    "lfmri.schedules": "lfmri.training.schedules",
    "lfmri.cli": "lfmri.cli.common",
}


def moved_target(target: str) -> str:
    """``target`` at today's module path (``lfmri.data.degradations.X`` -> ``lfmri.degrade.degradations.X``)."""
    module, _, name = target.rpartition(".")
    return f"{MOVED_MODULES[module]}.{name}" if module in MOVED_MODULES else target


def rewrite_moved_targets(node: object) -> None:
    """Rewrite, in place, every ``_target_`` of a stored config that names a module lfmri has moved."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "_target_" and isinstance(value, str):
                node[key] = moved_target(value)
            else:
                rewrite_moved_targets(value)
    elif isinstance(node, list):
        for value in node:
            rewrite_moved_targets(value)
