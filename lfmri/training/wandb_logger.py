"""The wandb logger of ``logger=wandb``: offline without credentials, one run per Hydra job.

Compute nodes often have no internet and no API key. Without credentials (``WANDB_API_KEY``, a
file named by ``WANDB_API_KEY_FILE``, or a ``.netrc`` entry for the wandb host) the run is written offline into the run directory and the
log says how to upload it later (``wandb sync``). Inside a multirun, every job is its own wandb
run, grouped by the sweep directory, named and tagged by its overrides.
"""

from __future__ import annotations

import logging
import netrc
import os
import uuid
from pathlib import Path
from urllib.parse import urlparse

from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities import rank_zero_only

from lfmri.scoring.metrics import LOWER_IS_BETTER, METRICS

log = logging.getLogger(__name__)

TAG_LIMIT = 64  # wandb rejects longer tags
GROUP_LIMIT = 128  # and longer group names


def load_key_file() -> None:
    """``WANDB_API_KEY_FILE`` (a mounted secret, e.g. docker/compose.yaml) -> ``WANDB_API_KEY``."""
    path = os.environ.get("WANDB_API_KEY_FILE")
    if path and not os.environ.get("WANDB_API_KEY") and Path(path).is_file():
        key = Path(path).read_text().strip()
        if key:
            os.environ["WANDB_API_KEY"] = key


def has_credentials() -> bool:
    """Whether wandb can authenticate without asking: API key in the environment or in .netrc."""
    load_key_file()
    if os.environ.get("WANDB_API_KEY") or os.environ.get("WANDB_IDENTITY_TOKEN_FILE"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")).hostname or "api.wandb.ai"
    path = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    try:
        return path.is_file() and netrc.netrc(str(path)).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


def hydra_job() -> dict:
    """Sweep directory, override string and override list of the current Hydra job (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    return {
        "sweep_dir": str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None,
        "overrides": list(hydra.overrides.task),
        "override_dirname": hydra.job.override_dirname,
    }


def run_id(save_dir: Path) -> str | None:
    """The wandb run id of the run directory, created once: a resumed run (``resume=true``)
    continues the same wandb run instead of starting a new one. Other DDP ranks log nothing."""
    path = save_dir / "wandb_run_id.txt"
    if path.is_file():
        return path.read_text().strip()
    if rank_zero_only.rank != 0:
        return None
    new = uuid.uuid4().hex[:8]  # wandb's own ids: 8 lower-case alphanumerics
    path.write_text(new + "\n")
    return new


def summary_mode(name: str) -> str:
    """``"min"`` for errors and losses, ``"max"`` for PSNR/SSIM (a local equivalent of the lead
    branch's ``lfmri.scoring.metrics.metric_mode``; use that one once both are merged)."""
    base = name.rsplit("/", 1)[-1]
    return "min" if base in LOWER_IS_BETTER or base.startswith("loss") else "max"


def define_summaries(logger: WandbLogger) -> None:
    """The run summary keeps each validation metric's best value (max PSNR/SSIM, min errors and
    loss), not its last, and test metrics (model and baselines) as logged. Rank zero only: the
    other ranks' ``experiment`` is a stand-in without ``define_metric``."""
    run = logger.experiment
    if not hasattr(run, "define_metric"):
        return
    for name in (*METRICS, "loss"):
        run.define_metric(f"val/{name}", summary=summary_mode(name))


def wandb_logger(
    save_dir: str,
    project: str = "lfmri",
    offline: bool | None = None,
    group: str | None = None,
    name: str | None = None,
    tags: list[str] | None = None,
    log_model: bool | str = False,
    extra_tags: list[str] | None = None,
    **kwargs,
) -> WandbLogger:
    """A :class:`WandbLogger` writing under ``save_dir``; ``None`` options are filled from Hydra.

    ``offline=None`` means offline exactly when no credentials are found (``WANDB_MODE`` set by
    the user wins). ``log_model=True`` uploads the best and last checkpoints as artifacts at the
    end of training (never in offline mode: offline runs keep their checkpoints on disk).
    """
    job = hydra_job()
    if offline is None:
        mode = os.environ.get("WANDB_MODE")
        offline = mode in ("offline", "dryrun") if mode else not has_credentials()
        if not mode and offline:
            log.warning(
                "wandb: no credentials (WANDB_API_KEY or ~/.netrc): logging offline to %s/wandb; "
                "upload later with: wandb sync %s/wandb/offline-run-*",
                save_dir,
                save_dir,
            )
    if group is None and job.get("sweep_dir"):
        group = job["sweep_dir"][-GROUP_LIMIT:]
    if name is None:
        name = job.get("override_dirname") or Path(save_dir).name
    if tags is None:
        tags = [t for t in job.get("overrides", []) if len(t) <= TAG_LIMIT and not t.startswith("hydra.")]
    tags = [t[:TAG_LIMIT] for t in dict.fromkeys([*tags, *(str(t) for t in extra_tags or [])])]
    Path(save_dir).mkdir(parents=True, exist_ok=True)
    if "id" not in kwargs:
        kwargs["id"] = run_id(Path(save_dir))
        kwargs.setdefault("resume", "allow")
    logger = WandbLogger(
        save_dir=save_dir,
        project=project,
        offline=bool(offline),
        group=group,
        name=name,
        tags=tags,
        log_model=False if offline else log_model,
        **kwargs,
    )
    # Lightning always passes wandb.init(anonymous=None); wandb has deprecated the setting and warns on
    # every run that it "has no effect": leaving the key out (a user's own anonymous=... stays) drops
    # that line, and nothing else, at its source
    if "anonymous" not in kwargs and logger._wandb_init.get("anonymous") is None:
        logger._wandb_init.pop("anonymous", None)
    return logger
