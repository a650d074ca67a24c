"""The configuration shapes of nginx's 2026 vulnerabilities that the pinned OpenResty (1.27.1.2, nginx 1.27.1 with
OpenResty's patches to March 2025) has no fix for, kept out of every nginx.conf zBI renders for the gateway. Each is
read from nginx's security entries (docs/xml/nginx/changes.xml at release-1.31.4) and, for the script engine's, the
fixing commit's message (b76754049, "Script: buffer overrun protection"):

- CVE-2026-42533: a string expression that reads a regex capture and then a variable whose evaluation runs a regex
  (a map with regex keys) changing that capture, or a `volatile` map whose length changes between nginx's length and
  copy passes; CVE-2026-60005: unnamed captures with `slice` or a cache's background update;
- CVE-2026-42945 and CVE-2026-9256: rewrites with unnamed or overlapping captures;
- CVE-2026-42926 (`proxy_set_body` to an HTTP/2 upstream: the history cache's tip call sets a body, to the node over
  HTTP/1.1, so no proxy speaks HTTP/2 to its upstream), CVE-2026-42055 (`ignore_invalid_headers off`);
- modules the gateway never turns on: HTTP/3 (CVE-2026-42530, -40460), `charset_map` (-48142, -42934), SSI (-56434),
  scgi and uwsgi (-42946), `ssl_ocsp` (-40701), WebDAV with `alias` (-27654), mp4 (-27784, -32647), mail (-27651,
  -28753), stream (-28755).

The one fix on a path zBI uses, CVE-2026-1642 (plain text injected into a TLS upstream's answer by a machine in the
middle, the light-wallet server's gRPC here), has no configuration shape to avoid (README, "Images").

nginx.conf is rendered here for every combination that changes it (engine, history cache, zcashd sidecar, gRPC), so a
change that brings one of the shapes in fails before an image without the fix would run it."""

from __future__ import annotations

import re
import shlex

import pytest

from tests.gateway_harness import access
from zbi_infra.render.gateway import GatewayUpstreams
from zbi_infra.render.gateway_cache import GatewayCache
from zbi_infra.render.gateway_engines import ENGINES, Engine
from zbi_infra.render.gateway_nginx import pod_files

CAPTURE = re.compile(r"\$(?:\d|\{\d\})")


def rendered(engine: Engine, cache: bool, zcashd: bool) -> str:
    upstreams = GatewayUpstreams(
        rpc="zebrad-rpc:8232",
        grpc="lightwalletd-grpc:9067",
        grpc_tls_name="lightwalletd-grpc",
        zcashd="127.0.0.1:8232" if zcashd else None,
    )
    history = GatewayCache(size_gib=10, keys_zone_mib=16, inactive_days=7) if cache else None
    files = pod_files(
        access(),
        upstreams,
        max_body_bytes=256 * 1024,
        metrics_syslog="127.0.0.1:5140",
        history_cache=history,
        engine=engine,
    )
    return files["nginx.conf"]


def directives(conf: str) -> list[str]:
    """Each directive of nginx.conf, its words joined by single spaces (comments dropped; a map's or a block's
    opening line is one, each of a map's entries another)."""
    text = re.sub(r"#[^\n]*", "", conf)
    return [" ".join(part.split()) for part in re.split(r"[;{}]", text) if part.strip()]


@pytest.mark.parametrize("zcashd", [False, True], ids=["node", "zcashd-sidecar"])
@pytest.mark.parametrize("cache", [False, True], ids=["no-cache", "history-cache"])
@pytest.mark.parametrize("engine", ENGINES)
def test_no_configuration_shape_of_the_unfixed_cves(engine: Engine, cache: bool, zcashd: bool) -> None:
    conf = rendered(engine, cache, zcashd)
    every = directives(conf)
    # Named captures are variables any later expression may read: none at all.
    assert "(?<" not in conf and "(?P<" not in conf
    # A numbered capture only as a whole map value, evaluated right after that map's own match: never in an
    # expression beside another variable (CVE-2026-42533), nor in a rewrite, a return or a set.
    for directive in every:
        if CAPTURE.search(directive):
            key_and_value = shlex.split(directive, posix=False)
            assert len(key_and_value) == 2 and CAPTURE.fullmatch(key_and_value[1]), directive
    # No volatile map, no slice, no background cache update, no SSI, charset recoding, HTTP/3, nor invalid
    # header names let through.
    for forbidden in ("volatile", "slice", "proxy_cache_background_update on", "ssi on", "charset_map",
                      "charset ", "listen quic", "http3", "ignore_invalid_headers off", "proxy_http_version 2",
                      "scgi_pass", "uwsgi_pass", "ssl_ocsp", "dav_methods", "mp4", "mail", "stream"):  # fmt: skip
        assert not [d for d in every if d.startswith(forbidden) or f" {forbidden}" in f" {d}"], forbidden
    # A rewrite's pattern captures nothing (CVE-2026-42945, CVE-2026-9256).
    for directive in every:
        rewrite = re.search(r"\brewrite (\S+) ", directive)
        if rewrite:
            assert "(" not in rewrite.group(1), directive


def test_the_shape_check_finds_a_capture_beside_a_map() -> None:
    """The check above, on nginx.conf with the shape nginx's fix describes, fails."""
    conf = rendered("lua", False, False) + '\nmap $uri $m { ~(.*) $1; }\nserver { set $t "$1 $m"; }\n'
    found = [d for d in directives(conf) if CAPTURE.search(d) and len(shlex.split(d, posix=False)) != 2]
    assert found == ['set $t "$1 $m"']
