"""What ``evaluate.py`` runs: checkpoints read, compared and scored volume by volume.

:func:`prepare` reads the checkpoints (:class:`lfmri.checkpoints.stored_run.StoredRun`), checks
that they may be compared, builds the volumes (:mod:`lfmri.evaluation.volumes`) and the
:class:`~lfmri.evaluation.comparison.Evaluator`; :func:`evaluate` runs it and prints the table.
One or several networks (checkpoints that share degradation, scale, normalisation and slice axis)
and the zero-fill and bicubic baselines run on the same degraded slices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

from omegaconf import DictConfig

from lfmri.checkpoints.load import CheckpointError
from lfmri.checkpoints.stored_run import StoredRun, shipped_contracts
from lfmri.contracts import check_compatible
from lfmri.data.splits import subject_groups
from lfmri.degrade.baselines import make_baselines
from lfmri.degrade.denoise3d import make_denoisers
from lfmri.errors import ConfigError
from lfmri.evaluation.checkpoints import check_comparable, check_unseen, checkpoint_paths, method_names
# the comparison and its volumes have modules of their own; their names stay importable from here
from lfmri.evaluation.comparison import Evaluator, Method, file_label, sample_mode  # noqa: F401
from lfmri.evaluation.volumes import EvalVolume, volumes_from_datamodule, volumes_from_files
from lfmri.geometry.inputs import expand_inputs
from lfmri.geometry.scan_contract import check_mode, contract_of, enforce_contract
from lfmri.inference.network import resolve_device
from lfmri.run_options import RunOptions
from lfmri.scoring.report import MetricsTable

log = logging.getLogger(__name__)


def prepare(cfg: DictConfig) -> tuple[Evaluator, list[EvalVolume], list[Path]]:
    """What ``evaluate.py`` runs: the evaluator, the volumes to score and the checkpoint paths.

    The first checkpoint fixes normalisation, slice axis, degradation and seeds; every other must
    share them (checked before any work), and all are scored on the same degraded slices.
    """
    options = RunOptions.from_config(cfg)  # evaluate.yaml's run options; RunOptions' defaults where a key is left out
    if int(options.batch_size) < 1:
        raise ConfigError(f"batch_size={options.batch_size}: must be a positive number of slices")
    tile, overlap = int(options.tile_size), int(options.tile_overlap)
    if tile < 1 or not 0 <= overlap < tile:
        raise ConfigError(f"tile_size={tile}, tile_overlap={overlap}: need tile_size >= 1 and 0 <= tile_overlap < tile_size")
    try:
        resolve_device(options.device)  # an unknown device fails before any checkpoint is read
    except ValueError as err:
        raise ConfigError(str(err)) from None
    check_mode(str(cfg.get("contract", "warn")))
    given = cfg.get("classical") or []
    # classical=nlm3d (no brackets) is one name, as in classical=[nlm3d]: never iterated letter by letter
    classical = [str(given)] if isinstance(given, str) else [str(name) for name in given]
    make_denoisers(classical)  # an unknown name, or bm4d not installed, fails before any checkpoint is read
    paths = checkpoint_paths(cfg)
    trust = list(cfg.get("trust_targets") or [])
    runs = [StoredRun.load(p, trust) for p in paths]
    check_comparable(paths, runs)
    train_cfg = runs[0].config
    degradation = runs[0].degradation()
    nets = [run.network() for run in runs]
    for net, run in zip(nets, runs):
        try:
            check_compatible(net, degradation)  # a checkpoint whose model.scale and degradation disagree
        except ConfigError as err:
            raise CheckpointError(f"{run.source}: {err}") from None
    cards = [run.card for run in runs]
    card_names = [card.get("name") or type(net).__name__.lower() for card, net in zip(cards, nets)]
    names = method_names(card_names, paths, reserved=[*make_baselines(degradation), *classical])
    # the first checkpoint's split: data added to a folder since training cannot leak into the test set
    datamodule = runs[0].datamodule(
        degradation=degradation,
        input_mode=sample_mode(nets),
        split=runs[0].split,
        num_workers=0,
    )
    failed: dict[str, str] = {}
    if cfg.get("inputs") is not None:
        volumes, failed = volumes_from_files(expand_inputs(cfg.inputs), datamodule)
        volumes = within_contract(volumes, cards[0], names[0], str(cfg.get("contract", "warn")), failed)
    else:
        datamodule.setup("test")
        check_unseen(datamodule.split["test"], paths, runs)
        volumes = volumes_from_datamodule(datamodule)
    evaluator = Evaluator(
        dict(zip(names, nets)),
        degradation,
        slice_axis=int(train_cfg.data.slice_axis),
        seed=int(train_cfg.data.seed),
        options=options,
        brain_threshold=float(train_cfg.module.get("brain_threshold", 0.05)),
        tta=bool(cfg.get("tta", False)),
        cards=dict(zip(names, cards)),
        self_ensemble=bool(cfg.get("self_ensemble", False)),
        classical=classical,
    )
    evaluator.description = runs[0].provenance(int(degradation.scale)) + (f" +{len(paths) - 1}" if len(paths) > 1 else "")
    evaluator.groups = subject_groups([v.name for v in volumes], runs[0].split)
    evaluator.input_failures = failed  # inputs that could not be read: reported with the run's own failures
    return evaluator, volumes, paths


def within_contract(volumes: list[EvalVolume], card: Mapping, model: str, mode: str, failed: dict[str, str]) -> list[EvalVolume]:
    """The volumes ``contract=mode`` lets through: each input is checked against the input the first
    checkpoint's card says it expects (:mod:`lfmri.geometry.scan_contract`; a warning by default),
    and a refused one joins ``failed`` with the reason, like an unreadable file."""
    kept = []
    for v in volumes:
        try:
            enforce_contract(v.volume, contract_of(card), model, mode, role="reference", alternatives=shipped_contracts)
            kept.append(v)
        except ConfigError as err:
            failed[v.volume.source] = str(err)
            log.error("%s", err)
    return kept


def evaluate(cfg: DictConfig) -> MetricsTable:
    """``evaluate.py``: checkpoints on the first one's test split, or on the HR volumes in ``cfg.inputs``."""
    evaluator, volumes, paths = prepare(cfg)
    if evaluator.input_failures and not volumes:  # every input failed: no empty tables
        table = MetricsTable()
        table.failures = evaluator.input_failures
        return table
    table = evaluator.run(volumes, cfg.output_dir, overwrite=bool(cfg.overwrite))
    table.failures = {**evaluator.input_failures, **table.failures}
    print("\n" + table.to_markdown(f"Evaluation of {', '.join(map(str, paths))}{evaluator.ensemble_note}", evaluator.groups))
    log.info("outputs written to %s", cfg.output_dir)
    return table
