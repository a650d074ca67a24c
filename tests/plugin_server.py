"""Start a Pulumi plugin (a provider, a policy pack) as the engine does, and connect to it on loopback."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import grpc


@contextmanager
def plugin_channel(command: list[str], cwd: Path, *, timeout: float = 60) -> Iterator[grpc.Channel]:
    """The plugin prints the port it listens on (127.0.0.1) as its first line; it is stopped when the block ends."""
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        port = int(process.stdout.readline().strip())
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=timeout)
        try:
            yield channel
        finally:
            channel.close()
    finally:
        process.terminate()
        process.wait(timeout=10)
