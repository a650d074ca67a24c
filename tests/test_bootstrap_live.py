"""The archive bootstrap script, run for real by /bin/sh against an HTTP server on loopback.

The server serves a small chain-state tarball, honours Range requests (as object stores do), and can cut the first
download short. Every case is bounded: the script retries without delay, and each run has a timeout.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from zbi_infra.render.bootstrap import MARKER_DIR, render_bootstrap_script

TOOLS = ("sh", "curl", "tar", "sha256sum", "find")


def tarball(gzip: bool = False) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz" if gzip else "w") as archive:
        for name, content in {
            "zebra-2026-06-03/state/v27/mainnet/CURRENT": b"MANIFEST-000042\n",
            "zebra-2026-06-03/state/v27/mainnet/000042.sst": bytes(range(256)) * 400,
        }.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            archive.addfile(info, io.BytesIO(content))
    return buffer.getvalue()


@dataclass
class ArchiveServer:
    body: bytes
    cut_first_at: int | None = None
    requests: list[str | None] = field(default_factory=list)
    port: int = 0


@pytest.fixture
def server() -> Iterator[ArchiveServer]:
    state = ArchiveServer(body=tarball())

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            byte_range = self.headers.get("Range")
            state.requests.append(byte_range)
            start = int(byte_range.removeprefix("bytes=").split("-")[0]) if byte_range else 0
            body = state.body[start:]
            self.send_response(206 if byte_range else 200)
            self.send_header("Content-Length", str(len(body)))
            if byte_range:
                self.send_header("Content-Range", f"bytes {start}-{len(state.body) - 1}/{len(state.body)}")
            self.end_headers()
            if state.cut_first_at is not None and len(state.requests) == 1:
                self.wfile.write(body[: state.cut_first_at])
                self.wfile.flush()
                self.connection.shutdown(2)  # the connection drops mid-transfer
                return
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    thread.join(timeout=5)


def run(
    server: ArchiveServer,
    data: Path,
    *,
    sha256: str | None = None,
    gzip: bool = False,
    extracted_bytes: int = 1 << 20,
    free_kib: int | None = None,
) -> subprocess.CompletedProcess:
    """`free_kib`: what `df` reports free on the volume (a stand-in df on PATH); None: the real df of `data`."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    if missing:
        pytest.fail(f"the bootstrap test needs {', '.join(missing)} (Debian: apt-get install curl coreutils tar)")
    script = render_bootstrap_script(
        url=f"http://127.0.0.1:{server.port}/zebra.tar",
        sha256=sha256 or hashlib.sha256(server.body).hexdigest(),
        data_dir=str(data),
        target_dir=str(data / "state"),
        strip_components=1,
        gzip=gzip,
        archive_bytes=len(server.body),
        extracted_bytes=extracted_bytes,
        attempts=3,
        retry_delay_seconds=0,
    )
    env = None
    if free_kib is not None:
        shims = data.parent / "shims"
        shims.mkdir(exist_ok=True)
        df = shims / "df"
        df.write_text(
            "#!/bin/sh\necho 'Filesystem 1024-blocks Used Available Capacity Mounted on'\n"
            f"echo '/dev/nvme1n1 1048576 1000000 {free_kib} 99% /var/lib/zebra'\n"
        )
        df.chmod(0o755)
        env = {"PATH": f"{shims}:/usr/bin:/bin"}
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=60, env=env)


def extracted(data: Path) -> set[str]:
    return {str(p.relative_to(data)) for p in data.rglob("*") if p.is_file() and MARKER_DIR not in p.parts}


def test_an_empty_volume_is_filled_verified_and_marked_complete(server: ArchiveServer, tmp_path: Path) -> None:
    result = run(server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert extracted(tmp_path) == {"state/state/v27/mainnet/CURRENT", "state/state/v27/mainnet/000042.sst"}
    assert (tmp_path / "state/state/v27/mainnet/000042.sst").read_bytes() == bytes(range(256)) * 400
    marks = {p.name for p in (tmp_path / MARKER_DIR).iterdir()}
    assert marks == {"complete"}  # the scratch archive is gone, in-progress cleared
    again = run(server, tmp_path)
    assert again.returncode == 0 and "nothing to do" in again.stdout and len(server.requests) == 1


def test_an_interrupted_download_resumes_where_it_stopped(server: ArchiveServer, tmp_path: Path) -> None:
    server.cut_first_at = len(server.body) // 3
    result = run(server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "resuming" in result.stdout
    assert server.requests[0] is None and server.requests[1] == f"bytes={len(server.body) // 3}-"
    assert (tmp_path / MARKER_DIR / "complete").exists()
    assert "state/state/v27/mainnet/CURRENT" in extracted(tmp_path)


def test_a_bad_checksum_extracts_nothing_and_is_never_marked_complete(server: ArchiveServer, tmp_path: Path) -> None:
    result = run(server, tmp_path, sha256="0" * 64)
    assert result.returncode == 1 and "discarded, nothing extracted" in result.stderr
    assert extracted(tmp_path) == set()
    assert {p.name for p in (tmp_path / MARKER_DIR).iterdir()} == {"in-progress"}
    # The next start (the pod's restart) downloads afresh and, with the right checksum, completes.
    assert run(server, tmp_path).returncode == 0 and (tmp_path / MARKER_DIR / "complete").exists()


def test_a_volume_that_already_holds_data_is_adopted_never_wiped(server: ArchiveServer, tmp_path: Path) -> None:
    existing = tmp_path / "state" / "state" / "v27" / "mainnet" / "CURRENT"
    existing.parent.mkdir(parents=True)
    existing.write_text("a healthy node's data\n")
    (tmp_path / "lost+found").mkdir()
    result = run(server, tmp_path)
    assert result.returncode == 0 and "adopting it" in result.stdout
    assert existing.read_text() == "a healthy node's data\n" and server.requests == []
    assert (tmp_path / MARKER_DIR / "complete").exists()


def test_an_extraction_cut_short_is_cleared_and_redone(server: ArchiveServer, tmp_path: Path) -> None:
    (tmp_path / MARKER_DIR).mkdir()
    (tmp_path / MARKER_DIR / "in-progress").touch()
    partial = tmp_path / "state" / "half-written.sst"
    partial.parent.mkdir()
    partial.write_text("partial")
    result = run(server, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not partial.exists() and "state/state/v27/mainnet/CURRENT" in extracted(tmp_path)


def test_gzip_archives(server: ArchiveServer, tmp_path: Path) -> None:
    server.body = tarball(gzip=True)
    assert run(server, tmp_path, gzip=True).returncode == 0
    assert "state/state/v27/mainnet/000042.sst" in extracted(tmp_path)


def test_a_volume_without_room_fails_clearly_and_never_downloads(server: ArchiveServer, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    # 1 MiB free; the archive and 10 MiB of extracted state are declared.
    for _ in range(2):  # the kubelet restarts the init container: it stops at the same check, downloading nothing
        result = run(server, data, extracted_bytes=10 << 20, free_kib=1024)
        assert result.returncode == 1
        last = result.stderr.strip().splitlines()[-1]
        assert "lacks room" in last and "1 MiB free" in last and "raise node.storage.sizeGib" in last, last
    assert server.requests == []
    assert not (data / MARKER_DIR / "complete").exists()
    # The volume expanded: the same script goes on and completes.
    assert run(server, data, extracted_bytes=10 << 20).returncode == 0
    assert (data / MARKER_DIR / "complete").exists()
