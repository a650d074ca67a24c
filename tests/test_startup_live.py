"""The start-up scripts and the regtest peer forwarder, run for real on loopback, bounded in time."""

from __future__ import annotations

import os
import socket
import socketserver
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from tests.debian import debian_tool
from zbi_infra.render.peering import PeerForward, socat_args
from zbi_infra.render.startup import EXTERNAL_HOST_ENV, advertise_external_address_script, wait_for_tcp_script


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(data)


@pytest.fixture
def echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_wait_holds_until_the_node_accepts_connections() -> None:
    port = free_port()
    waiting = subprocess.Popen(
        ["bash", "-c", wait_for_tcp_script("127.0.0.1", port)], stdout=subprocess.PIPE, text=True
    )
    try:
        time.sleep(1.5)
        assert waiting.poll() is None  # nothing listens yet: still waiting
        with socket.create_server(("127.0.0.1", port)):
            assert waiting.wait(timeout=15) == 0
        assert "waiting for a ready full node at 127.0.0.1" in (waiting.stdout.read() if waiting.stdout else "")
    finally:
        waiting.kill()


@pytest.mark.parametrize(("host", "advertised"), [("localhost", "127.0.0.1:8233"), ("no-such-host.invalid", "")])
def test_the_node_advertises_the_resolved_public_address(host: str, advertised: str) -> None:
    script = advertise_external_address_script(
        p2p_port=8233, command=["sh", "-c", 'echo "external=${ZEBRA_NETWORK__EXTERNAL_ADDR:-}"']
    )
    result = subprocess.run(
        ["sh", "-c", script], env={**os.environ, EXTERNAL_HOST_ENV: host}, capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"external={advertised}"


def socat() -> str:
    return debian_tool("socat", ["socat"])


def test_a_forwarder_relays_a_loopback_port_to_its_peer_and_listens_on_loopback_only(echo_server: int) -> None:
    forward = PeerForward(replica=1, local_port=free_port(), target_host="127.0.0.1", target_port=echo_server)
    relay = subprocess.Popen([socat(), *socat_args(forward)], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                connection = socket.create_connection(("127.0.0.1", forward.local_port), timeout=2)
                break
            except OSError:
                assert time.monotonic() < deadline, "the forwarder never listened"
                time.sleep(0.1)
        with connection:
            for message in (b"version", b"verack" * 1000):
                connection.sendall(message)
                received = b""
                while len(received) < len(message):
                    received += connection.recv(65536)
                assert received == message
        # A second connection gets its own relay (fork): peers reconnect after every restart.
        with socket.create_connection(("127.0.0.1", forward.local_port), timeout=2) as again:
            again.sendall(b"ping")
            assert again.recv(16) == b"ping"
        # Bound to 127.0.0.1 alone: another loopback address of the host is refused.
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.2", forward.local_port), timeout=2).close()
    finally:
        relay.terminate()
        relay.wait(timeout=10)
