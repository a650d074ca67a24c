"""ZcashNode under mocks: what it asks Kubernetes for, for every option an instance can take."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import PlanStack
from tests.k8s_objects import all_containers, objects, one, pod_spec, zebrad_config
from zbi_infra.errors import ConfigError
from zbi_infra.plan.engine import Plan

NS = "zbi-testnet"


@pytest.fixture(scope="module")
def dev(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev")


def with_instance(plan_stack: PlanStack, name: str, instance: dict[str, Any]) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": {name: instance}})


def test_namespace_and_service_account(dev: Plan) -> None:
    namespace = one(dev, "Namespace", NS)
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    assert one(dev, "ServiceAccount", "zcash", NS)["automountServiceAccountToken"] is False


def test_full_node_statefulset(dev: Plan) -> None:
    sts = one(dev, "StatefulSet", "zebrad", NS)
    spec = sts["spec"]
    assert spec["replicas"] == 2
    assert spec["persistentVolumeClaimRetentionPolicy"] == {"whenDeleted": "Retain", "whenScaled": "Retain"}
    (claim,) = spec["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "zbi-testnet-chain"
    assert claim["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert sts["metadata"]["annotations"]["pulumi.com/skipAwait"] == "true"
    pod = pod_spec(sts)
    assert pod["terminationGracePeriodSeconds"] >= 300
    assert pod["automountServiceAccountToken"] is False
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "topology.kubernetes.io/zone" and spread["maxSkew"] == 1
    assert spread["whenUnsatisfiable"] == "DoNotSchedule"
    anti = pod["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
    assert anti["topologyKey"] == "kubernetes.io/hostname"


def test_zebrad_probes_reflect_sync_state(dev: Plan) -> None:
    container, _guard = pod_spec(one(dev, "StatefulSet", "zebrad", NS))["containers"]
    assert container["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "health"}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthy"
    startup = container["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 6 * 3600
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    # No RPC port: zebrad's RPC is on loopback, behind the RPC guard (tests/test_rpc_guard.py).
    assert ports == {"p2p": 18233, "health": 8080, "metrics": 9999}
    config = zebrad_config(dev, NS)
    assert config["health"]["listen_addr"].endswith(":8080")


def test_every_container_is_hardened(dev: Plan) -> None:
    workloads = objects(dev, "StatefulSet")
    assert len(workloads) == 2
    for workload in workloads:
        pod = pod_spec(workload)
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for container in all_containers(workload):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert set(container["resources"]["requests"]) == {"cpu", "memory"}
            assert set(container["resources"]["limits"]) == {"cpu", "memory"}


def test_storage_class_is_encrypted_retained_and_tagged(dev: Plan) -> None:
    storage_class = one(dev, "StorageClass", "zbi-testnet-chain")
    assert storage_class["provisioner"] == "ebs.csi.aws.com"
    assert storage_class["reclaimPolicy"] == "Retain"
    assert storage_class["volumeBindingMode"] == "WaitForFirstConsumer"
    assert storage_class["allowVolumeExpansion"] is True
    parameters = storage_class["parameters"]
    assert parameters["type"] == "gp3" and parameters["encrypted"] == "true"
    assert parameters["kmsKeyId"].startswith("arn:aws:kms:us-east-1:")
    assert parameters["iops"] == "6000" and parameters["throughput"] == "250"
    tags = {v for k, v in parameters.items() if k.startswith("tagSpecification_")}
    assert {"zbi.io/backup=true", "zbi.io/instance=testnet", "zbi.io/stack=dev"} <= tags


def test_rpc_credentials_are_generated_secrets(dev: Plan) -> None:
    secret = one(dev, "Secret", "rpc-credentials", NS)
    assert secret["stringData"] == {
        "username": "[secret]",
        "password": "[secret]",
        "rpc-guard-authorization.conf": "[secret]",
    }
    passwords = {p.name: p for p in dev.of_type("random:index/randomPassword:RandomPassword")}
    # The node's RPC password, the monitoring probe's key for the gateways, and Grafana's admin password.
    assert set(passwords) == {"testnet-rpc-password", "dev-probe-key", "dev-monitoring-grafana-admin-password"}
    assert all(p.inputs["length"] >= 32 for p in passwords.values())
    assert one(dev, "Secret", "zbi-probe-key", "monitoring")["stringData"] == {"key": "[secret]"}
    (lwd,) = pod_spec(one(dev, "StatefulSet", "lightwalletd", NS))["containers"]
    env = {e["name"]: e for e in lwd["env"]}
    assert env["RPCPASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "rpc-credentials", "key": "password"}
    assert env["RPCUSER"]["valueFrom"]["secretKeyRef"] == {"name": "rpc-credentials", "key": "username"}
    assert not any("password" in a for a in lwd["command"])


def test_light_wallet_tier_scales_on_its_own(dev: Plan) -> None:
    sts = one(dev, "StatefulSet", "lightwalletd", NS)
    hpa = one(dev, "HorizontalPodAutoscaler", "lightwalletd", NS)
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "lightwalletd"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert sts["spec"]["replicas"] == 2
    (container,) = pod_spec(sts)["containers"]
    assert "--rpchost=zebrad-rpc.zbi-testnet.svc.cluster.local" in container["command"]
    assert "--rpcport=18232" in container["command"]
    pdbs = {p["metadata"]["name"] for p in objects(dev, "PodDisruptionBudget", NS)}
    assert pdbs == {"zebrad-pdb", "lightwalletd-pdb", "gateway-pdb"}


def test_services(dev: Plan) -> None:
    headless = one(dev, "Service", "zebrad-headless", NS)
    assert headless["spec"]["clusterIP"] == "None"
    rpc = one(dev, "Service", "zebrad-rpc", NS)
    assert rpc["spec"]["type"] == "ClusterIP"
    # testnet has an access file: its gateway is the public face, the light-wallet tier stays inside.
    assert one(dev, "Service", "lightwalletd-grpc", NS)["spec"]["type"] == "ClusterIP"
    gateway = one(dev, "Service", "gateway", NS)
    assert gateway["spec"]["type"] == "LoadBalancer"
    assert gateway["metadata"]["annotations"]["service.beta.kubernetes.io/aws-load-balancer-type"] == "nlb"
    assert gateway["spec"]["ports"] == [{"name": "https", "port": 443, "targetPort": "https"}]
    public = {s["metadata"]["name"] for s in objects(dev, "Service", NS) if s["spec"].get("type") == "LoadBalancer"}
    assert public == {"gateway"}  # the full node's RPC and P2P stay private


def test_tls_certificate_covers_the_instance_names(dev: Plan) -> None:
    secret = one(dev, "Secret", "grpc-tls", NS)
    assert secret["type"] == "kubernetes.io/tls"
    assert set(secret["stringData"]) == {"tls.crt", "tls.key", "ca.crt"}
    (request,) = dev.of_type("tls:index/certRequest:CertRequest")
    assert "testnet.lwd.zbi.example" in request.inputs["dnsNames"]
    assert "lightwalletd-grpc.zbi-testnet.svc.cluster.local" in request.inputs["dnsNames"]
    (ca,) = dev.of_type("tls:index/selfSignedCert:SelfSignedCert")
    assert ca.inputs["isCaCertificate"] is True
    (container,) = pod_spec(one(dev, "StatefulSet", "lightwalletd", NS))["containers"]
    assert "--tls-cert=/etc/zbi/tls/tls.crt" in container["command"]
    assert {"name": "tls", "mountPath": "/etc/zbi/tls", "readOnly": True} in container["volumeMounts"]


def test_network_policies(dev: Plan) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in objects(dev, "NetworkPolicy", NS)}
    assert policies["default-deny"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    full_node = policies["full-node"]
    rpc_rule = next(r for r in full_node["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 18232}])
    assert rpc_rule["from"] == [
        {"podSelector": {"matchLabels": {"app.kubernetes.io/component": tier, "app.kubernetes.io/instance": "testnet"}}}
        for tier in ("light-wallet", "gateway")
    ]
    p2p_rule = next(r for r in full_node["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 18233}])
    assert p2p_rule["from"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
    assert "169.254.169.254/32" in full_node["egress"][0]["to"][0]["ipBlock"]["except"]
    wallet = policies["light-wallet"]
    assert wallet["egress"][0]["ports"] == [{"protocol": "TCP", "port": 18232}]


def test_regtest_is_an_isolated_peer_network(plan_stack: PlanStack) -> None:
    plan = with_instance(
        plan_stack, "regnet", {"network": "regtest", "node": {"replicas": 3}, "lightwallet": {"kind": "none"}}
    )
    ns = "zbi-regnet"
    config = zebrad_config(plan, ns)
    assert config["network"]["network"] == "Regtest"
    # Zebra keeps only localhost initial peers on Regtest: each sibling is a loopback forwarder in the pod.
    assert config["network"]["initial_testnet_peers"] == [f"127.0.0.1:{28344 + i}" for i in range(3)]
    domain = "zebrad-headless.zbi-regnet.svc.cluster.local"
    containers = pod_spec(one(plan, "StatefulSet", "zebrad", ns))["containers"]
    forwarders = [c for c in containers if c["name"].startswith("peer-")]
    assert [(c["name"], c["args"]) for c in forwarders] == [
        (
            f"peer-{i}",
            [
                f"TCP-LISTEN:{28344 + i},bind=127.0.0.1,fork,reuseaddr",
                f"TCP:zebrad-{i}.{domain}:18344,connect-timeout=5",
            ],
        )
        for i in range(3)
    ]
    policy = one(plan, "NetworkPolicy", "full-node", ns)["spec"]
    siblings = [
        {
            "podSelector": {
                "matchLabels": {"app.kubernetes.io/component": "full-node", "app.kubernetes.io/instance": "regnet"}
            }
        }
    ]
    p2p_rule = next(r for r in policy["ingress"] if r["ports"] == [{"protocol": "TCP", "port": 18344}])
    assert p2p_rule["from"] == siblings
    assert policy["egress"] == [{"to": siblings, "ports": [{"protocol": "TCP", "port": 18344}]}]
    assert one(plan, "Service", "zebrad-headless", ns)["spec"]["publishNotReadyAddresses"] is True
    assert not [s for s in objects(plan, "Service", ns) if s["spec"].get("type") == "LoadBalancer"]
    assert not objects(plan, "StatefulSet", ns)[1:]  # no light-wallet tier


def test_zcashd_differs_where_it_should(plan_stack: PlanStack) -> None:
    plan = with_instance(plan_stack, "legacy", {"network": "regtest", "node": {"kind": "zcashd", "replicas": 2}})
    ns = "zbi-legacy"
    conf = one(plan, "ConfigMap", "zcashd-config", ns)["data"]["zcash.conf"]
    assert "rpcport=18232" in conf and "regtest=1" in conf and "rpcpassword" not in conf
    assert "lightwalletd=1" in conf and "experimentalfeatures=1" in conf  # required by lightwalletd
    assert "i-am-aware-zcashd-will-be-replaced-by-zebrad-and-zallet-in-2025=1" in conf
    sts = one(plan, "StatefulSet", "zcashd", ns)
    assert "initContainers" not in pod_spec(sts)  # zcash-fetch-params is a no-op in current releases
    (container,) = pod_spec(sts)["containers"]
    assert "getblockcount" in container["readinessProbe"]["exec"]["command"][-1]
    assert container["command"][0] == "zcashd" and "-rpcpassword=$(RPC_PASSWORD)" in container["command"]
    assert pod_spec(sts)["terminationGracePeriodSeconds"] == 600
    lwd = pod_spec(one(plan, "StatefulSet", "lightwalletd", ns))["containers"][0]
    assert "--rpcport=18232" in lwd["command"]


def test_zaino_starts_with_a_secret_config(plan_stack: PlanStack) -> None:
    plan = with_instance(plan_stack, "zaino", {"network": "mainnet", "lightwallet": {"kind": "zaino"}})
    ns = "zbi-zaino"
    secret = one(plan, "Secret", "zaino-config", ns)
    assert secret["stringData"] == {"zainod.toml": "[secret]"}
    (container,) = pod_spec(one(plan, "StatefulSet", "zaino", ns))["containers"]
    assert container["command"] == ["zainod", "start", "--config", "/etc/zaino/zainod.toml"]
    assert container["image"] == "zingodevops/zaino:0.8.0"  # the TLS build: TLS ends at the pod
    assert {p["containerPort"] for p in container["ports"]} == {8137}


def test_single_replica_has_no_pdb(plan_stack: PlanStack) -> None:
    plan = with_instance(
        plan_stack,
        "solo",
        {"network": "mainnet", "node": {"replicas": 1}, "lightwallet": {"minReplicas": 1, "maxReplicas": 2}},
    )
    assert not objects(plan, "PodDisruptionBudget", "zbi-solo")


def test_image_overrides_and_digest(plan_stack: PlanStack) -> None:
    digest = "sha256:" + "a" * 64
    plan = with_instance(
        plan_stack,
        "fork",
        {
            "network": "testnet",
            "node": {"image": {"repository": "ghcr.io/acme/zebra", "tag": "6.3.0-acme", "digest": digest}},
        },
    )
    sts = one(plan, "StatefulSet", "zebrad", "zbi-fork")
    assert pod_spec(sts)["containers"][0]["image"] == f"ghcr.io/acme/zebra:6.3.0-acme@{digest}"
    assert not any("CKV_K8S_43" in v for v in sts["metadata"]["annotations"].values())


def test_instance_admins_get_namespaced_access(dev: Plan) -> None:
    # No EKS access policy (Edit read Secrets and exec'd): their group's Role in their namespace (tests/test_tenancy.py).
    assert not dev.of_type("aws:eks/accessPolicyAssociation:AccessPolicyAssociation")
    (entry,) = dev.of_type("aws:eks/accessEntry:AccessEntry")
    assert entry.inputs["principalArn"] == "arn:aws:iam::123456789012:role/zbi-testnet-operators"
    assert one(dev, "RoleBinding", "zbi-instance-admin", "zbi-testnet")["roleRef"]["kind"] == "Role"


def test_config_change_rolls_the_pods(plan_stack: PlanStack, dev: Plan) -> None:
    changed = plan_stack(
        "dev", merge={"zbi:instances": {"testnet": {"node": {"extraOptions": {"sync.download_concurrency_limit": 10}}}}}
    )

    def checksum(plan: Plan) -> str:
        return one(plan, "StatefulSet", "zebrad", NS)["spec"]["template"]["metadata"]["annotations"][
            "zbi.io/config-checksum"
        ]

    assert checksum(changed) != checksum(dev)


def test_a_bootstrap_archive_fills_new_volumes_before_zebrad_starts(plan_stack: PlanStack) -> None:
    archive = {
        "url": "https://snapshots.example.com/zebra-2026-06-03.tar",
        "sha256": "ab" * 32,
        "sizeGib": 260,
        "extractedSizeGib": 230,
    }
    plan = with_instance(plan_stack, "fresh", {"network": "testnet", "node": {"bootstrapArchive": archive}})
    pod = pod_spec(one(plan, "StatefulSet", "zebrad", "zbi-fresh"))
    (init,) = pod["initContainers"]
    assert init["name"] == "bootstrap" and init["command"][:2] == ["/bin/sh", "-c"]
    script = init["command"][2]
    assert archive["url"] in script and archive["sha256"] in script and "--strip-components=1" in script
    # The room check counts both sizes; a failure's last log line is the pod's termination message.
    assert f"{260 * 1024**3} - have + {230 * 1024**3}" in script
    assert init["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert init["image"] == pod["containers"][0]["image"]  # the zebrad image brings curl, tar and sha256sum
    assert {"name": "data", "mountPath": "/var/lib/zebra"} in init["volumeMounts"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True


SIZES = {"sizeGib": 100, "extractedSizeGib": 100}


@pytest.mark.parametrize(
    ("archive", "expected"),
    [
        ({"url": "http://insecure.example.com/a.tar", "sha256": "ab" * 32, **SIZES}, "bootstrapArchive.url"),
        ({"url": "https://x.example.com/a.tar", "sha256": "not-a-digest", **SIZES}, "bootstrapArchive.sha256"),
        ({"url": "https://x.example.com/a.tar", **SIZES}, "bootstrapArchive.sha256: required"),
        ({"url": "https://x.example.com/a.tar", "sha256": "ab" * 32}, "bootstrapArchive.sizeGib: required"),
        ({"url": "https://x.example.com/a'; rm -rf /'", "sha256": "ab" * 32, **SIZES}, "bootstrapArchive.url"),
        # The default 500 GiB volume cannot hold a 300 GiB archive and its 260 GiB of state at once.
        (
            {"url": "https://x.example.com/a.tar", "sha256": "ab" * 32, "sizeGib": 300, "extractedSizeGib": 260},
            "raise storage.sizeGib to at least 560",
        ),
    ],
)
def test_a_bootstrap_archive_must_be_https_and_pinned(
    plan_stack: PlanStack, archive: dict[str, object], expected: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(expected)):
        with_instance(plan_stack, "fresh", {"network": "testnet", "node": {"bootstrapArchive": archive}})
