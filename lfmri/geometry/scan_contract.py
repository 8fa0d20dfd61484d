"""The input a trained network expects (its contract), and the check of a scan against it.

A network restores what it was trained on: a 2 mm axial T1 model given a scan with 6 mm slices, or
a low-field model given an ordinary 2 mm scan, returns an image without complaint and without
merit. Every shipped checkpoint therefore carries its contract as plain data in its card
(``checkpoint["lfmri"]["card"]["input_contract"]``, so it travels with the weights), and
``lfmri-predict`` and ``evaluate.py`` compare each input with it (:func:`check_scan`).

A contract is a dict:

- ``summary``: one short line (``python -m lfmri.pretrained list`` shows it);
- ``contrast``, ``orientation``, ``field_of_view``: what the card says, in words;
- ``slice_axis``: the axis (of the canonical RAS voxel order) the network's slices are cut along;
- ``scan_voxel_mm``: per canonical axis, the ``[min, max]`` voxel size of a scan ``lfmri-predict``
  super-resolves (the low-resolution input);
- ``reference_voxel_mm``: the same for the high-resolution reference ``evaluate.py`` degrades;
- ``fov_mm`` (optional): per axis, the largest extent the network was trained on. Larger scans
  are still covered whole (nothing is cropped); the check says the margin was never trained.

The ranges are those of the training data, widened by about 10 %: outside them is a warning
(default ``contract=warn``), a refusal (``contract=refuse``), or nothing (``contract=ignore``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from lfmri.errors import ConfigError
from lfmri.geometry.nifti import Volume

log = logging.getLogger(__name__)

CONTRACT_KEY = "input_contract"  # in a checkpoint's card
CONTRACT_MODES = ("warn", "refuse", "ignore")
ROLES = {"scan": "scan_voxel_mm", "reference": "reference_voxel_mm"}
AXES = ("R-L", "A-P", "S-I")  # canonical RAS voxel axes


def contract_of(card: Mapping | None) -> Mapping | None:
    """The contract a checkpoint's card carries, or ``None`` (checkpoints trained before contracts)."""
    return (card or {}).get(CONTRACT_KEY) or None


def check_mode(mode: str, option: str = "contract") -> str:
    """``mode`` when it is one of :data:`CONTRACT_MODES`, else a one-line error naming ``option``."""
    if str(mode) not in CONTRACT_MODES:
        raise ConfigError(f"{option}={mode!r}: choose one of {', '.join(CONTRACT_MODES)}")
    return str(mode)


def _mm(values: Sequence[float]) -> str:
    return " x ".join(f"{v:g}" for v in values)


def check_scan(volume: Volume, contract: Mapping | None, role: str = "scan") -> list[str]:
    """What in ``volume`` lies outside ``contract`` (empty when nothing does, or without a contract).

    ``role``: ``"scan"`` for a scan to super-resolve (``lfmri-predict``), ``"reference"`` for a
    high-resolution volume ``evaluate.py`` degrades. Voxel sizes and extents are those of the
    canonical RAS voxel order (:class:`lfmri.geometry.nifti.Volume`), whatever order the file stored.
    """
    if not contract:
        return []
    if role not in ROLES:
        raise ValueError(f"check_scan: role must be one of {sorted(ROLES)}, got {role!r}")
    zooms = np.asarray(volume.zooms, dtype=np.float64)
    extent = zooms * np.asarray(volume.data.shape[:3], dtype=np.float64)
    slice_axis = contract.get("slice_axis")
    problems = []
    for axis, bounds in enumerate(contract.get(ROLES[role]) or []):
        if bounds is None:
            continue
        low, high = (float(b) for b in bounds)
        if not low * (1 - 1e-6) <= zooms[axis] <= high * (1 + 1e-6):
            what = "slice thickness" if axis == slice_axis else "voxel size"
            note = " (the network's slice axis)" if axis == slice_axis else ""
            problems.append(f"{what} {zooms[axis]:g} mm along axis {axis} ({AXES[axis]}){note}, expected {low:g}-{high:g} mm")
    for axis, largest in enumerate(contract.get("fov_mm") or []):
        if largest is not None and extent[axis] > float(largest) * 1.1:
            problems.append(f"field of view {extent[axis]:.0f} mm along axis {axis} ({AXES[axis]}), trained on at most "
                            f"{float(largest):g} mm (the output still covers all of it)")
    return problems


def what_to_do(volume: Volume, contract: Mapping, model: str, role: str = "scan",
               alternatives: Callable[[], Mapping[str, Mapping]] | None = None) -> str:
    """What a user can do with a scan outside ``model``'s contract: the shipped networks whose contracts
    it fits (``alternatives()``: name -> contract, asked only now), resampling onto the expected
    voxels, or training a network on such scans."""
    options = []
    fits = [name for name, other in (alternatives() if alternatives else {}).items()
            if name != model and other and not check_scan(volume, other, role)]
    if fits:
        options.append("use a shipped network made for such scans (" + ", ".join(f"pretrained={n}" for n in fits) + ")")
    elif alternatives is not None:
        options.append("no shipped network is made for such scans (lfmri-pretrained list shows what each expects)")
    voxels = contract.get(ROLES[role])
    if voxels:
        options.append(f"resample the {'scan' if role == 'scan' else 'volume'} to voxels of "
                       + " x ".join("any" if b is None else f"{b[0]:g}-{b[1]:g}" for b in voxels) + " mm (R-L x A-P x S-I)")
    options.append("or train a network on volumes like it (docs/training.md; budget=quick for a first run)")
    return "; ".join(options)


def enforce_contract(volume: Volume, contract: Mapping | None, model: str, mode: str, role: str = "scan",
                     alternatives: Callable[[], Mapping[str, Mapping]] | None = None) -> None:
    """Warn about (``mode="warn"``), refuse (``"refuse"``: :class:`ConfigError`) or ignore a scan
    outside ``model``'s contract. The message names the file, what it has, what the model expects and
    what the user can do instead (:func:`what_to_do`; ``alternatives``: the shipped networks' contracts)."""
    if check_mode(mode) == "ignore":
        return
    problems = check_scan(volume, contract, role)
    if not problems:
        return
    kind = "scan" if role == "scan" else "reference volume"
    message = (f"{volume.source}: voxels {_mm(volume.zooms)} mm; {model} expects {contract.get('summary', 'another input')}: "
               + "; ".join(problems))
    advice = what_to_do(volume, contract, model, role, alternatives)
    if mode == "refuse":
        raise ConfigError(f"{message}. Refused (contract=refuse); contract=warn runs it anyway. Instead: {advice}")
    log.warning("%s. The %s is outside what %s was trained on: expect less from it (contract=refuse stops such "
                "inputs, contract=ignore silences this). Instead: %s", message, kind, model, advice)
