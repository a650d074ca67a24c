"""tools/pin_images.py against Debian's real `docker-registry` (distribution 2.8) on loopback, behind token
authentication: it follows the Bearer challenge, asks for the multi-platform index before single manifests, takes the
digest of the bytes it received and refuses a `Docker-Content-Digest` that disagrees; `--check` notices a moved tag.
Rendering then names every image by the digest the table records, and the `images-pinned-by-digest` guardrail
refuses an instance that requires digests and lacks one."""

from __future__ import annotations

import hashlib
import http.server
import io
import json
import lzma
import sys
import tarfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, UPSTREAM, PlanStack
from tests.registry_harness import OCI_INDEX, OCI_MANIFEST, Registry, registry
from zbi_infra import image_digests
from zbi_infra.digest_guardrail import PINNED, WORKLOADS, pod_spec
from zbi_infra.plan.engine import Plan
from zbi_infra.policies import Resource, evaluate

sys.path.insert(0, str(ROOT / "tools"))
import pin_images

pytestmark = pytest.mark.skipif(not Path("/usr/bin/docker-registry").exists(), reason="docker-registry not installed")


def layer(block: str) -> bytes:
    """An uncompressed tar holding one real Zcash block: a layer of real size."""
    data = lzma.decompress((UPSTREAM / "zebra" / "blocks" / block).read_bytes())
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        info = tarfile.TarInfo(f"blocks/{block.removesuffix('.xz')}")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    with registry(tmp_path_factory.mktemp("registry")) as running:
        yield running


def test_a_multi_platform_tag_resolves_to_its_index_through_the_token_service(live: Registry) -> None:
    amd64 = live.push_image("zbi/node", "amd64-only", layer("block-main-0-419-201.bin.xz"))
    arm64 = live.push_image("zbi/node", "arm64-only", layer("block-main-1-046-401.bin.xz"), "arm64")
    index, index_digest = live.push_index("zbi/node", "6.3.0", {"amd64": amd64, "arm64": arm64})
    asked = len(live.tokens.requests)

    resolved = pin_images.resolve(f"{live.host}/zbi/node:6.3.0", timeout=10)

    assert resolved == pin_images.Resolved("sha256:" + hashlib.sha256(index).hexdigest(), OCI_INDEX)
    assert resolved.digest == index_digest != amd64[1]
    # Anonymous pull, for exactly this repository, from the realm the registry's challenge named.
    assert live.tokens.requests[asked:] == [{"service": "zbi-test-registry", "scope": "repository:zbi/node:pull"}]
    single = pin_images.resolve(f"{live.host}/zbi/node:amd64-only", timeout=10)
    assert single == pin_images.Resolved(amd64[1], OCI_MANIFEST)


def test_the_tool_writes_the_table_and_check_notices_a_moved_tag(live: Registry, tmp_path: Path) -> None:
    table = tmp_path / "digests.json"
    image = f"{live.host}/zbi/gateway:1.27.4"
    first = live.push_image("zbi/gateway", "1.27.4", layer("block-main-0-000-002.bin.xz"))
    assert pin_images.main(["--image", image, "--table", str(table)]) == 0
    recorded = json.loads(table.read_text())["images"][image]
    assert (recorded["digest"], recorded["mediaType"]) == (first[1], OCI_MANIFEST)
    assert pin_images.main(["--image", image, "--table", str(table), "--check"]) == 0

    # The tag is pushed again with other content (a rebuild): the check fails and changes nothing; a run records it.
    moved = live.push_image("zbi/gateway", "1.27.4", layer("block-main-0-419-201.bin.xz"))
    assert pin_images.main(["--image", image, "--table", str(table), "--check"]) == 1
    assert json.loads(table.read_text())["images"][image]["digest"] == first[1]
    assert pin_images.main(["--image", image, "--table", str(table)]) == 0
    assert json.loads(table.read_text())["images"][image]["digest"] == moved[1] != first[1]


def test_an_unknown_tag_is_reported_and_recorded_nowhere(live: Registry, tmp_path: Path) -> None:
    table = tmp_path / "digests.json"
    with pytest.raises(pin_images.RegistryError, match="answered 404"):
        pin_images.resolve(f"{live.host}/zbi/node:9.9.9", timeout=10)
    assert pin_images.main(["--image", f"{live.host}/zbi/node:9.9.9", "--table", str(table)]) == 1
    assert json.loads(table.read_text())["images"] == {}


@pytest.fixture
def lying_registry() -> Iterator[str]:
    """A registry (or proxy) that serves a manifest under another manifest's digest."""
    served = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": {}, "layers": []}).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", OCI_MANIFEST)
            self.send_header("Docker-Content-Digest", "sha256:" + hashlib.sha256(served + b" ").hexdigest())
            self.send_header("Content-Length", str(len(served)))
            self.end_headers()
            self.wfile.write(served)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_digest_header_that_is_not_the_bytes_is_refused(lying_registry: str) -> None:
    with pytest.raises(pin_images.RegistryError, match="not the SHA-256 of the bytes"):
        pin_images.resolve(f"{lying_registry}/zbi/node:6.3.0", timeout=10)


def chart_archive(name: str, version: str) -> bytes:
    """A chart archive as `helm package` lays it out: <name>/Chart.yaml, gzipped."""
    chart_yaml = f"apiVersion: v2\nname: {name}\nversion: {version}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(chart_yaml)
        tar.addfile(info, io.BytesIO(chart_yaml))
    return out.getvalue()


def test_an_oci_chart_resolves_to_its_manifest(live: Registry) -> None:
    pushed = live.push_chart("charts/operator", "2.9.0", chart_archive("operator", "2.9.0"),
                             {"apiVersion": "v2", "name": "operator", "version": "2.9.0"})  # fmt: skip
    assert pin_images.resolve_chart(f"oci://{live.host}/charts/operator:2.9.0", timeout=10).digest == pushed


@pytest.fixture
def chart_repository() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A classic chart repository: index.yaml and archives, served on loopback from a dict the test may change."""
    files: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = files.get(self.path.lstrip("/"))
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", files
    finally:
        server.shutdown()
        server.server_close()


def test_a_classic_chart_is_the_archive_its_index_lists(chart_repository: tuple[str, dict[str, bytes]],
                                                         tmp_path: Path) -> None:  # fmt: skip
    url, files = chart_repository
    archive = chart_archive("kube-prometheus-stack", "88.5.3")
    listed = hashlib.sha256(archive).hexdigest()
    files["charts/kube-prometheus-stack-88.5.3.tgz"] = archive
    files["index.yaml"] = (
        "apiVersion: v1\nentries:\n  kube-prometheus-stack:\n"
        f"  - name: kube-prometheus-stack\n    version: 88.5.3\n    digest: {listed}\n"
        "    urls: [charts/kube-prometheus-stack-88.5.3.tgz]\n"
    ).encode()
    chart = f"{url}/kube-prometheus-stack:88.5.3"
    table = tmp_path / "digests.json"
    assert pin_images.main(["--chart", chart, "--table", str(table)]) == 0
    assert json.loads(table.read_text())["charts"][chart]["digest"] == f"sha256:{listed}"
    # The archive is swapped under the same index entry: refused, and --check says so.
    files["charts/kube-prometheus-stack-88.5.3.tgz"] = chart_archive("kube-prometheus-stack", "88.5.4")
    with pytest.raises(pin_images.RegistryError, match=r"index\.yaml lists"):
        pin_images.resolve_chart(chart, timeout=10)
    assert pin_images.main(["--chart", chart, "--table", str(table), "--check"]) == 1
    with pytest.raises(pin_images.RegistryError, match=r"no version 1\.0\.0"):
        pin_images.resolve_chart(f"{url}/kube-prometheus-stack:1.0.0", timeout=10)


def test_the_tool_walks_every_image_and_chart_zbi_renders(plan_stack: PlanStack) -> None:
    """A new image or chart that is not in the tool's lists fails here, before it renders unpinned."""
    from tests.test_iam_analysers import WORKSPACE_IMAGE

    control = {"repository": "https://github.com/zbi-example/zbi", "workspaceImage": WORKSPACE_IMAGE}
    plan = plan_stack("dev", merge={"zbi:instances": VARIANTS, "zbi:controlPlane": control})
    assert {image.split("@")[0] for image in rendered_images(plan)} <= set(image_digests.default_images())
    installed = set()
    for release in plan.of_type("kubernetes:helm.sh/v3:Release"):
        chart, version = release.inputs["chart"], release.inputs["version"]
        repository = (release.inputs.get("repositoryOpts") or {}).get("repo")
        installed.add(f"{repository}/{chart}:{version}" if repository else f"{chart}:{version}")
    assert installed == set(image_digests.default_charts())


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("zfnd/zebra:6.3.0", ("registry-1.docker.io", "zfnd/zebra", "6.3.0")),
        ("nginx:1.27.4", ("registry-1.docker.io", "library/nginx", "1.27.4")),
        ("ghcr.io/google/mtail:3.0.9", ("ghcr.io", "google/mtail", "3.0.9")),
        ("localhost:5000/a/b:1", ("localhost:5000", "a/b", "1")),
    ],
)
def test_references_follow_dockers_naming(image: str, expected: tuple[str, str, str]) -> None:
    reference = pin_images.Reference.parse(image)
    assert (reference.registry, reference.name, reference.tag) == expected
    assert reference.base_url.startswith("http://" if "localhost" in image else "https://")


# ---- rendering ---------------------------------------------------------------------------------------------------

VARIANTS = {
    "regnet": {"network": "regtest", "node": {"replicas": 3}, "lightwallet": {"kind": "zaino"}},
    "compat": {"network": "testnet", "node": {"kind": "zakurad", "zcashdCompat": {}}},
    "legacy": {"network": "regtest", "node": {"kind": "zcashd"}, "endpoints": {"publicGrpc": False}},
}


def rendered_images(plan: Plan) -> set[str]:
    """Every container and init container image of the instances' workloads (not the platform's charts)."""
    return {
        c["image"]
        for w in plan.kubernetes_objects()
        if w.type in WORKLOADS and w.inputs["metadata"].get("namespace", "").startswith("zbi-")
        for c in [*(pod_spec(w.inputs).get("initContainers") or []), *pod_spec(w.inputs)["containers"]]
    }


def test_every_rendered_image_carries_the_digest_the_table_records(
    plan_stack: PlanStack, digest_table: dict[str, str]
) -> None:
    plan = plan_stack("dev", merge={"zbi:instances": VARIANTS})
    images = rendered_images(plan)
    by_tag = {image.split("@")[0]: image.split("@")[1] if "@" in image else None for image in images}
    assert len(by_tag) >= 8  # node, light-wallet servers, gateway, mtail, socat, zcashd, the compat sidecar ...
    assert {tag: digest_table.get(tag) for tag in by_tag} == by_tag


def test_the_repositorys_table_is_what_rendering_uses(plan_stack: PlanStack) -> None:
    """With the committed table: every image it records renders with that digest; the rest by tag alone."""
    recorded = image_digests.recorded_digests()
    assert set(recorded) <= set(image_digests.default_images())
    for image in rendered_images(plan_stack("dev", merge={"zbi:instances": VARIANTS})):
        tag, _, digest = image.partition("@")
        assert digest == (recorded.get(tag) or "")


def test_an_instances_own_digest_wins_over_the_table(plan_stack: PlanStack, digest_table: dict[str, str]) -> None:
    own = "sha256:" + "ab" * 32
    plan = plan_stack("dev", merge={"zbi:instances": {"testnet": {"node": {"image": {"digest": own}}}}})
    assert f"zfnd/zebra:6.3.0@{own}" in rendered_images(plan)


def violations(plan: Plan) -> list[str]:
    resources = [Resource(r.type, r.name, r.inputs, r.urn) for r in plan.resources]
    return [v.message for v in evaluate(resources) if v.policy == "images-pinned-by-digest"]


def test_an_instance_requiring_digests_is_refused_without_them(plan_stack: PlanStack, monkeypatch: pytest.MonkeyPatch,
                                                                tmp_path: Path) -> None:  # fmt: skip
    empty = tmp_path / "empty.json"
    empty.write_text('{"images": {}}')
    monkeypatch.setattr(image_digests, "DIGESTS_FILE", empty)
    image_digests.recorded_digests.cache_clear()
    try:
        strict = plan_stack("dev", merge={"zbi:instances": {"testnet": {"requireImageDigests": True}}})
        found = violations(strict)
        assert found and all("carries no digest" in message for message in found)
        assert any("zfnd/zebra:6.3.0 carries no digest" in message for message in found)
        assert not violations(plan_stack("dev"))  # not required: tags are allowed
    finally:
        image_digests.recorded_digests.cache_clear()


def test_with_every_digest_recorded_the_strict_instance_passes(
    plan_stack: PlanStack, digest_table: dict[str, str]
) -> None:
    strict = plan_stack("dev", merge={"zbi:instances": {"testnet": {"requireImageDigests": True}, **VARIANTS}})
    assert not violations(strict)
    assert all(PINNED.search(image) for image in rendered_images(strict))


def test_every_committed_digest_was_read_from_a_registry_or_from_cited_evidence() -> None:
    """zBI invents no digest: an entry is the tool's (a media type and a date) or a public pin vendored with its source
    (tests/fixtures/upstream/zcash-stack/image-pins.json), digit for digit."""
    table = json.loads(image_digests.DIGESTS_FILE.read_text())
    evidence = json.loads((UPSTREAM / "zcash-stack" / "image-pins.json").read_text())
    for section in ("images", "charts"):
        for reference, entry in table[section].items():
            if "mediaType" in entry:
                assert entry["resolved"] and entry["mediaType"] in (
                    *pin_images.MANIFEST_TYPES,
                    pin_images.CHART_ARCHIVE,
                )
            else:
                assert evidence["commit"][:8] in entry["source"], reference
                assert evidence["pins"][reference]["digest"] == entry["digest"], reference
