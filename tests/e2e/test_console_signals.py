"""The console scripts handle SIGTERM as their ``python x.py`` forms do: ``lfmri-evaluate`` killed
mid-run (``kill``, ``scancel``) ends in one line, exit 143, and leaves no temporaries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers.volumes import write_phantom

pytestmark = pytest.mark.e2e


def test_lfmri_evaluate_killed_with_sigterm_leaves_no_temporaries(bicubic_checkpoint, tmp_path):
    inputs = [write_phantom(tmp_path / "in" / f"s{i:02d}.nii.gz", shape=(64, 72, 40), seed=i) for i in range(40)]
    out = tmp_path / "out"
    script = Path(sys.executable).parent / "lfmri-evaluate"
    proc = subprocess.Popen([str(script), f"ckpt_path={bicubic_checkpoint}", f"inputs=[{','.join(map(str, inputs))}]",
                             f"output_dir={out}", "progress=false"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if out.is_dir() and any(p.name.endswith(".nii.gz") for p in out.iterdir()):
            break  # writing its outputs: the moment a kill leaves half files unless it unwinds
        time.sleep(0.05)
    assert proc.poll() is None, "the evaluation ended before it could be stopped: give it more inputs"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, err[-2000:]
    assert "lfmri-evaluate: interrupted (SIGTERM)" in err and "Traceback" not in err
    leftovers = [p.name for p in out.rglob("*") if ".tmp" in p.name]
    assert leftovers == [], leftovers
    assert len(list(out.glob("*_sr.nii.gz"))) < len(inputs)  # it was stopped mid-run
    assert os.path.isfile(bicubic_checkpoint)
