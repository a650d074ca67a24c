"""A gateway ConfigMap from a plan, loaded by the real nginx as the pod would load it: its files written where the
test can hold them, the cluster's names and the pod's mounts moved to the test's directory, and each engine's module
loaded the way the nginx under test needs (OpenResty has lua-nginx-module built in; Debian's nginx loads it; njs is
a module for both images)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.gateway_harness import JS_MODULE, lua_module_paths, nginx, tls_files
from tests.json_rpc_node import NODE_CREDENTIALS
from tests.nginx_builds import for_this_nginx
from zbi_infra.render.gateway import (
    POD_CONFIG_DIR,
    POD_LISTEN_PORT,
    POD_TLS_DIR,
    POD_UPSTREAM_DIR,
    RELAY_PORT,
    UPSTREAM_AUTH_INCLUDE_SUFFIX,
    UPSTREAM_AUTH_KEY,
    upstream_auth_directive,
)
from zbi_infra.render.gateway_cache import POD_CACHE_DIR
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_nginx import POD_JS_MODULE


@dataclass(frozen=True)
class PodLayout:
    """Where the pod's mounts are in the test: the ConfigMap, the two Secrets and the writable /tmp emptyDir."""

    root: Path

    @property
    def config(self) -> Path:
        return self.root / "config"

    @property
    def upstream(self) -> Path:
        return self.root / "upstream"

    @property
    def tls(self) -> Path:
        return self.root / "tls"

    @property
    def tmp(self) -> Path:
        return self.root / "tmp"

    @property
    def read_only(self) -> tuple[Path, Path, Path]:
        """The mounts the pod reads only: the ConfigMap's and the two Secrets'."""
        return (self.config, self.upstream, self.tls)


def write_pod_config(
    config_map: dict[str, str],
    engine: Engine,
    layout: PodLayout,
    *,
    as_root: bool,
    listen: str | None = None,
    upstreams: dict[str, str] | None = None,
    relay_port: int | None = None,
) -> str:
    """The ConfigMap's files in `layout.config`, the Secrets' in `layout.upstream` and `layout.tls`; returns the nginx
    to run. `as_root`: workers as root (a root master would drop them to `nobody`, who cannot read pytest's
    directories); otherwise nginx.conf is the pod's, which names no user. `listen` replaces the pod's 0.0.0.0
    listener; `upstreams` maps the pod's upstream names (zebrad-rpc, ...) to where the test serves them;
    `relay_port` moves the loopback listener the engines read the node's answers back through (a fixed port in the
    pod, which two nginx at once, or one still closing, would both want)."""
    for directory in (*layout.read_only, layout.tmp):
        directory.mkdir(parents=True, exist_ok=True)
    moved = {
        POD_CONFIG_DIR: str(layout.config),
        POD_UPSTREAM_DIR: str(layout.upstream),
        POD_TLS_DIR: str(layout.tls),
        POD_CACHE_DIR: str(layout.tmp / "cache"),
        ".zbi-testnet.svc.cluster.local": "",
    }
    data = dict(config_map)
    if relay_port is not None:
        for old, new in ((f"127.0.0.1:{RELAY_PORT}", f"127.0.0.1:{relay_port}"),
                         (f'"127.0.0.1", {RELAY_PORT}', f'"127.0.0.1", {relay_port}')):  # fmt: skip
            data = {name: text.replace(old, new) for name, text in data.items()}
        assert f"listen 127.0.0.1:{relay_port};" in data["nginx.conf"]
        assert not [name for name, text in data.items() if f"127.0.0.1:{RELAY_PORT}" in text]
    # The pod's temporary directory first, before anything else lives under the test's (itself in /tmp).
    data["nginx.conf"] = re.sub(r" /tmp/", f" {layout.tmp}/", data["nginx.conf"])
    for name in data:
        for old, new in moved.items():
            data[name] = data[name].replace(old, new)
        (layout.config / name).write_text(data[name])
    conf = data["nginx.conf"]
    for name, address in (upstreams or {}).items():
        conf, found = re.subn(rf"\b{re.escape(name)}:\d+", address, conf)
        assert found, name
    conf = re.sub(r"(zebrad-rpc|lightwalletd-grpc):", "127.0.0.1:", conf)
    if listen is not None:
        conf, found = re.subn(rf"listen 0\.0\.0\.0:{POD_LISTEN_PORT}\b", f"listen {listen}", conf)
        assert found == 1
    if as_root:
        conf = conf.replace("worker_processes ", "user root;\nworker_processes ", 1)
    assert "\nuser " not in conf.replace("\nuser root;", "")  # the pod's names none: its workers run as the pod's uid
    if engine == "lua":
        # The pod's image has lua-nginx-module built in: a load_module would fail there.
        assert "load_module" not in conf
        conf = "".join(f"load_module {module};\n" for module in lua_module_paths()) + conf
    else:
        assert f"load_module {POD_JS_MODULE};" in conf
        conf = conf.replace(POD_JS_MODULE, str(JS_MODULE))
    binary = nginx(engine)
    (layout.config / "nginx.conf").write_text(for_this_nginx(conf, binary))
    tls_files(layout.tls)
    (layout.tls / "ca.crt").write_bytes((layout.tls / "tls.crt").read_bytes())
    # The node's credentials as the gateway's Secret mounts them (masked in the plan): the file the splice reads and
    # the proxy's header nginx includes at start.
    (layout.upstream / UPSTREAM_AUTH_KEY).write_text(NODE_CREDENTIALS + "\n")
    (layout.upstream / f"{UPSTREAM_AUTH_KEY}{UPSTREAM_AUTH_INCLUDE_SUFFIX}").write_text(
        upstream_auth_directive(NODE_CREDENTIALS)
    )
    return binary


def checked_by_nginx(config_map: dict[str, str], engine: Engine, directory: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the ConfigMap's files, laid out under `directory`."""
    layout = PodLayout(directory)
    binary = write_pod_config(config_map, engine, layout, as_root=os.geteuid() == 0)
    return subprocess.run(
        [binary, "-t", "-e", "stderr", "-p", str(layout.tmp), "-c", str(layout.config / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
