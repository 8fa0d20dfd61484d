"""A run folder as a resumed run reads it: its stored config and overrides (plain YAML, no aliases,
never evaluated), whether it already finished, and what may differ between the stored config and the
new one (:data:`RESUME_FREE_KEYS`, :func:`config_changes`). :func:`lfmri.cli.common.check_resume` decides
with these; they read and compare, and change nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from lfmri.errors import ConfigError
from lfmri.files import load_yaml_record

# Keys that may change when a run is resumed without resume_allow_changes=true: they extend the
# run (max_epochs/max_steps/max_time), change throughput (workers, pinning, progress display), what
# is reported (loggers, tags, extras) or what watches the loop (callbacks: checkpoint cadence,
# progress lines, early stopping, a test's pause) or which code a checkpoint may name (trust_targets,
# a security opt-in) or what a sweep reads as the run's result (optimized_metric), never the data,
# degradation, model, loss or optimiser.
RESUME_FREE_KEYS = (
    "resume",
    "resume_allow_changes",
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.enable_progress_bar",
    "data.num_workers",
    "data.pin_memory",
    "data.degrade_on",  # where the same patches' distribution is drawn (loader or device): throughput
    "data.resident",
    "logger.",
    "callbacks.",
    "extras.",
    "tags",
    "paths.",  # where outputs go and data is found (a moved data folder): not what trains
    "task_name",
    "trust_targets",
    "optimized_metric",
)
CHANGES_FILE = "resume_changes.yaml"

def flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    if isinstance(node, dict) and node:
        out = {}
        for key, value in node.items():
            out.update(flat(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: node}


def config_changes(stored: dict, new: dict, resolve: Callable[[str], Any] | None = None) -> dict[str, tuple[Any, Any]]:
    """Differing dotted keys (stored value, new value), except :data:`RESUME_FREE_KEYS`.

    ``resolve(key)``: the new config's resolved value of a key; a stored value that the new config
    now writes as an interpolation (``data.batch_size: 12`` -> ``${lfmri.batch_scaled:12,${batch_scale}}``)
    is no change when the interpolation resolves to it."""
    old, now = flat(stored), flat(new)
    missing = "<unset>"
    changes = {}
    for key in dict.fromkeys([*old, *now]):
        if any(key == free or (free.endswith(".") and key.startswith(free)) for free in RESUME_FREE_KEYS):
            continue
        before, after = old.get(key, missing), now.get(key, missing)
        if missing in (before, after) and (after if before is missing else before) in (None, False, [], {}):
            continue  # an option added (or removed) by an lfmri upgrade, at its neutral default
        if before != after and isinstance(after, str) and "${" in after and resolve is not None and before is not missing:
            try:
                if resolve(key) == before:
                    continue
            except Exception:  # noqa: BLE001 - an interpolation that does not resolve here is a change
                pass
        if before != after:
            changes[key] = (before, after)
    return changes


def user_config(config: DictConfig) -> dict:
    """The composed config without the ``hydra`` node, unresolved (as ``.hydra/config.yaml`` holds it)."""
    container = OmegaConf.to_container(config, resolve=False)
    container.pop("hydra", None)
    return container


def run_command(run_dir: Path) -> str:
    """`` (lfmri-train <the run's overrides> resume=true hydra.run.dir=DIR)``, from its ``.hydra/overrides.yaml``."""
    import shlex

    file = run_dir / ".hydra" / "overrides.yaml"
    if not file.is_file():
        return ""
    try:
        overrides = load_yaml_record(file) or []
    except (OSError, ValueError):  # a damaged record names no command
        return ""
    recorded = [str(o) for o in overrides if not str(o).startswith(("hydra.", "resume=", "resume_allow_changes="))]
    words = " ".join(shlex.quote(o) for o in [*recorded, "resume=true", f"hydra.run.dir={run_dir}"])
    return f" (lfmri-train {words})"


def finished_run(run_dir: Path, config: DictConfig) -> str:
    """What says that ``run_dir`` finished within ``config``'s limits (``"epoch 8, step 800, tested"``), or "".

    A run writes ``metrics.json`` after its test, at the very end; it is finished for this config
    when it also reached the epochs or steps asked for now (a resume with a raised
    ``trainer.max_epochs``/``max_steps`` trains on).
    """
    import json

    record_path = run_dir / "metrics.json"
    try:
        record = json.loads(record_path.read_text())
        epoch, step = int(record["epoch"]), int(record["global_step"])
    except (OSError, ValueError, KeyError, TypeError):  # absent, or not a record of a finished run: not finished
        return ""
    trainer = config.get("trainer") or {}
    max_epochs, max_steps = trainer.get("max_epochs"), trainer.get("max_steps")
    by_epochs = max_epochs is not None and int(max_epochs) >= 0 and epoch >= int(max_epochs)
    by_steps = max_steps is not None and int(max_steps) > 0 and step >= int(max_steps)
    return f"epoch {epoch}, step {step}, tested: {record_path.name}" if by_epochs or by_steps else ""


def read_stored_config(path: Path) -> dict:
    """A run folder's ``.hydra/config.yaml`` as inert data: plain YAML, never an OmegaConf config.

    The file holds the run's config unresolved (``${output_dir}``, ``${metric_mode:${monitor}}``), so
    interpolations in it are expected and cannot be refused; they are compared as the text they are
    and never evaluated (an edited ``${oc.env:VAR}`` or ``${oc.create:{_target_: ...}}`` stays a string).
    :func:`lfmri.files.load_yaml_record` builds only plain containers (no aliases, no FIFO, a size
    limit); no OmegaConf node is ever made from the file.
    """
    try:
        stored = load_yaml_record(path)
    except (OSError, ValueError) as err:
        raise ConfigError(f"{path}: not a readable run config ({type(err).__name__}: {str(err).splitlines()[0]})") from None
    if not isinstance(stored, dict):
        raise ConfigError(f"{path}: not a run config (a mapping of options); the run folder was changed by hand")
    return stored


def hydra_app(run_dir: Path) -> str | None:
    """Which lfmri Hydra app wrote ``run_dir/.hydra`` (``train``, ``evaluate``), from ``hydra.yaml``
    read as plain YAML; ``None`` when there is no record, ``"?"`` when it cannot be read."""
    file = run_dir / ".hydra" / "hydra.yaml"
    if not (run_dir / ".hydra").exists():
        return None
    try:
        record = load_yaml_record(file)
        return str(record["hydra"]["job"]["config_name"])
    except (OSError, ValueError, KeyError, TypeError):
        return "?"
