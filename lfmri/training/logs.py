"""Quieter console and log files: each line once, and no notices that say nothing to a user.

Filters are narrow (one logger or one message each, never a category or a module wholesale),
and each says why the message is safe to drop.
"""

from __future__ import annotations

import logging
import os
import re
import warnings

# Lightning INFO lines (logger lightning.pytorch.utilities.rank_zero) that carry no information here
DROPPED_INFO = (
    # an advertisement for a cloud service, printed by every Trainer
    re.compile(r"litlogger"),
    # "`Trainer(limit_train_batches=1.0)` was configured so 100% of the batches ... will be used":
    # the default (all batches), printed three times per run
    re.compile(r"`Trainer\(limit_\w+_batches=1\.0\)` was configured so 100%"),
)

# Python warnings raised inside Lightning, with the reason each is harmless for lfmri
DROPPED_WARNINGS = (
    # Lightning's own internal use of a torch.utils._pytree API that torch deprecated; nothing
    # lfmri calls, fixed by a future Lightning release
    (r".*isinstance\(treespec, LeafSpec\)` is deprecated", r"lightning\..*"),
    # ResumableCSVLogger appends to metrics.csv on resume (lfmri/training/csv_logger.py): nothing is
    # deleted, the warning of Lightning's CSV logger is false here
    (r"Experiment logs directory .* exists and is not empty", r"lightning\..*"),
    # under DDP: train/lr is the same on every rank (no reduction needed); the test/* and
    # baselines/test/* means are computed from the table gathered over all ranks, logged by rank zero
    (r"It is recommended to use `self\.log\('(train/lr|test/[^']*|baselines/test/[^']*)', \.\.\., sync_dist=True\)`",
     r"lightning\..*"),
)

# Lightning's hint for a job that runs inside a SLURM allocation without srun, which it prints on
# every run of a machine where the srun command exists (a login node, a workstation with SLURM
# installed, the CI's test cluster). It is dropped only outside an allocation (no SLURM_JOB_ID),
# where it does not apply; lfmri's SLURM jobs (hydra/launcher=slurm) always start under srun.
SRUN_NOT_USED = (r"The `srun` command is available on your system but is not used", r"lightning\..*")


class DropMessages(logging.Filter):
    def __init__(self, patterns) -> None:
        super().__init__()
        self.patterns = patterns

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not any(p.search(message) for p in self.patterns)


_FILTER = DropMessages(DROPPED_INFO)

# "`weights_only` was not set, defaulting to `False`.", logged by Lightning's checkpoint connector
# whenever a checkpoint is saved without the argument (the SLURM requeue checkpoint, callbacks).
# False is what lfmri wants there: a saved checkpoint keeps optimiser and loop state so that a run
# resumes exactly; lfmri loads every checkpoint with weights_only=True itself (lfmri.checkpoints.load).
WEIGHTS_ONLY_LOGGER = "lightning.pytorch.trainer.connectors.checkpoint_connector"
_WEIGHTS_ONLY = DropMessages((re.compile(r"^`weights_only` was not set, defaulting to `False`\.$"),))


def quiet_lightning() -> None:
    """Call once logging is configured (inside the Hydra task): Lightning's lines go through the
    root logger only (Hydra's console and ``<job>.log`` handlers), without the noise above.

    Lightning adds a console handler of its own when it is imported before logging is set up,
    so every line was printed twice (``INFO: ...`` and Hydra's ``[time][logger][INFO] - ...``).
    """
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            if type(handler) is logging.StreamHandler:  # Lightning's own console handler only
                logger.removeHandler(handler)
        logger.propagate = True
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if _FILTER not in rank_zero.filters:
        rank_zero.addFilter(_FILTER)
    connector = logging.getLogger(WEIGHTS_ONLY_LOGGER)
    if _WEIGHTS_ONLY not in connector.filters:
        connector.addFilter(_WEIGHTS_ONLY)
    for message, module in DROPPED_WARNINGS:
        warnings.filterwarnings("ignore", message=message, module=module)
    if "SLURM_JOB_ID" not in os.environ:
        warnings.filterwarnings("ignore", message=SRUN_NOT_USED[0], module=SRUN_NOT_USED[1])
