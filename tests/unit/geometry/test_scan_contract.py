"""``lfmri.geometry.scan_contract``: each shipped network states the input it expects, and scans
outside it are named (warned about, refused, or let through as the user chose)."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from lfmri.checkpoints.load import METADATA_KEY, load_checkpoint
from lfmri.errors import ConfigError
from lfmri.geometry.nifti import Volume
from lfmri.geometry.scan_contract import check_mode, check_scan, contract_of, enforce_contract
from lfmri.pretrained import available, checkpoint_path


def shipped_contract(name: str) -> dict:
    return contract_of(load_checkpoint(checkpoint_path(name))[METADATA_KEY]["card"])


def scan(zooms, shape=(64, 64, 40), source="scan.nii.gz") -> Volume:
    return Volume(np.zeros(shape, np.float32), np.diag([*zooms, 1.0]), source)


@pytest.mark.parametrize("name", available())
def test_every_shipped_network_states_the_input_it_expects(name):
    contract = shipped_contract(name)
    assert contract and contract["summary"] and contract["contrast"] and contract["orientation"] and contract["field_of_view"]
    for key in ("scan_voxel_mm", "reference_voxel_mm"):
        assert len(contract[key]) == 3 and all(low < high for low, high in contract[key])


def test_a_2mm_scan_given_to_lowfield_sim_is_named_with_what_the_model_expects(caplog):
    contract = shipped_contract("lowfield-sim")
    assert check_scan(scan((1.6, 1.6, 5.0), (112, 138, 40)), contract) == []  # the low-field grid it trained on
    problems = check_scan(scan((2.0, 2.0, 2.0), (90, 110, 90), "t1_2mm.nii.gz"), contract)
    assert problems == ["voxel size 2 mm along axis 2 (S-I), expected 4-6 mm"]
    with caplog.at_level(logging.WARNING):
        enforce_contract(scan((2.0, 2.0, 2.0), (90, 110, 90), "t1_2mm.nii.gz"), contract, "lowfield-sim", "warn")
    message = caplog.records[-1].getMessage()
    assert "t1_2mm.nii.gz" in message and "lowfield-sim expects 64 mT T1 brain" in message and "4-6 mm" in message
    assert "contract=refuse" in message
    # and what to do instead: resample, train, or no shipped network fits when none is offered
    assert "Instead: resample the scan to voxels of 1.2-2.2 x 1.2-2.2 x 4-6 mm" in message and "train a network" in message


def test_the_warning_names_the_shipped_networks_a_scan_fits(caplog):
    contracts = {name: shipped_contract(name) for name in available()}
    t1_3mm = scan((3.0, 3.0, 2.0), (64, 72, 60), "t1_3mm.nii.gz")  # srdensenet-kspace-x2's scans, not lowfield-sim's
    with caplog.at_level(logging.WARNING):
        enforce_contract(t1_3mm, contracts["lowfield-sim"], "lowfield-sim", "warn", alternatives=lambda: contracts)
    message = caplog.records[-1].getMessage()
    assert "Instead: use a shipped network made for such scans (pretrained=gan-cpce-kspace-x2, pretrained=srdensenet-kspace-x2)" in message
    t1_1mm = scan((1.0, 1.0, 1.0), (160, 200, 160), "t1_1mm.nii.gz")  # what real 1 mm scans look like: none fits
    with pytest.raises(ConfigError, match=r"Instead: no shipped network is made for such scans .*resample the scan"):
        enforce_contract(t1_1mm, contracts["srdensenet-kspace-x2"], "srdensenet-kspace-x2", "refuse", alternatives=lambda: contracts)


def test_6mm_slices_given_to_a_2mm_model_are_warned_about_refused_or_let_through(caplog):
    contract = shipped_contract("srdensenet-kspace-x2")
    thick = scan((3.0, 3.0, 6.0), source="thick.nii.gz")
    assert check_scan(thick, contract) == ["slice thickness 6 mm along axis 2 (S-I) (the network's slice axis), expected 1.6-3 mm"]
    assert check_scan(scan((3.0, 3.0, 2.0)), contract) == []
    assert "slice thickness 6 mm" in check_scan(scan((1.0, 1.0, 6.0)), contract, role="reference")[-1]
    with caplog.at_level(logging.WARNING):
        enforce_contract(thick, contract, "srdensenet-kspace-x2", "warn")
        assert len(caplog.records) == 1 and "thick.nii.gz" in caplog.records[0].getMessage()
        enforce_contract(thick, contract, "srdensenet-kspace-x2", "ignore")
        assert len(caplog.records) == 1
    with pytest.raises(ConfigError, match=r"thick.nii.gz: .*slice thickness 6 mm.*contract=warn runs it anyway"):
        enforce_contract(thick, contract, "srdensenet-kspace-x2", "refuse")
    enforce_contract(thick, None, "an old checkpoint", "refuse")  # no contract: nothing to compare with


def test_a_field_of_view_beyond_the_trained_box_is_named():
    contract = shipped_contract("lowfield-sim")
    problems = check_scan(scan((1.6, 1.6, 5.0), (150, 138, 40)), contract)
    assert problems == ["field of view 240 mm along axis 0 (R-L), trained on at most 179 mm (the output still covers all of it)"]


def test_unknown_contract_modes_name_the_option():
    assert check_mode("refuse") == "refuse"
    with pytest.raises(ConfigError, match="contract='strict': choose one of warn, refuse, ignore"):
        check_mode("strict")
