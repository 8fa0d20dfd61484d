"""IXI: a local folder, and the download (offline, from a local server) with resume, checksum and safe extraction."""

from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
from pathlib import Path

import pytest

from lfmri.cli import ixi as ixi_cli
from lfmri.data import ixi
from lfmri.degrade.degradations import KSpaceDegradation
from tests.helpers.volumes import write_phantom

SUBJECTS = ["IXI002-Guys-0828", "IXI012-HH-1211", "IXI013-HH-1212"]


CUT: dict[str, int] = {}  # file -> bytes the test server sends before dropping the connection


def make_tarball(tmp_path: Path, modality: str = "T2") -> bytes:
    for i, subject in enumerate(SUBJECTS):
        write_phantom(tmp_path / "src" / f"{subject}-{modality}.nii.gz", shape=(24, 28, 12), seed=i)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in sorted((tmp_path / "src").iterdir()):
            tar.add(path, arcname=path.name)
    return buffer.getvalue()


@pytest.fixture
def server():
    """A local HTTP server that honours Range requests and records them (tests never leave the machine)."""
    files: dict[str, bytes] = {}
    ranges: list[str | None] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            body = files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            header = self.headers.get("Range")
            ranges.append(header)
            start = int(header.split("=")[1].split("-")[0]) if header else 0
            self.send_response(206 if header else 200)
            self.send_header("Content-Length", str(len(body) - start))
            self.end_headers()
            self.wfile.write(body[start:][: CUT.pop(self.path.lstrip("/"), None)])

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", files, ranges
    httpd.shutdown()


def test_ixi_download_resumes_checks_and_extracts_then_reads(tmp_path, server):
    base, files, ranges = server
    body = make_tarball(tmp_path)
    files["IXI-T2.tar"] = body
    md5 = hashlib.md5(body).hexdigest()
    dest = tmp_path / "ixi"
    dest.mkdir()
    (dest / "IXI-T2.tar.part").write_bytes(body[:1000])  # an interrupted earlier download
    folder = ixi.download("T2", dest, url=f"{base}/IXI-T2.tar", md5=md5)
    assert ranges == ["bytes=1000-"]
    assert (dest / "IXI-T2.tar").read_bytes() == body and not (dest / "IXI-T2.tar.part").exists()
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{s}-T2.nii.gz" for s in SUBJECTS)
    # a second call neither downloads nor overwrites
    (folder / f"{SUBJECTS[0]}-T2.nii.gz").write_bytes(b"user's own file")
    ixi.download("T2", dest, url=f"{base}/IXI-T2.tar", md5=md5)
    assert len(ranges) == 1 and (folder / f"{SUBJECTS[0]}-T2.nii.gz").read_bytes() == b"user's own file"
    # the reader finds the modality's volumes under root
    write_phantom(folder / f"{SUBJECTS[0]}-T2.nii.gz", shape=(24, 28, 12), seed=0)
    write_phantom(folder / f"{SUBJECTS[0]}-PD.nii.gz", shape=(24, 28, 12), seed=5)  # another modality: ignored
    dm = ixi.IXIDataModule(root=str(dest), modality="T2", degradation=KSpaceDegradation(hr_size=24), fractions=(1, 1, 1))
    dm.setup("fit")
    assert sorted(dm.volumes) == sorted(f"{s}-T2" for s in SUBJECTS)


def test_ixi_download_rejects_a_bad_checksum_and_works_from_a_file_url(tmp_path, server, capsys):
    base, files, _ = server
    body = make_tarball(tmp_path, "PD")
    files["IXI-PD.tar"] = body
    with pytest.raises(ValueError, match=r"IXI-PD.tar.part: MD5 \w+ does not match the expected 0{32}"):
        ixi.download("PD", tmp_path / "bad", url=f"{base}/IXI-PD.tar", md5="0" * 32)
    assert not (tmp_path / "bad" / "IXI-PD.tar").exists()
    tarball = tmp_path / "local.tar"
    tarball.write_bytes(body)
    code = ixi_cli.main(["download", "modality=PD", f"dest={tmp_path / 'ok'}", f"url={tarball.as_uri()}",
                         f"md5={hashlib.md5(body).hexdigest()}"])
    assert code == 0 and "3 PD volumes" in capsys.readouterr().out


def test_ixi_extraction_refuses_members_that_leave_the_folder(tmp_path):
    archive = tmp_path / "evil.tar"
    with tarfile.open(archive, "w") as tar:
        info = tarfile.TarInfo("../escape.nii.gz")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(ValueError, match="escape.nii.gz.*leaves"):
        ixi.extract(archive, tmp_path / "out")
    assert not (tmp_path / "escape.nii.gz").exists()


def test_ixi_download_says_a_dropped_transfer_resumes_and_a_non_tar_is_not_an_archive(tmp_path, server, capsys):
    base, files, ranges = server
    body = make_tarball(tmp_path)
    files["IXI-T2.tar"] = body
    md5 = hashlib.md5(body).hexdigest()
    CUT["IXI-T2.tar"] = 5000  # the connection drops after 5000 bytes
    args = ["download", "modality=T2", f"dest={tmp_path / 'ixi'}", f"url={base}/IXI-T2.tar", f"md5={md5}"]
    assert ixi_cli.main(args) == 1
    err = capsys.readouterr().err
    assert "run the same command again to continue" in err and "corrupt" not in err and "Traceback" not in err
    assert ixi_cli.main(args) == 0 and ranges[-1] == "bytes=5000-"  # the rerun continues and succeeds
    files["IXI-PD.tar"] = b"<html>not a tarball</html>" * 40
    bad = ["download", "modality=PD", f"dest={tmp_path / 'ixi'}", f"url={base}/IXI-PD.tar",
           f"md5={hashlib.md5(files['IXI-PD.tar']).hexdigest()}"]
    assert ixi_cli.main(bad) == 1
    assert "is not a tar archive" in capsys.readouterr().err
