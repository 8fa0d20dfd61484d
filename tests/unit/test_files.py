"""``lfmri.files``: stale temporaries of dead writers are removed, a live writer's are kept."""

from __future__ import annotations


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
