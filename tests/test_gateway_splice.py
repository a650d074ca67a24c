"""The gateway's spliced path in its own njs module (gateway_splice.js): shipped beside gateway.js, imported only by
the named location gateway.js redirects to (so no other request runs its top level), and, live, logging the caller
and the methods of the requests it answers as gateway.js's own."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator

import pytest

from tests.gateway_harness import Gateway, gateway_before_a_node
from zbi_infra.config.access import parse_access
from zbi_infra.render.gateway import SPLICE_JS_MODULE, GatewayPaths, GatewayUpstreams, gateway_js, gateway_splice_js
from zbi_infra.render.gateway_engines import Engine
from zbi_infra.render.gateway_nginx import pod_files


def test_every_njs_module_nginx_or_a_module_imports_is_in_the_config_map() -> None:
    files = pod_files(
        parse_access({"users": []}, "a.yaml"),
        GatewayUpstreams(rpc="node:8232", zcashd="zcashd:8232"),
        max_body_bytes=65536,
        metrics_syslog="127.0.0.1:1",
    )
    imported = set(re.findall(r"js_import \w+ from (\S+);", files["nginx.conf"]))
    for name in [n for n in files if n.endswith(".js")]:
        imported |= set(re.findall(r"^import \w+ from '([^']+\.js)';", files[name], flags=re.MULTILINE))
    assert SPLICE_JS_MODULE in imported and "json_text.js" in imported
    assert imported <= set(files), imported - set(files)


def test_the_splice_module_is_imported_in_its_named_location_only() -> None:
    """An http-level js_import would run its top level in every request's VM: it is imported inside the location
    gateway.js redirects to, and by no other module."""
    files = pod_files(
        parse_access({"users": []}, "a.yaml"), GatewayUpstreams(rpc="node:8232"), max_body_bytes=65536,
        metrics_syslog="127.0.0.1:1",
    )  # fmt: skip
    conf = files["nginx.conf"]
    (location,) = re.findall(r"location @zbi_splice \{([^}]*)\}", conf)
    assert f"js_import splice from {SPLICE_JS_MODULE};" in location
    assert conf.count(f"from {SPLICE_JS_MODULE};") == 1
    assert not any(f"from '{SPLICE_JS_MODULE}'" in text for name, text in files.items() if name.endswith(".js"))
    assert "'@zbi_splice'" in files["gateway.js"]


def test_the_rendered_splice_module_has_no_placeholder_left() -> None:
    text = gateway_splice_js(relay_port=9999)
    assert "__" not in text
    assert "'http://127.0.0.1:9999/'" in text and "'/zcashd'" in text
    # The withheld members are gateway.js's to name (it hands each call's to the splice with the calls).
    assert 'return ["errors"];' in gateway_js(GatewayPaths(config_dir="/c", upstream_auth_file="/a"))


@pytest.fixture(scope="module")
def gateway(engine: Engine, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with gateway_before_a_node(tmp_path_factory.mktemp("splice"), engine=engine) as gw:
        yield gw


def logged(gateway: Gateway, path_methods: str) -> dict[str, str]:
    deadline = time.monotonic() + 5
    while True:
        entries = [json.loads(line) for line in gateway.log.read_text().splitlines() if line.startswith("{")]
        found = [e for e in entries if e["methods"] == path_methods]
        if found or time.monotonic() > deadline:
            assert found, entries[-5:]
            return found[-1]
        time.sleep(0.1)


def test_a_spliced_batch_is_answered_and_logged_as_the_callers(gateway: Gateway) -> None:
    batch = [{"method": "getinfo", "id": "a"}, {"method": "stop", "id": 7}, {"method": "getblockcount"}]
    status, body = gateway.call(batch, user="exchange")
    assert status == 200 and [answer["id"] for answer in body] == ["a", 7]
    assert body[0]["result"]["errors"] == "withheld by the gateway" and body[1]["error"]["code"] == -32601
    entry = logged(gateway, "getinfo,stop,getblockcount")
    assert (entry["user"], entry["api"], entry["method"], entry["status"]) == ("exchange", "json-rpc", "(batch)", "200")


def test_a_call_with_withheld_members_is_spliced_and_logged_as_the_callers(gateway: Gateway) -> None:
    status, body = gateway.call({"method": "getinfo", "id": 3}, user=None)
    assert status == 200 and body["id"] == 3 and body["result"]["errors"] == "withheld by the gateway"
    entry = logged(gateway, "getinfo")
    assert (entry["user"], entry["method"], entry["status"], entry["path"]) == ("anonymous", "getinfo", "200", "/")
