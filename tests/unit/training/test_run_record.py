"""A training run folder is new, or the run being resumed, or refused; a failed run removes only what it created."""

from __future__ import annotations

import pytest

from lfmri.errors import ExistingOutputError
from lfmri.files import LOCK_NAME
from lfmri.training.run_record import check_new_or_resumed, missing_folders, remove_created


def test_a_folder_with_anything_in_it_is_refused_unless_its_run_is_resumed(tmp_path):
    """hydra.run.dir= an existing folder silently replaced its metrics.json, split.json, logs and .hydra/."""
    check_new_or_resumed(tmp_path / "absent", False)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / LOCK_NAME).write_text("")  # the lock of this run, taken before the check under it
    check_new_or_resumed(empty, False)
    used = tmp_path / "used"
    used.mkdir()
    (used / "metrics.json").write_text("{}")
    for resume in (False, "auto", True):
        with pytest.raises(ExistingOutputError, match=rf"hydra.run.dir={used} already holds metrics.json: a new run starts"):
            check_new_or_resumed(used, resume)
    (used / "checkpoints").mkdir()
    (used / "checkpoints" / "last.ckpt").write_bytes(b"")
    check_new_or_resumed(used, True)
    check_new_or_resumed(used, "auto")
    with pytest.raises(ExistingOutputError, match="already holds checkpoints, metrics.json"):
        check_new_or_resumed(used, False)
    with pytest.raises(ExistingOutputError, match="is an existing file"):
        check_new_or_resumed(used / "metrics.json", False)


def test_cleanup_removes_what_the_run_created_and_never_another_jobs_files(tmp_path):
    """A run failing on a user error removed the topmost folder it found missing, with another job's files."""
    run_dir = tmp_path / "outputs" / "train" / "run1"
    created = missing_folders(run_dir)
    assert created == [run_dir, run_dir.parent, run_dir.parent.parent]
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra" / "config.yaml").write_text("a: 1\n")
    (run_dir / "train.log").write_text("")
    other = run_dir.parent / "run2" / "metrics.json"  # another job, started meanwhile
    other.parent.mkdir()
    other.write_text("{}")
    remove_created(run_dir, True, created)
    assert not run_dir.exists() and other.read_text() == "{}"

    alone = tmp_path / "alone" / "run"
    created = missing_folders(alone)
    (alone / "logs").mkdir(parents=True)
    remove_created(alone, True, created)
    assert not (tmp_path / "alone").exists()

    kept = tmp_path / "kept"  # an empty folder the user made: emptied again, kept
    kept.mkdir()
    (kept / "train.log").write_text("")
    remove_created(kept, True, missing_folders(kept))
    assert kept.is_dir() and not any(kept.iterdir())
    (kept / "theirs.txt").write_text("x")
    remove_created(kept, False, [])  # not new at the start: nothing in it is this run's
    assert (kept / "theirs.txt").exists()
