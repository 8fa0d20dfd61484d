"""IXI (brain-development.org): T1/T2/PD volumes from a local folder, and their download.

Reading: ``data=ixi data.root=DIR data.modality=T2`` takes every ``IXI*-T2.nii.gz`` under
``DIR`` (recursively) as one subject's high-field volume; everything else is ``data=folder``.

Downloading::

    python -m lfmri.cli.ixi download modality=T2 dest=DIR

fetches the official tarball into ``DIR/IXI-T2.tar`` (resuming an interrupted download with an
HTTP Range request), checks its MD5 (the checksums torchio's IXI dataset publishes; ``md5=`` to
override) and extracts it into ``DIR/IXI-T2/``, never overwriting a file that is already there.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from lfmri.files import atomic_write
from lfmri.data.folder import FolderDataModule

log = logging.getLogger(__name__)

MODALITIES = ("T1", "T2", "PD")
BASE_URL = "http://biomedic.doc.ic.ac.uk/brain-development/downloads/IXI"
MD5 = {  # as published with torchio's IXI dataset
    "T1": "34901a0593b41dd19c1a1f746eac2d58",
    "T2": "e3140d78730ecdd32ba92da48c0a9aaa",
    "PD": "88ecd9d1fa33cb4a2278183b42ffd749",
}
CHUNK = 1 << 20


def check_modality(modality: str) -> str:
    if modality not in MODALITIES:
        raise ValueError(f"IXI modality {modality!r} is not one of {list(MODALITIES)}")
    return modality


class IXIDataModule(FolderDataModule):
    """IXI volumes of one modality under ``root``, split by subject like ``data=folder``."""

    def __init__(self, root: str, modality: str = "T1", **kwargs) -> None:
        modality = check_modality(modality)
        self.root = Path(root).expanduser()
        super().__init__(pattern=str(self.root / "**" / f"IXI*-{modality}.nii.gz"), **kwargs)
        self.modality = modality

    def load_volumes(self):
        if not self.root.is_dir():
            raise FileNotFoundError(
                f"data.root={str(self.root)!r} is not a directory; fetch IXI with "
                f"`python -m lfmri.cli.ixi download modality={self.modality} dest={self.root}`"
            )
        return super().load_volumes()


# --- download -------------------------------------------------------------------------------------
def md5sum(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(url: str, part: Path, timeout: float = 60.0) -> int | None:
    """Download ``url`` into ``part``, continuing after the bytes it already holds when the server
    honours a Range request (206); a server that answers 200 sends the whole file again.

    Returns the size the complete file has according to the server (``None`` when it does not say),
    so a transfer that ended early is told apart from a corrupt one."""
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to fetch: the part is complete
            return None
        raise ConnectionError(f"{url}: HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise ConnectionError(f"{url}: cannot connect ({err.reason})") from err
    with response:
        resumed = have and getattr(response, "status", 200) == 206
        total = _total_size(response, have if resumed else 0)
        if have:
            log.info("%s: %s", part, f"resuming after {have:,} bytes" if resumed else "server ignores Range, starting again")
        with open(part, "ab" if resumed else "wb") as out:
            try:
                shutil.copyfileobj(response, out, CHUNK)
            except (http.client.HTTPException, OSError) as err:  # connection dropped mid-transfer
                out.flush()
                raise ConnectionError(
                    f"{url}: the transfer stopped after {part.stat().st_size:,} bytes ({type(err).__name__}); "
                    f"{part} keeps them: run the same command again to continue where it stopped"
                ) from None
    return total


def _total_size(response, offset: int) -> int | None:
    """The complete file's size from ``Content-Range: bytes a-b/TOTAL`` or offset + ``Content-Length``."""
    headers = getattr(response, "headers", None) or {}
    content_range = headers.get("Content-Range", "") if hasattr(headers, "get") else ""
    if "/" in content_range and content_range.rsplit("/", 1)[1].strip().isdigit():
        return int(content_range.rsplit("/", 1)[1])
    length = headers.get("Content-Length") if hasattr(headers, "get") else None
    return offset + int(length) if length and str(length).isdigit() else None


def safe_members(tar: tarfile.TarFile, dest: Path) -> list[tarfile.TarInfo]:
    """Regular files and folders that stay inside ``dest``; anything else is refused by name."""
    members = []
    root = dest.resolve()
    for member in tar.getmembers():
        target = (dest / member.name).resolve()
        if not (member.isfile() or member.isdir()) or (target != root and root not in target.parents):
            raise ValueError(f"{tar.name}: member {member.name!r} is a link or leaves {dest}; refusing to extract")
        members.append(member)
    return members


def extract(archive: Path, dest: Path) -> tuple[int, int]:
    """Extract ``archive`` into ``dest``; files that already exist are kept. (written, kept)."""
    dest.mkdir(parents=True, exist_ok=True)
    written = kept = 0
    try:
        tar = tarfile.open(archive)
    except tarfile.TarError as err:
        raise ValueError(
            f"{archive} is not a tar archive ({err}); check --url, move the file away and run again"
        ) from None
    with tar:
        for member in safe_members(tar, dest):
            target = dest / member.name
            if member.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            if target.exists():
                kept += 1
                continue
            source = tar.extractfile(member)
            with source, atomic_write(target) as tmp, open(tmp, "wb") as out:
                shutil.copyfileobj(source, out, CHUNK)
            written += 1
    return written, kept


def download(modality: str, dest: str | Path, url: str | None = None, md5: str | None = None) -> Path:
    """Fetch (with resume), verify and extract one IXI modality; returns the extraction folder."""
    modality = check_modality(modality)
    dest = Path(dest).expanduser()
    dest.mkdir(parents=True, exist_ok=True)
    name = f"IXI-{modality}.tar"
    url = url or f"{BASE_URL}/{name}"
    expected = (md5 or MD5[modality]).lower()
    archive, part = dest / name, dest / f"{name}.part"
    if archive.exists():
        actual = md5sum(archive)
        if actual != expected:
            raise ValueError(f"{archive} exists but its MD5 is {actual}, expected {expected}; move it away and run again")
        log.info("%s already downloaded and verified", archive)
    else:
        total = fetch(url, part)
        size = part.stat().st_size
        if total is not None and size < total:
            raise ConnectionError(
                f"{part}: the transfer ended after {size:,} of {total:,} bytes; run the same command again "
                "to continue where it stopped"
            )
        actual = md5sum(part)
        if actual != expected:
            raise ValueError(
                f"{part}: MD5 {actual} does not match the expected {expected} for {url}; the download is corrupt "
                "(delete the .part file and run again) or the archive changed upstream (pass --md5)"
            )
        part.replace(archive)
    folder = dest / f"IXI-{modality}"
    written, kept = extract(archive, folder)
    count = len(list(folder.rglob(f"IXI*-{modality}.nii.gz")))
    print(f"{archive}: extracted {written} files into {folder} ({kept} already there kept); {count} {modality} volumes")
    print(f"train on them: lfmri-train data=ixi data.root={folder} data.modality={modality}")
    return folder
