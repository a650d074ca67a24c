"""A gateway ConfigMap from a plan, checked by the real nginx (`nginx -t`) as the pod would load it: its files written
where the test can hold them, the cluster's names and the pod's mounts moved to the test's directory, and each
engine's module loaded the way the nginx under test needs (OpenResty has lua-nginx-module built in; Debian's nginx
loads it; njs is a module for both images)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from tests.gateway_harness import JS_MODULE, for_this_nginx, lua_module_paths, nginx
from zbi_infra.render.gateway import (
    POD_CONFIG_DIR,
    POD_TLS_DIR,
    POD_UPSTREAM_DIR,
    UPSTREAM_AUTH_INCLUDE_SUFFIX,
    UPSTREAM_AUTH_KEY,
    upstream_auth_directive,
)
from zbi_infra.render.gateway_cache import POD_CACHE_DIR
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_nginx import POD_JS_MODULE


def checked_by_nginx(config_map: dict[str, str], engine: Engine, directory: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the ConfigMap's files, written into `directory` (the pod's mounts and /tmp moved there)."""
    data = dict(config_map)
    moved = {
        POD_CONFIG_DIR: str(directory),
        POD_UPSTREAM_DIR: str(directory),
        POD_TLS_DIR: str(directory),
        POD_CACHE_DIR: str(directory / "cache"),
        ".zbi-testnet.svc.cluster.local": "",
    }
    # The pod's temporary directory first, before anything else lives under the test's (itself in /tmp).
    data["nginx.conf"] = re.sub(r" /tmp/", f" {directory}/", data["nginx.conf"])
    for name in data:
        for old, new in moved.items():
            data[name] = data[name].replace(old, new)
        (directory / name).write_text(data[name])
    conf = re.sub(r"(zebrad-rpc|lightwalletd-grpc):", "127.0.0.1:", data["nginx.conf"])
    if os.geteuid() == 0:
        conf = conf.replace("worker_processes ", "user root;\nworker_processes ", 1)
    if engine == "lua":
        # The pod's image has lua-nginx-module built in: a load_module would fail there.
        assert "load_module" not in conf
        conf = "".join(f"load_module {module};\n" for module in lua_module_paths()) + conf
    else:
        assert f"load_module {POD_JS_MODULE};" in conf
        conf = conf.replace(POD_JS_MODULE, str(JS_MODULE))
    binary = nginx(engine)
    (directory / "nginx.conf").write_text(for_this_nginx(conf, binary))
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", "1",
         "-subj", "/CN=t", "-keyout", str(directory / "tls.key"), "-out", str(directory / "tls.crt")],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (directory / "ca.crt").write_bytes((directory / "tls.crt").read_bytes())
    # The node's credentials as the gateway's Secret mounts them (masked in the plan): the file the splice reads and
    # the proxy's header nginx includes at start.
    (directory / UPSTREAM_AUTH_KEY).write_text("zbi:password\n")
    (directory / f"{UPSTREAM_AUTH_KEY}{UPSTREAM_AUTH_INCLUDE_SUFFIX}").write_text(
        upstream_auth_directive("zbi:password")
    )
    return subprocess.run(
        [binary, "-t", "-e", "stderr", "-p", str(directory), "-c", str(directory / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )
