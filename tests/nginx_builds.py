"""What the nginx under test is, where the tests run another than the pods' (Debian's 1.22 and njs 0.7.9 in CI; builds
of the images' versions named by ZBI_TEST_* here): the syntax its version takes, and the njs it loads."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import urllib.request
from functools import cache
from pathlib import Path


@cache
def takes_http2_on(binary: str) -> bool:
    """Whether `binary` is nginx 1.25.1 or later (OpenResty numbers as nginx), which takes `http2 on;`, as the pods'."""
    banner = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=30, check=True).stderr
    version = re.search(r"(?:nginx|openresty)/(\d+)\.(\d+)\.(\d+)", banner)
    assert version, banner
    return tuple(int(part) for part in version.groups()) >= (1, 25, 1)


def for_this_nginx(conf: str, binary: str) -> str:
    """The pod's nginx.conf as `binary` reads it: an nginx older than 1.25.1 (Debian's 1.22) takes HTTP/2 as the
    listen parameter `http2 on;` replaced, and knows no `http2` directive."""
    if takes_http2_on(binary):
        return conf
    assert "        http2 on;\n" in conf
    return re.sub(r"(\n\s*listen \S+ ssl);", r"\1 http2;", conf.replace("        http2 on;\n", ""))


@cache
def njs_version() -> tuple[int, ...]:
    """The version of the njs module the tests load, asked of njs itself (`njs.version`) in an nginx on loopback."""
    from tests.gateway_harness import JS_MODULE, free_port, nginx, running_nginx  # which imports this module

    with tempfile.TemporaryDirectory(prefix="zbi-njs-") as scratch:
        directory = Path(scratch)
        (directory / "version.js").write_text("function v(r) { return njs.version; }\nexport default {v};\n")
        port = free_port()
        (directory / "nginx.conf").write_text(
            f"load_module {JS_MODULE};\n{'user root;' if os.geteuid() == 0 else ''}\nworker_processes 1;\n"
            f"pid {directory}/nginx.pid;\nevents {{}}\nhttp {{ access_log off; js_path {directory}; js_import version.js;"
            f" js_set $njs_version version.v; client_body_temp_path {directory}; proxy_temp_path {directory};"
            f" server {{ listen 127.0.0.1:{port}; location / {{ return 200 $njs_version; }} }} }}\n"
        )
        with (
            running_nginx(nginx("njs"), directory, port),
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as answer,
        ):
            return tuple(int(part) for part in answer.read().decode().split("."))
