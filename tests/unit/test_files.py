"""``lfmri.files``: stale temporaries of dead writers are removed, a live writer's are kept."""

from __future__ import annotations

import os

import pytest


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    import os

    from lfmri.files import remove_stale_temporaries

    dead = tmp_path / ".last.ckpt.999999999.0123abcd.tmp"
    live = tmp_path / f".last.ckpt.{os.getppid()}.0123abcd.tmp"  # a running process: its write goes on
    keep = [tmp_path / "last.ckpt", tmp_path / ".hidden.tmp", live]
    for path in [dead, *keep]:
        path.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [dead]
    assert all(p.exists() for p in keep)


def test_a_long_dotted_name_is_staged_and_saved_within_the_file_name_limit(tmp_path):
    """A method label with dots and 200 characters (a sweep job named by a checkpoint path) used to
    give ``File name too long``: the staging name of the staging name repeated the whole name twice."""
    import nibabel as nib
    import numpy as np

    from lfmri.files import file_extension, remove_stale_temporaries, temporary_name, written_together
    from lfmri.geometry.nifti import save_nifti

    name = "scan_sr_" + "run1_checkpoints_last.ckpt_trainer.max_epochs_2_" * 4 + "x.nii.gz"
    assert len(name) < 255 and file_extension(tmp_path / name) == ".nii.gz"
    assert len(temporary_name(temporary_name(tmp_path / name)).name) < 120
    target = tmp_path / name
    with written_together({"sr": target}) as staging:
        save_nifti(staging["sr"], np.ones((2, 3, 4), np.float32), np.eye(4), overwrite=True)
    assert nib.load(target).shape == (2, 3, 4) and sorted(p.name for p in tmp_path.iterdir()) == [name]
    stale = tmp_path / f".{name[:60]}.999999999.0123abcd.tmp.nii.gz"
    stale.write_bytes(b"x")
    assert remove_stale_temporaries(tmp_path) == [stale]


def test_the_final_step_refuses_a_file_another_writer_created_meanwhile(tmp_path):
    """Two runs into one folder both passed the check before their work: the second one's final
    step must refuse, name the file and leave the first one's content (it used to replace it)."""
    import pytest

    from lfmri.errors import ExistingOutputError
    from lfmri.files import atomic_write, written_together

    target = tmp_path / "a_sr.nii.gz"
    with pytest.raises(ExistingOutputError, match="a_sr.nii.gz"):
        with atomic_write(target, overwrite=False) as tmp:
            tmp.write_bytes(b"second")
            target.write_bytes(b"first")  # the other run finishes while this one writes
    assert target.read_bytes() == b"first" and sorted(p.name for p in tmp_path.iterdir()) == ["a_sr.nii.gz"]

    views = tmp_path / "a_views.png"
    with pytest.raises(ExistingOutputError, match="not written") as caught:
        with written_together({"views": views, "sr": target}, overwrite=False) as staging:
            for path in staging.values():
                path.write_bytes(b"second")
    assert "a_sr.nii.gz" in str(caught.value)
    # the first output this block placed is taken back: the input's files appear together or not at all
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_sr.nii.gz"] and target.read_bytes() == b"first"
    with written_together({"sr": target}) as staging:  # overwrite=True (the default) replaces
        staging["sr"].write_bytes(b"replaced")
    assert target.read_bytes() == b"replaced"
    assert is_temporary_name(tmp_path)


def is_temporary_name(tmp_path):
    from lfmri.files import is_temporary, temporary_name

    return is_temporary(temporary_name(tmp_path / "x.nii.gz")) and not is_temporary(tmp_path / "x.nii.gz")


def test_a_run_folder_has_one_writer_and_a_dead_holder_leaves_no_stale_lock(tmp_path):
    """Two trainings started a second apart into one folder both ran, interleaving their files."""
    import os
    import subprocess
    import sys

    import pytest

    from lfmri.errors import ExistingOutputError
    from lfmri.files import LOCK_NAME, lock_folder, unlock_folder

    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from lfmri.files import lock_folder; lock_folder(sys.argv[1], 'hydra.run.dir'); "
         "print('locked', flush=True); time.sleep(60)", str(folder)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(ExistingOutputError, match=rf"hydra.run.dir={folder}: another lfmri process \(pid {holder.pid}\) is writing"):
            lock_folder(folder, "hydra.run.dir")
    finally:
        holder.kill()  # SIGKILL: the kernel drops its lock with it
        holder.wait()
    assert lock_folder(folder, "hydra.run.dir") == folder / LOCK_NAME
    assert (folder / LOCK_NAME).read_text().strip() == str(os.getpid())
    assert lock_folder(folder, "hydra.run.dir") == folder / LOCK_NAME  # this process again: a no-op
    unlock_folder(folder)
    assert not (folder / LOCK_NAME).exists()  # given back: nothing of lfmri's left among the run's files
    assert lock_folder(folder, "hydra.run.dir") == folder / LOCK_NAME  # and taken again
    unlock_folder(folder)


def test_a_file_system_without_flock_runs_unlocked_with_one_warning(tmp_path, monkeypatch, caplog):
    """NFS without a lock daemon or Lustre mounted noflock raise ENOLCK/EOPNOTSUPP: not "held by another
    process" (only EWOULDBLOCK means that), so the run goes on with one warning line."""
    import errno
    import fcntl
    import logging

    from lfmri.files import LOCK_NAME, lock_folder, unlock_folder

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with caplog.at_level(logging.WARNING, logger="lfmri.files"):
        assert lock_folder(tmp_path / "run", "hydra.run.dir") == tmp_path / "run" / LOCK_NAME
    assert "does not support flock (ENOLCK)" in caplog.text and caplog.text.count("does not support flock") == 1
    unlock_folder(tmp_path / "run")

    def broken(fd, operation):
        raise OSError(errno.EIO, "I/O error")

    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError, match="I/O error"):  # any other failure is not silenced
        lock_folder(tmp_path / "other", "hydra.run.dir")


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo"])
def test_a_lock_that_is_not_a_plain_file_is_refused_and_never_written_through(tmp_path, kind):
    from lfmri.errors import ExistingOutputError
    from lfmri.files import LOCK_NAME, lock_folder

    run = tmp_path / "run"
    run.mkdir()
    users_file = tmp_path / "notes.txt"
    users_file.write_text("mine\n")
    lock = run / LOCK_NAME
    if kind == "symlink":
        lock.symlink_to(users_file)
    elif kind == "folder":
        lock.mkdir()
    else:
        os.mkfifo(lock)
    with pytest.raises(ExistingOutputError, match="is not a plain file"):
        lock_folder(run, "hydra.run.dir")
    assert users_file.read_text() == "mine\n"


def test_records_are_read_without_aliases_fifos_or_unbounded_size(tmp_path):
    import os

    import pytest

    from lfmri.files import load_yaml_record, read_record

    (tmp_path / "ok.yaml").write_text("- model=a\n- x=${oc.env:HOME}\n")
    assert load_yaml_record(tmp_path / "ok.yaml") == ["model=a", "x=${oc.env:HOME}"]  # never resolved
    (tmp_path / "bomb.yaml").write_text("a: &a [x, x]\nb: &b [*a, *a]\nc: [*b, *b]\n")
    with pytest.raises(ValueError, match="bomb.yaml.*alias"):
        load_yaml_record(tmp_path / "bomb.yaml")
    os.mkfifo(tmp_path / "fifo.yaml")
    with pytest.raises(ValueError, match="fifo.yaml: not a regular file"):
        load_yaml_record(tmp_path / "fifo.yaml")
    (tmp_path / "big.yaml").write_text("x" * 2048)
    with pytest.raises(ValueError, match="big.yaml: 2048 bytes"):
        read_record(tmp_path / "big.yaml", limit=1024)
