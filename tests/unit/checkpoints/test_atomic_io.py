"""Atomic checkpoint writes: a failed or killed write leaves the previous file; every trainer config uses them."""

from __future__ import annotations

import errno
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from lfmri.checkpoints.atomic_io import AtomicCheckpointIO, atomic_torch_save
from tests.helpers.config import compose
from tests.helpers.run import ROOT


def test_a_failed_write_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, path)

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        AtomicCheckpointIO().save_checkpoint({"big": torch.zeros(10_000), "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]  # no temporary file left


@pytest.mark.parametrize("failure", [OSError(errno.ENOSPC, "No space left on device"),
                                     RuntimeError("[enforce fail at inline_container.cc:664] . unexpected pos 64 vs 0: file write failed"),
                                     RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 5120 vs 4958")],
                         ids=["oserror", "torch-zip-writer", "torch-unexpected-pos"])
def test_a_full_disk_is_one_line_naming_the_file_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, failure):
    import lfmri.checkpoints.atomic_io as atomic_io
    from lfmri.errors import StorageError

    path = tmp_path / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(1)}, path)

    def full(obj, target):
        with open(target, "wb") as file:
            file.write(b"half")
        raise failure

    monkeypatch.setattr(atomic_io.torch, "save", full)
    with pytest.raises(StorageError) as info:
        AtomicCheckpointIO().save_checkpoint({"step": torch.tensor(2)}, path)
    assert str(path) in str(info.value) and "\n" not in str(info.value) and "resume" in str(info.value)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["step"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]


def test_a_process_killed_while_writing_leaves_the_previous_checkpoint(tmp_path):
    path = tmp_path / "last.ckpt"
    atomic_torch_save({"step": torch.tensor(1)}, path)
    writer = textwrap.dedent(f"""
        import torch
        from lfmri.checkpoints.atomic_io import atomic_torch_save
        while True:  # large writes, over and over, until killed
            atomic_torch_save({{"step": torch.tensor(2), "weights": torch.rand(64_000_000)}}, {str(path)!r})
    """)
    proc = subprocess.Popen([sys.executable, "-c", writer], cwd=ROOT)
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob(".last.*.tmp.ckpt")):  # a write is under way (.last.<pid>.<hex>.tmp.ckpt)
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.001)
    finally:
        proc.kill()
        proc.wait()
    checkpoint = torch.load(path, weights_only=True)  # complete: the old one, or a whole new one
    assert int(checkpoint["step"]) in (1, 2)
    if int(checkpoint["step"]) == 2:
        assert checkpoint["weights"].numel() == 64_000_000


def test_every_trainer_config_writes_checkpoints_atomically():
    from hydra.utils import instantiate

    for trainer in ("default", "ddp_cpu"):
        cfg = compose(f"trainer={trainer}", output_dir="/tmp/unused")
        built = instantiate(cfg.trainer, logger=False, enable_progress_bar=False, precision="32-true")  # auto: lfmri.training.run
        assert isinstance(built.strategy.checkpoint_io, AtomicCheckpointIO), trainer
