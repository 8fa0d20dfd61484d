"""The wandb logger of ``logger=wandb``: offline without credentials, one run per Hydra job.

Compute nodes often have no internet and no API key. Without credentials (``WANDB_API_KEY``, a
file named by ``WANDB_API_KEY_FILE``, or a ``.netrc`` entry for the wandb host) the run is written offline into the run directory and the
log says how to upload it later (``wandb sync``). Inside a multirun, every job is its own wandb
run (job type ``train``), named by the values the sweep varies, grouped by the sweep folder's name and
tagged with the user's ``tags`` only; short config keys (``model_name``, ``loss_name``, ...) let a
dashboard group runs by what they compare.
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

from lfmri.files import load_yaml_record
from lfmri.scoring.names import METRICS, metric_mode

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


# overrides that say how a run logs or is labelled, never what it trains: left out of its wandb name
SETTING_PREFIXES = ("logger", "tags", "hydra", "extras", "resume", "trainer.enable_progress_bar")
CHOICE_KEYS = ("experiment", "model", "loss", "degradation", "data", "module")  # short config keys: <group>_name


def hydra_job() -> dict:
    """Sweep directory, overrides, config group choices and swept keys of the current Hydra job
    (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return {}
    hydra = HydraConfig.get()
    sweep_dir = str(hydra.sweep.dir) if hydra.mode == RunMode.MULTIRUN else None
    return {
        "sweep_dir": sweep_dir,
        "overrides": list(hydra.overrides.task),
        "override_dirname": hydra.job.override_dirname,
        "choices": {k: v for k, v in hydra.runtime.choices.items() if not k.startswith("hydra/") and v is not None},
        "swept": swept_keys(Path(sweep_dir), list(hydra.sweeper.get("params") or {})) if sweep_dir else None,
    }


def swept_keys(sweep_dir: Path, sweeper_params: list[str]) -> list[str] | None:
    """The keys a sweep varies: its sweeper's ``params`` (Optuna's search space) and the sweep overrides of
    the command line (``model=a,b``, ``range(...)``, ``choice(...)``), read from the ``multirun.yaml`` Hydra's
    basic sweeper writes into the sweep folder. ``None`` when that record is missing or unreadable (the
    Optuna sweeper writes none) and there are no sweeper params either."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    keys = [str(k) for k in sweeper_params]
    try:
        # no aliases, no FIFOs, a size limit; never resolved by OmegaConf (a stored string stays a string)
        record = load_yaml_record(sweep_dir / "multirun.yaml")
        task = record["hydra"]["overrides"]["task"]
        if not isinstance(task, list):
            raise TypeError("hydra.overrides.task is not a list")
    except (OSError, ValueError, KeyError, TypeError):
        return keys or None
    parser = OverridesParser.create()
    for text in task:
        try:
            override = parser.parse_override(str(text))
        except Exception:  # noqa: BLE001 - hydra raises its own grammar errors; an unparsable one varies nothing we can name
            continue
        if override.is_sweep_override():
            keys.append(override.key_or_group)
    return list(dict.fromkeys(keys))


def run_name(job: dict) -> str | None:
    """A run's name from what sets it apart: in a sweep, the values of the swept keys (``srdensenet-l1``;
    a config value as ``leaf=value``: ``srdensenet-lr=0.001``); in a single run, the values of its
    overrides that change what it trains (logging and labelling settings left out). ``None`` when
    nothing sets it apart (the run folder's name is used then)."""
    swept, choices = job.get("swept"), job.get("choices", {})
    parts = []
    for text in job.get("overrides", []):
        key, sep, value = str(text).lstrip("+~").partition("=")
        if not sep or key.startswith(SETTING_PREFIXES) or (swept is not None and key not in swept):
            continue
        parts.append(value if key in choices else f"{key.rsplit('.', 1)[-1]}={value}")
    return "-".join(parts) or None


def short_config(job: dict, cfg: dict) -> dict:
    """Flat keys a dashboard groups and filters runs by: ``model_name``, ``loss_name``, ``degradation_name``,
    ``data_name``, ``experiment_name``, ``module_name`` (the config group choices), ``scale`` and ``seed``."""
    out = {f"{group}_name": job.get("choices", {}).get(group) for group in CHOICE_KEYS}
    out = {k: v for k, v in out.items() if v is not None}
    out.update({k: cfg[k] for k in ("scale", "seed") if k in cfg})
    return out


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


def define_summaries(logger: WandbLogger) -> None:
    """The run summary keeps each validation metric's best value (max PSNR/SSIM, min errors and
    loss), not its last, and test metrics (model and baselines) as logged. Rank zero only: the
    other ranks' ``experiment`` is a stand-in without ``define_metric``."""
    run = logger.experiment
    if not hasattr(run, "define_metric"):
        return
    for name in (*METRICS, "loss"):
        run.define_metric(f"val/{name}", summary=metric_mode(name))
    for name in ("psnr_brain", "ssim_brain"):  # the gain over each baseline (val/psnr_brain_vs_zerofill): its best
        run.define_metric(f"val/{name}_vs_*", summary="max")


def log_test_table(logger: WandbLogger, table) -> None:
    """The test metrics per subject and method (the network and each baseline), in-brain first, as one
    ``wandb.Table`` (``test/per_subject``): a dashboard compares runs subject by subject, not only by
    the mean a scalar summary keeps. ``table``: the module's :class:`~lfmri.scoring.report.MetricsTable`."""
    names = [*(m for m in METRICS if m.endswith("_brain")), *(m for m in METRICS if not m.endswith("_brain"))]
    rows = []
    for subject in table.subjects:
        for method, metrics in table.summary(subject).items():
            rows.append([subject, method, max(n for _, _, n in metrics.values()), *(metrics[m][0] for m in names)])
    if rows:
        logger.log_table(key="test/per_subject", columns=["subject", "method", "slices", *names], data=rows)


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
        group = Path(job["sweep_dir"]).name[-GROUP_LIMIT:]  # one group per sweep, named as its folder
    if name is None:
        name = run_name(job) or Path(save_dir).name
    tags = [t[:TAG_LIMIT] for t in dict.fromkeys([*(tags or []), *(str(t) for t in extra_tags or [])])]
    kwargs.setdefault("job_type", "train")
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
