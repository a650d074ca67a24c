"""The multi-language component package: its schema from Pulumi's own analyzer, the provider host served over gRPC
as the engine starts it, the components under mocks, and the YAML/TypeScript examples against the schema."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from google.protobuf import empty_pb2
from pulumi.provider.experimental.analyzer import Analyzer
from pulumi.runtime.proto import provider_pb2, provider_pb2_grpc

from tests.conftest import ROOT
from tests.plugin_server import plugin_channel
from zbi_infra.plan.engine import Plan, evaluate
from zbi_infra.plan.project import StackFile

COMPONENTS_DIR = ROOT / "components"
sys.path.insert(0, str(COMPONENTS_DIR))

import zbi_components  # noqa: E402


@pytest.fixture(scope="module")
def analyzed() -> dict[str, Any]:
    return Analyzer("zbi").analyze(zbi_components.COMPONENTS)  # type: ignore[return-value]


def test_the_analyzer_accepts_every_component_with_documented_inputs_and_outputs(analyzed: dict[str, Any]) -> None:
    components = analyzed["component_definitions"]
    assert set(components) == {"ZcashNode", "ZbiVpc", "ZbiCluster", "ZbiBackups"}
    for name, component in components.items():
        assert component.description, name
        for kind, properties in (("input", component.inputs), ("output", component.outputs)):
            for prop_name, prop in properties.items():
                assert prop.description, f"{name} {kind} {prop_name} has no description"
    for name, definition in analyzed["type_definitions"].items():
        assert definition.description and all(p.description for p in definition.properties.values()), name
    node = components["ZcashNode"]
    assert node.inputs["network"].optional is False and node.inputs["tls"].optional is True
    assert set(node.outputs) == {"namespace", "rpcEndpoint", "grpcEndpoint", "caCertPem"}
    assert node.inputs["node"].ref == "#/types/zbi:index:NodeArgs"


@pytest.fixture(scope="module")
def provider() -> Iterator[provider_pb2_grpc.ResourceProviderStub]:
    """The package's entry point, started as the engine starts a plugin: engine address as argument, port on stdout."""
    command = [sys.executable, str(COMPONENTS_DIR / "__main__.py"), "127.0.0.1:1"]
    with plugin_channel(command, COMPONENTS_DIR) as channel:
        yield provider_pb2_grpc.ResourceProviderStub(channel)


@pytest.fixture(scope="module")
def schema(provider: provider_pb2_grpc.ResourceProviderStub) -> dict[str, Any]:
    return json.loads(provider.GetSchema(provider_pb2.GetSchemaRequest(version=0), timeout=60).schema)


def test_the_host_answers_the_engine(provider: provider_pb2_grpc.ResourceProviderStub, schema: dict[str, Any]) -> None:
    # Python providers take the engine's legacy handshake: the port on stdout (the fixture read it), no Handshake
    # call, then Configure.
    with pytest.raises(grpc.RpcError) as unimplemented:
        provider.Handshake(provider_pb2.ProviderHandshakeRequest(engine_address="127.0.0.1:1"), timeout=30)
    assert unimplemented.value.code() == grpc.StatusCode.UNIMPLEMENTED
    configured = provider.Configure(provider_pb2.ConfigureRequest(acceptSecrets=True, acceptResources=True), timeout=30)
    assert configured.acceptSecrets and configured.acceptResources
    info = provider.GetPluginInfo(empty_pb2.Empty(), timeout=30)
    assert info.version
    assert schema["name"] == "zbi"
    resources = schema["resources"]
    assert set(resources) == {f"zbi:index:{n}" for n in ("ZcashNode", "ZbiVpc", "ZbiCluster", "ZbiBackups")}
    node = resources["zbi:index:ZcashNode"]
    assert node["isComponent"] is True
    assert node["requiredInputs"] == ["network"]
    assert node["inputProperties"]["storageClassName"]["description"].startswith("StorageClass")
    assert set(node["properties"]) == {"namespace", "rpcEndpoint", "grpcEndpoint", "caCertPem"}
    assert "zbi:index:NodeArgs" in schema["types"]


def run(tmp_path: Path, source: str) -> Plan:
    (tmp_path / "__main__.py").write_text(f"import sys\nsys.path.insert(0, {str(COMPONENTS_DIR)!r})\n" + source)
    return evaluate(StackFile(stack="dev", config={}), program=tmp_path, project="components")


def test_a_zcash_node_from_the_package_builds_the_librarys_instance(tmp_path: Path) -> None:
    plan = run(
        tmp_path,
        "import pulumi, pulumi_kubernetes as k8s\n"
        "from zbi_components import ZcashNode\n"
        "provider = k8s.Provider('cluster')\n"
        "ZcashNode('testnet', {'network': 'testnet', 'node': {'replicas': 2, 'storage': {'size_gib': 100}}},\n"
        "          opts=pulumi.ResourceOptions(providers={'kubernetes': provider}))\n",
    )
    (wrapper,) = plan.of_type("zbi:index:ZcashNode")
    (node,) = plan.of_type("zbi:node:ZcashNode")
    assert node.parent == wrapper.urn
    (statefulset,) = [r for r in plan.resources if r.name == "testnet-zebrad"]
    assert statefulset.inputs["spec"]["replicas"] == 2
    claim = statefulset.inputs["spec"]["volumeClaimTemplates"][0]
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"


def test_a_yaml_user_gets_the_same_message_as_a_stack_file(tmp_path: Path) -> None:
    with pytest.raises(Exception, match=re.escape("args.node.replicas: Input should be a valid integer")) as caught:
        run(
            tmp_path,
            "from zbi_components import ZcashNode\n"
            "ZcashNode('bad', {'network': 'testnet', 'node': {'replicas': 'two'}})\n",
        )
    assert "Fix: write a whole number" in str(caught.value)


def example_yaml() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "examples" / "yaml" / "Pulumi.yaml").read_text())


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def check_against(schema: dict[str, Any], properties: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    for key, value in properties.items():
        assert key in spec["properties"], f"{where}.{key} is not in the schema"
        ref = spec["properties"][key].get("$ref", "")
        if isinstance(value, dict) and ref.startswith("#/types/"):
            check_against(schema, value, schema["types"][ref.removeprefix("#/types/")], f"{where}.{key}")


def test_the_yaml_example_uses_the_package_as_its_schema_says(schema: dict[str, Any]) -> None:
    program = example_yaml()
    (node,) = [r for r in program["resources"].values() if r["type"] == "zbi:index:ZcashNode"]
    spec = schema["resources"]["zbi:index:ZcashNode"]
    check_against(schema, node["properties"], {"properties": spec["inputProperties"]}, "ZcashNode")
    assert set(spec["requiredInputs"]) <= set(node["properties"])
    outputs = {m.group(1) for m in re.finditer(r"\$\{testnet\.(\w+)\}", json.dumps(program["outputs"]))}
    assert outputs <= set(spec["properties"])


def test_the_typescript_example_uses_the_package_as_its_schema_says(schema: dict[str, Any]) -> None:
    source = (ROOT / "examples" / "typescript" / "index.ts").read_text()
    assert 'import * as zbi from "@pulumi/zbi"' in source and "new zbi.ZcashNode(" in source
    spec = schema["resources"]["zbi:index:ZcashNode"]
    used = set(re.findall(r"^\s{8}(\w+):", source, flags=re.MULTILINE))
    assert used and used <= set(spec["inputProperties"])
    assert set(re.findall(r"testnet\.(\w+);", source)) <= set(spec["properties"])
    assert camel("storage_class_name") in spec["inputProperties"]
