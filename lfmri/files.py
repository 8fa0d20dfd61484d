"""Writing files so that nothing a user had is lost and nothing half-written is left behind.

One helper, :func:`atomic_write`, serves every writer in lfmri (NIfTI and MGH volumes, checkpoints,
CSV logs, ONNX and TorchScript exports): the content goes to a hidden temporary name in the target's
folder, is flushed to disk, and is renamed over the target only when complete. A rename within one
file system is atomic on POSIX, so readers see the old file or the new one, never a mix, and a
process killed mid-write leaves only a temporary that :func:`remove_stale_temporaries` recognises.
:func:`written_together` extends this to the several files of one input (all or none appear).

Without ``overwrite`` the final step itself refuses an existing target: the complete temporary is
hard-linked to the target's name (``link`` fails when the name exists, atomically, unlike a check
made before the work), so two runs writing into one folder can never replace each other's file;
the one that comes second gets :class:`~lfmri.errors.ExistingOutputError` naming the file.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import stat
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeVar

from lfmri.errors import ExistingOutputError

K = TypeVar("K")
log = logging.getLogger(__name__)

# ``.<name>.<pid>.<8 hex>.tmp<suffixes>``: the suffixes stay last so that writers choosing a format
# by file name (nibabel: .nii.gz, .mgz) write the right one
_TEMPORARY = re.compile(r"\..+\.(\d+)\.[0-9a-f]{8}\.tmp(\.[A-Za-z0-9]+)*")


def current_umask() -> int:
    """The process umask (reading it means setting it; set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_extension(path: Path) -> str:
    """The format extension of a file name: ``.nii.gz`` for ``a.b.nii.gz``, ``.ckpt`` for ``x.ckpt``."""
    suffixes = path.suffixes[-2:] if path.suffix == ".gz" else path.suffixes[-1:]
    return "".join(suffixes)


def temporary_name(path: Path) -> Path:
    """A unique hidden name beside ``path`` (same folder, so the final rename stays on one file system).

    It starts with (at most 60 characters of) the target's name, for whoever lists the folder, and
    ends with its extension, for writers that choose the format by name; it stays short enough
    when a temporary of a temporary is written (staged outputs saved atomically).
    """
    extension = file_extension(path)
    stem = path.name[: len(path.name) - len(extension)] if extension else path.name
    return path.with_name(f".{stem[:60]}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{extension}")


def _sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (some file systems cannot fsync folders: then skip)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def is_temporary(path: str | os.PathLike) -> bool:
    """Whether ``path`` is named like a temporary of :func:`atomic_write` (a live or a killed writer's)."""
    return _TEMPORARY.fullmatch(Path(path).name) is not None


def _no_clobber(what: str) -> str:
    return f"{what} already exists (written by another run meanwhile?); pass overwrite=true to replace it"


def _place(tmp: Path, path: Path, overwrite: bool) -> None:
    """Give the complete ``tmp`` the name ``path``: replace it, or (``overwrite=False``) refuse an
    existing ``path`` at this very step (``os.link`` fails atomically when the name is taken)."""
    if overwrite:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise ExistingOutputError(_no_clobber(str(path))) from None
    except OSError:  # a file system without hard links (some network and FAT mounts): the same test, two steps
        if os.path.lexists(path):
            raise ExistingOutputError(_no_clobber(str(path))) from None
        os.rename(tmp, path)
        return
    tmp.unlink()


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path to write ``path``'s content to; renamed onto ``path`` when the block succeeds.

    Args:
        path: the file to (re)place; its folder is created.
        overwrite: ``False`` refuses (:class:`~lfmri.errors.ExistingOutputError` naming the file) when
            ``path`` exists, before the work and again at the final step (a concurrent writer).

    The file gets the permissions of any new file under the user's umask (0644 under 022). When the
    block raises, the temporary is removed and ``path`` is as it was.
    """
    path = Path(path)
    if os.path.lexists(path) and not overwrite:
        raise ExistingOutputError(f"{path} already exists; pass overwrite=true to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_name(path)
    try:
        yield tmp
        if tmp.exists():
            os.chmod(tmp, 0o666 & ~current_umask())
            with open(tmp, "rb+") as file:
                os.fsync(file.fileno())
        _place(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    _sync_folder(path.parent)


@contextlib.contextmanager
def written_together(paths: Mapping[K, Path], overwrite: bool = True) -> Iterator[dict[K, Path]]:
    """Temporary names for ``paths``: all renamed into place when the block succeeds, all removed
    when it fails, so one input's outputs appear completely or not at all (no orphan preview that
    blocks a rerun, nothing half-written after a full disk), and existing files stay as they were.

    ``overwrite=False``: a name taken meanwhile (another run writing into the same folder) is
    refused at the final step with :class:`~lfmri.errors.ExistingOutputError`; the files of this
    block placed before it are taken back, so the other run's files stay and none of this one's do.
    """
    staging = {k: temporary_name(Path(p)) for k, p in paths.items()}
    placed: list[Path] = []
    try:
        yield staging
        for key, path in paths.items():
            try:
                _place(staging[key], Path(path), overwrite)
            except ExistingOutputError:
                for done in placed:  # our own links, made a moment ago: this input's outputs appear together or not at all
                    with contextlib.suppress(OSError):
                        done.unlink()
                raise ExistingOutputError(
                    f"{path} appeared while this run was writing it (another run into the same folder?): "
                    f"left untouched, and this run's outputs ({', '.join(Path(p).name for p in paths.values())}) "
                    "were not written; rerun with another output_dir, or overwrite=true to replace them"
                ) from None
            placed.append(Path(path))
    finally:
        for path in staging.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


class Interrupted(KeyboardInterrupt):
    """SIGTERM (or SIGHUP) raised as an exception, like SIGINT's ``KeyboardInterrupt``, so that every
    ``finally`` between the signal and the entry point runs: temporaries are removed, nothing half
    written stays. ``signum``: the signal; the entry point exits ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def signals_raise() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`Interrupted` (the default handlers end the
    process on the spot and leave the temporaries of the writes under way); handlers restored after."""
    import signal

    def handler(signum: int, frame) -> None:
        raise Interrupted(signum)

    names = [name for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]
    try:
        previous = {name: signal.signal(getattr(signal, name), handler) for name in names}
    except ValueError:  # not the main thread: signals stay as they are
        yield
        return
    try:
        yield
    finally:
        for name, old in previous.items():
            signal.signal(getattr(signal, name), old)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete the temporaries of :func:`atomic_write` that a killed process left in ``folder``.

    A SIGKILL during a write leaves ``.last.ckpt.<pid>.<id>.tmp.ckpt``; only files whose writing
    process is gone (or is this one, between writes) are removed, so a concurrent writer (another
    rank, a second job on the same folder) keeps its file. Returns the removed paths.
    """
    removed = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in folder.iterdir():
        match = _TEMPORARY.fullmatch(path.name)
        if match and path.is_file() and (int(match[1]) == os.getpid() or not _alive(int(match[1]))):
            path.unlink(missing_ok=True)
            removed.append(path)
            log.info("removed %s, left by an interrupted write", path)
    return removed


def safe_name(name: object, fallback: str = "output") -> str:
    """``name`` as one file-name part that stays inside its folder.

    Names come from model cards and input files, which anyone can write: path separators, control
    characters and leading dots (``..``, hidden files) are replaced, so ``../../x`` becomes ``x``
    and never leaves the output folder. Other characters (non-ASCII included) are kept.
    """
    cleaned = re.sub(r"[\x00-\x1f\x7f/\\:]+", "_", str(name)).strip(" ._")
    return cleaned or fallback


LOCK_NAME = ".lfmri.lock"  # the lock file of a run folder (training, evaluation): one writer at a time
_HELD_LOCKS: dict[Path, int] = {}  # folder -> open descriptor: the lock lasts as long as this process


# what flock raises on a file system that does not lock (as opposed to EWOULDBLOCK: held by another process)
UNSUPPORTED_LOCK_ERRNOS = frozenset({errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL})


def lock_folder(folder: str | os.PathLike, option: str) -> Path:
    """Take the run folder ``folder`` for this process: an exclusive ``flock`` on ``folder/.lfmri.lock``.

    Refuses (:class:`~lfmri.errors.ExistingOutputError` naming ``option`` and the holder's pid) while
    another process holds it. The descriptor stays open until :func:`unlock_folder` (``run_entry`` at the
    end of its task) or until this process ends: the kernel drops an ``flock`` when its holder exits,
    crashed or killed with SIGKILL alike, so no stale lock is ever left to clear (a pid file or an ``O_EXCL`` marker would outlive a crash). Written here rather than taken
    from a package (``filelock``'s ``FileLock`` is the same ``flock``) because lfmri needs the holder's
    pid in the refusal and the inode check below. Locking the same folder twice in one process is a no-op.
    Returns the lock file.
    """
    import fcntl
    import stat

    folder = Path(folder)
    key = folder.resolve()
    path = folder / LOCK_NAME
    if key in _HELD_LOCKS:
        return path
    folder.mkdir(parents=True, exist_ok=True)
    not_a_file = (f"{option}={folder}: {path} is not a plain file (a symbolic link, folder, FIFO or device); lfmri "
                  "neither follows nor writes through it. Remove it, or choose another folder")
    try:
        # O_NOFOLLOW: a link named like the lock would have the run write its pid into the file it points to;
        # O_NONBLOCK: opening a FIFO must not wait for a reader
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o666 & ~current_umask())
    except OSError as err:
        if err.errno in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise ExistingOutputError(not_a_file) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ExistingOutputError(not_a_file)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # EWOULDBLOCK: the only answer that means another process holds it
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise ExistingOutputError(
            f"{option}={folder}: another lfmri process (pid {holder}) is writing into this folder; "
            "wait for it to end, or choose another folder"
        ) from None
    except OSError as err:
        if err.errno not in UNSUPPORTED_LOCK_ERRNOS:
            os.close(fd)
            raise
        # NFS without a lock daemon, Lustre mounted noflock, some parallel file systems: no lock to take there,
        # which must not refuse every run on the file systems where cluster users keep them
        log.warning("%s=%s: this file system does not support flock (%s): running without the folder lock, so a "
                    "second run into this folder at the same time would not be refused", option, folder,
                    errno.errorcode.get(err.errno, err.errno))
    # the file may have been removed (a failed run cleaning up) between our open and our lock: a lock on a
    # name that no longer exists guards nothing, so it counts only when the name still leads to our file
    if not path.exists() or os.stat(path).st_ino != os.fstat(fd).st_ino:
        os.close(fd)
        raise ExistingOutputError(f"{option}={folder}: the folder changed while this run was taking it; run again")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    _HELD_LOCKS[key] = fd
    return path


def unlock_folder(folder: str | os.PathLike) -> None:
    """Give up the lock :func:`lock_folder` took on ``folder`` and remove its file (``run_entry`` at the
    end of a task; a process that ends without it gives the lock up anyway and leaves the file)."""
    fd = _HELD_LOCKS.pop(Path(folder).resolve(), None)
    if fd is not None:
        # the lock file goes while still locked, so no one else holds it: a process that opened it just
        # before finds its name gone after locking and refuses (the inode check of lock_folder); one
        # killed first leaves the file, which locks nothing
        path = Path(folder) / LOCK_NAME
        with contextlib.suppress(OSError):
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                path.unlink()
        os.close(fd)


RECORD_LIMIT = 1 << 20  # bytes: the largest YAML record (overrides.yaml, multirun.yaml) lfmri reads from a run folder


def read_record(path: str | os.PathLike, limit: int = RECORD_LIMIT) -> str:
    """The text of a small file lfmri wrote into a run folder, read so that the file cannot hurt the
    reader: a FIFO, device or folder is refused without blocking (``O_NONBLOCK``, then a regular-file
    check), and a file over ``limit`` bytes is refused before it is read. Raises ``OSError`` or
    ``ValueError`` naming the file."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: not a regular file")
        if info.st_size > limit:
            raise ValueError(f"{path}: {info.st_size} bytes, more than the {limit} a record of lfmri holds")
        chunks, size = [], 0
        while size <= limit:  # os.read may return less than asked: read to the end (or past the limit)
            chunk = os.read(fd, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        data = b"".join(chunks)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise ValueError(f"{path}: more than the {limit} bytes a record of lfmri holds")
    return data.decode("utf-8")


def load_yaml_record(path: str | os.PathLike, limit: int = RECORD_LIMIT):
    """:func:`read_record` parsed as YAML without aliases (a YAML alias bomb of 1 KB expands to
    gigabytes; lfmri and Hydra never write aliases) and without resolving anything (plain
    ``yaml.safe_load`` data: an interpolation stays a string). ``ValueError`` names the file."""
    import yaml

    class NoAliasLoader(yaml.SafeLoader):
        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                raise yaml.composer.ComposerError(None, None, "a YAML alias (lfmri's records have none)",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)

    text = read_record(path, limit)
    try:
        return yaml.load(text, Loader=NoAliasLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not a YAML record ({str(err).splitlines()[0]})") from None
