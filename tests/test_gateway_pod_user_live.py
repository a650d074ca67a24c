"""The gateway's own ConfigMap run as its pod runs it: as the image's uid (no root, no capabilities, no new
privileges), its configuration and Secrets read-only and owned by root, only the /tmp emptyDir writable. nginx must
start, answer its probe and a checked call, and write nothing outside /tmp, on each engine. The other live tests run
nginx as root with `user root;`, which would hide a file the pod's uid cannot read or a path it cannot write."""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import PlanStack
from tests.gateway_harness import accepts, free_port, start_node, worker_processes
from tests.k8s_objects import one, pod_spec
from tests.pod_nginx import PodLayout, write_pod_config
from zbi_infra.config.access import PROBE_USER
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.mocks import _digest
from zbi_infra.releases import GATEWAY_ENGINE_IMAGES
from zbi_infra.render.gateway import POD_CONFIG_DIR
from zbi_infra.render.gateway_engines import ENGINES, Engine

NS = "zbi-testnet"
# The monitoring probe's key in the plan: the mocks' random key (tests/test_gateway.py reads its hash the same way).
PROBE_KEY = _digest("dev-probe-key", "password", length=32)


def files_under(root: Path) -> dict[str, tuple[int, int]]:
    """Every path under `root` with its size and modification time in nanoseconds."""
    found = {}
    for path in root.rglob("*"):
        status = path.lstat()
        found[str(path.relative_to(root))] = (status.st_size, status.st_mtime_ns)
    return found


def as_the_pods_user(uid: int) -> list[str]:
    """A command prefix running as `uid` with no capabilities and no new privileges, as the pod's securityContext
    (runAsUser, runAsGroup, drop ALL, allowPrivilegeEscalation false); none when the suite is not root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.fail("setpriv (util-linux) is needed to run nginx as the pod's user")
    return [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
            "--inh-caps=-all", "--bounding-set=-all"]  # fmt: skip


def pods_command(plan: Plan, binary: str, layout: PodLayout) -> list[str]:
    """The gateway container's command as the plan gives it (no `-p`: paths outside nginx.conf are the binary's
    own prefix, read-only to the pod's user), with the test's nginx and configuration file."""
    (container,) = [c for c in pod_spec(one(plan, "Deployment", "gateway", NS))["containers"] if c["name"] == "gateway"]
    command = list(container["command"])
    assert command[0] in {image.binary for image in GATEWAY_ENGINE_IMAGES.values()}
    configuration = command.index("-c") + 1
    assert command[configuration] == f"{POD_CONFIG_DIR}/nginx.conf" and "-p" not in command
    command[0], command[configuration] = binary, str(layout.config / "nginx.conf")
    return command


@pytest.fixture
def pod_root() -> Iterator[Path]:
    # Not pytest's tmp_path: its parent is root's alone (0700), which the pod's uid could not traverse.
    root = Path(tempfile.mkdtemp(prefix="zbi-pod-", dir="/tmp"))
    root.chmod(0o755)
    try:
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_pods_configuration_runs_as_its_user_and_writes_only_tmp(
    engine: Engine, plan_stack: PlanStack, pod_root: Path
) -> None:
    uid = GATEWAY_ENGINE_IMAGES[engine].uid
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": {"gateway": {"engine": engine}}}})
    config_map = one(plan, "ConfigMap", "gateway-config", NS)["data"]
    node = start_node()
    port = free_port()
    layout = PodLayout(pod_root)
    try:
        binary = write_pod_config(
            config_map,
            engine,
            layout,
            as_root=False,
            listen=f"127.0.0.1:{port}",
            upstreams={"zebrad-rpc": f"127.0.0.1:{node.server.server_port}"},
            relay_port=free_port(),
        )
        # As the kubelet mounts them: ConfigMap and Secret files root's and read-only (0644, group the pod's
        # fsGroup), their directories not writable; the emptyDir writable by all.
        for directory in layout.read_only:
            for path in directory.iterdir():
                if os.geteuid() == 0:
                    os.chown(path, 0, uid)
                path.chmod(0o644)
            directory.chmod(0o555)
        layout.tmp.chmod(0o777)
        before = [files_under(directory) for directory in layout.read_only]
        # The container's stdout, where nginx.conf sends the access log (/dev/stdout, reopened by path): runc hands
        # the container's stdio to its user (fixStdioPermissions), as this file is handed here.
        log = pod_root / "stdout"
        log.touch()
        if os.geteuid() == 0:
            os.chown(log, uid, uid)
        with log.open("a") as output:
            process = subprocess.Popen(
                [*as_the_pods_user(uid), *pods_command(plan, binary, layout)], stdout=output, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 20
            while not (accepts(port) and len(worker_processes(process.pid)) == 2):
                assert process.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.1)
            # Master and workers run as the pod's uid (the gid too), not root.
            expected = uid if os.geteuid() == 0 else os.geteuid()
            for pid in (process.pid, *worker_processes(process.pid)):
                status = Path(f"/proc/{pid}/status").read_text()
                uids = next(line.split()[1:] for line in status.splitlines() if line.startswith("Uid:"))
                assert set(map(int, uids)) == {expected}, (pid, uids)
            context = ssl.create_default_context(cafile=str(layout.tls / "ca.crt"))
            context.check_hostname = False
            with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=10, context=context) as answer:
                assert answer.status == 200
            call = json.dumps({"jsonrpc": "1.0", "id": 7, "method": "getblockchaininfo", "params": []}).encode()
            request = urllib.request.Request(f"https://127.0.0.1:{port}/", data=call, method="POST")
            request.add_header(
                "Authorization", "Basic " + base64.b64encode(f"{PROBE_USER}:{PROBE_KEY}".encode()).decode()
            )
            request.add_header("Content-Type", "application/json")
            with urllib.request.urlopen(request, timeout=10, context=context) as answer:
                assert answer.status == 200
                assert json.loads(answer.read()) == {
                    "result": {"answered": "getblockchaininfo"},
                    "error": None,
                    "id": 7,
                }
            assert node.received == [call]
            assert "[emerg]" not in log.read_text() and "[alert]" not in log.read_text(), log.read_text()[-3000:]
        finally:
            process.terminate()
            process.wait(timeout=15)
        # nothing written where the pod's root filesystem or mounts are read-only: only under /tmp.
        after = [files_under(directory) for directory in layout.read_only]
        assert after == before
        assert {path.name for path in pod_root.iterdir()} == {"config", "upstream", "tls", "tmp", "stdout"}
        assert any(layout.tmp.iterdir())  # what nginx did write (its pid, temporary paths) is in /tmp
    finally:
        node.server.shutdown()
        for directory in layout.read_only:
            if directory.exists():
                directory.chmod(0o755)
