"""Debian's mtail and blackbox exporter, run on loopback as the gateway's monitoring runs them in the cluster: mtail
with the metrics program zBI renders, the blackbox exporter with the probe modules zBI configures."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.debian import debian_tool
from tests.loopback_server import free_port
from zbi_infra.monitoring.component import PROBE_KEY_DIR, blackbox_values
from zbi_infra.render.gateway_metrics import PROGRAM_FILE, mtail_program


def mtail() -> str:
    return debian_tool("mtail", ["mtail"])


@dataclass
class Metrics:
    """mtail running the gateway's rendered metrics program: where nginx sends its log, where Prometheus scrapes."""

    syslog: str
    url: str

    def scrape(self) -> dict[tuple[tuple[str, str], ...], float]:
        """Every sample of the exposition, keyed by (name, labels...) sorted."""
        with urllib.request.urlopen(self.url, timeout=5) as response:
            text = response.read().decode()
        samples = {}
        for line in text.splitlines():
            match = re.match(r"^([a-z_]+)(?:\{(.*)\})? ([0-9.e+-]+)$", line)
            if match:
                labels = tuple(sorted(re.findall(r'([a-z_]+)="([^"]*)"', match.group(2) or "")))
                samples[(("__name__", match.group(1)), *labels)] = float(match.group(3))
        return samples


@contextmanager
def running_mtail(directory: Path) -> Iterator[Metrics]:
    """Debian's mtail with the program zBI renders, listening for the log on loopback UDP, until the block ends."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / PROGRAM_FILE).write_text(mtail_program())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        udp = int(probe.getsockname()[1])
    port = free_port()
    command = [mtail(), f"--progs={directory}", f"--logs=udp://127.0.0.1:{udp}", "--address=127.0.0.1",
               f"--port={port}", "--emit_prog_label=false", "--logtostderr"]  # fmt: skip
    with serving(command, directory / "mtail.log", f"http://127.0.0.1:{port}/metrics", "mtail"):
        yield Metrics(f"127.0.0.1:{udp}", f"http://127.0.0.1:{port}/metrics")


@contextmanager
def serving(command: list[str], log: Path, ready_url: str, what: str) -> Iterator[None]:
    """`command` running until the block ends, once `ready_url` answers (or the test fails within 15 s)."""
    with log.open("w") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                urllib.request.urlopen(ready_url, timeout=1).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"{what} did not start: {log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Blackbox:
    url: str

    def probe(self, module: str, target: str) -> float:
        """probe_success of one probe, as Prometheus would scrape it."""
        query = urllib.parse.urlencode({"module": module, "target": target})
        with urllib.request.urlopen(f"{self.url}/probe?{query}", timeout=20) as response:
            text = response.read().decode()
        match = re.search(r"^probe_success ([0-9.]+)$", text, flags=re.MULTILINE)
        assert match, text
        return float(match.group(1))


@contextmanager
def running_blackbox(directory: Path, probe_key: str) -> Iterator[Blackbox]:
    """Debian's blackbox exporter with the modules zBI configures, the probe key in its file, until the block ends."""
    binary = debian_tool("prometheus-blackbox-exporter", ["prometheus-blackbox-exporter"])
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "key").write_text(probe_key)
    modules = blackbox_values(probe_key=True)["config"]["modules"]
    text = json.dumps({"modules": modules}).replace(f"{PROBE_KEY_DIR}/key", str(directory / "key"))
    (directory / "blackbox.yml").write_text(text)  # JSON is YAML
    port = free_port()
    command = [binary, f"--config.file={directory / 'blackbox.yml'}", f"--web.listen-address=127.0.0.1:{port}"]
    with serving(command, directory / "blackbox.log", f"http://127.0.0.1:{port}/metrics", "the blackbox exporter"):
        yield Blackbox(f"http://127.0.0.1:{port}")
