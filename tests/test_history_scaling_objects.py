"""History scaling's rendered objects: KEDA scales a history instance's full nodes on zebrad's RPC rate between a
floor and a ceiling; replicas above the floor restore the newest chain snapshot, which a CronJob keeps current. The
objects are checked against each other and against the upstream facts they rely on (vendored). The settings and the
time-to-serving model are tests/test_history_scaling_model.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from tests.archive_instance import ARCHIVE, KEDA, one
from tests.conftest import UPSTREAM, PlanStack
from zbi_infra.config.instance import InstanceConfig
from zbi_infra.monitoring.component import NAMESPACE as MONITORING_NAMESPACE
from zbi_infra.monitoring.hardening import network_policy_specs
from zbi_infra.monitoring.keda import CHART, load_query, scaled_object
from zbi_infra.monitoring.keda import NAMESPACE as KEDA_NAMESPACE
from zbi_infra.node.history_scaling import claim_name, newest_snapshot, next_snapshot, rotation_steps
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.render import manifest
from zbi_infra.policies import evaluate as evaluate_policies


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": {"archive": ARCHIVE}})


@pytest.fixture(scope="module")
def objects(plan: Plan) -> list[dict[str, Any]]:
    return [manifest(r) for r in plan.kubernetes_objects()]


# ---- rendered objects and their relationships -----------------------------------------------------------------


def test_new_replicas_claims_restore_the_snapshot_the_rotation_keeps_current(objects: list[dict[str, Any]]) -> None:
    statefulset = one(objects, "StatefulSet", "zebrad")
    (template,) = statefulset["spec"]["volumeClaimTemplates"]
    source = template["spec"]["dataSourceRef"]
    assert source == {"apiGroup": "snapshot.storage.k8s.io", "kind": "VolumeSnapshot", "name": "zebrad-newest"}
    rotation = one(objects, "ConfigMap", "chain-snapshot-rotation")
    newest = yaml.safe_load(rotation["data"]["newest.yaml"])
    following = yaml.safe_load(rotation["data"]["next.yaml"])
    assert newest["metadata"]["name"] == source["name"] == newest_snapshot("zebrad")
    # Both snapshots are of a claim that exists from the first deploy: replica 0's, which the floor keeps.
    for snapshot in (newest, following):
        claim = snapshot["spec"]["source"]["persistentVolumeClaimName"]
        assert claim == f"{template['metadata']['name']}-zebrad-0"
        one(objects, "PersistentVolumeClaim", claim)
    # Only the newest one is fast-restored; next is a stepping stone.
    classes = {o["metadata"]["name"]: o for o in objects if o.get("kind") == "VolumeSnapshotClass"}
    fast = classes[newest["spec"]["volumeSnapshotClassName"]]
    assert fast["parameters"]["fastSnapshotRestoreAvailabilityZones"].count(",") >= 2
    assert (
        "fastSnapshotRestoreAvailabilityZones"
        not in classes[following["spec"]["volumeSnapshotClassName"]]["parameters"]
    )
    assert fast["deletionPolicy"] == "Delete" and fast["driver"] == "ebs.csi.aws.com"
    # The job's containers name the same snapshots and manifests.
    job = one(objects, "CronJob", "chain-snapshot-rotation")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    commands = [c["command"] for c in [*job["initContainers"], *job["containers"]]]
    kubectl = commands[0][0]
    assert [c for c in commands if "create" in c] == [
        [kubectl, "create", "-n", "zbi-archive", "-f", "/manifests/next.yaml"],
        [kubectl, "create", "-n", "zbi-archive", "-f", "/manifests/newest.yaml"],
    ]
    (volume,) = [v for v in job["volumes"] if v["name"] == "manifests"]
    assert volume["configMap"]["name"] == rotation["metadata"]["name"]


def test_the_floor_claims_exist_before_the_statefulset_and_sync_rather_than_wait(
    plan: Plan, objects: list[dict[str, Any]]
) -> None:
    statefulset = one(objects, "StatefulSet", "zebrad")
    floor = statefulset["spec"]["replicas"]
    claims = sorted(
        o["metadata"]["name"]
        for o in objects
        if o.get("kind") == "PersistentVolumeClaim" and o["metadata"]["namespace"] == "zbi-archive"
    )
    assert claims == [claim_name("zebrad", i) for i in range(floor)] == ["data-zebrad-0", "data-zebrad-1"]
    for name in claims:
        claim = one(objects, "PersistentVolumeClaim", name)
        assert "dataSourceRef" not in claim["spec"] and "dataSource" not in claim["spec"]
        template = statefulset["spec"]["volumeClaimTemplates"][0]
        same = {k: v for k, v in template["spec"].items() if k != "dataSourceRef"}
        assert claim["spec"] == same
        assert claim["metadata"]["labels"] == template["metadata"]["labels"]
    (resource,) = [r for r in plan.of_type("kubernetes:apps/v1:StatefulSet") if r.name == "archive-zebrad"]
    claim_urns = {r.urn for r in plan.of_type("kubernetes:core/v1:PersistentVolumeClaim") if "archive-data" in r.name}
    assert claim_urns and claim_urns <= set(resource.depends_on)
    # A scaled-away replica's claim goes: the next scale-up restores the newest snapshot, not a stale volume.
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"] == {
        "whenDeleted": "Retain",
        "whenScaled": "Delete",
    }


def test_keda_scales_the_statefulset_between_the_floor_and_the_ceiling(objects: list[dict[str, Any]]) -> None:
    statefulset = one(objects, "StatefulSet", "zebrad")
    scaled = one(objects, "ScaledObject", "zebrad")["spec"]
    assert scaled["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "StatefulSet", "name": "zebrad"}
    assert scaled["minReplicaCount"] == statefulset["spec"]["replicas"] == 2
    assert scaled["maxReplicaCount"] == 5
    assert scaled["fallback"]["replicas"] == scaled["minReplicaCount"]
    # The PodDisruptionBudget lets one of the floor's replicas go at a time; two remain a floor for it.
    pdb = one(objects, "PodDisruptionBudget", "zebrad-pdb")
    assert pdb["spec"]["maxUnavailable"] == 1 and scaled["minReplicaCount"] >= 2
    # The namespace's quota admits the ceiling's pods and claims.
    quota = one(objects, "ResourceQuota", "instance-quota")["spec"]["hard"]
    assert int(quota["persistentvolumeclaims"]) >= 5 + 2


def test_the_scaled_object_validates_against_kedas_crd(objects: list[dict[str, Any]]) -> None:
    from tests.test_manifests import unknown_fields

    crd = json.loads((KEDA / "scaledobjects.schema.json").read_text())
    scaled = one(objects, "ScaledObject", "zebrad")
    jsonschema.Draft202012Validator(crd["schema"]).validate(scaled)
    assert unknown_fields(scaled["spec"], crd["schema"]["properties"]["spec"], "spec") == []
    broken = json.loads(json.dumps(scaled["spec"]))
    broken["fallback"]["behaviour"] = "static"
    assert unknown_fields(broken, crd["schema"]["properties"]["spec"], "spec") == ["spec.fallback.behaviour"]


def test_the_trigger_is_one_kedas_prometheus_scaler_reads(objects: list[dict[str, Any]]) -> None:
    facts = json.loads((KEDA / "prometheus-scaler.json").read_text())
    (trigger,) = one(objects, "ScaledObject", "zebrad")["spec"]["triggers"]
    assert trigger["type"] == "prometheus" and trigger["metricType"] == "AverageValue"
    assert set(facts["required"]) <= set(trigger["metadata"]) <= set(facts["prometheusTriggerMetadata"])
    # The default (true) would read "no answer" as "no load" and scale down to the floor.
    assert facts["ignoreNullValuesDefault"] is True and trigger["metadata"]["ignoreNullValues"] == "false"
    assert "AverageValue" in facts["rules"]["fallback"]
    service = json.loads((UPSTREAM / "prometheus-community" / "prometheus-service.json").read_text())
    assert (
        trigger["metadata"]["serverAddress"]
        == f"http://kube-prometheus-stack-prometheus.monitoring.svc:{service['port']}"
    )


def test_the_query_reads_zebrads_rpc_counter_by_its_exported_name() -> None:
    rpc = json.loads((UPSTREAM / "zebra" / "rpc-metrics.json").read_text())
    names = set(json.loads((UPSTREAM / "zebra" / "metrics.json").read_text())["metrics"])
    assert rpc["exported"] == rpc["metric"].replace(".", "_") and rpc["exported"] in names
    assert rpc["kind"] == "counter"
    assert f"rate({rpc['exported']}{{" in load_query("archive", "zebrad")
    # Zakura, Zebra's fork, counts its RPC calls the same way (zakurad's pods are scaled on it too).
    zakura = json.loads((UPSTREAM / "zakura" / "rpc-metrics.json").read_text())
    assert (zakura["metric"], zakura["kind"], zakura["labels"]) == (rpc["metric"], rpc["kind"], rpc["labels"])
    config = InstanceConfig.model_validate({"network": "mainnet", "node": {"kind": "zakurad"}, "history": {}})
    scaled = scaled_object("archive", config)
    assert scaled is not None and scaled["spec"]["scaleTargetRef"]["name"] == "zakurad"
    assert 'pod=~"zakurad-[0-9]+"' in scaled["spec"]["triggers"][0]["metadata"]["query"]


def test_floor_claims_take_the_bootstrap_snapshot_and_new_replicas_the_newest(plan_stack: PlanStack) -> None:
    archive = {**ARCHIVE, "node": {"bootstrapSnapshotId": "snap-0123456789abcdef0"}}
    objects = [
        manifest(r) for r in plan_stack("dev", merge={"zbi:instances": {"archive": archive}}).kubernetes_objects()
    ]
    template = one(objects, "StatefulSet", "zebrad")["spec"]["volumeClaimTemplates"][0]["spec"]
    assert template["dataSourceRef"]["name"] == "zebrad-newest" and "dataSource" not in template
    restore = one(objects, "VolumeSnapshot", "restore")
    for ordinal in (0, 1):
        claim = one(objects, "PersistentVolumeClaim", claim_name("zebrad", ordinal))
        assert claim["spec"]["dataSource"]["name"] == restore["metadata"]["name"]


def test_without_a_snapshot_driver_new_replicas_sync_and_zbi_says_so(plan_stack: PlanStack) -> None:
    plan = plan_stack("local", merge={"zbi:instances": {"archive": {"network": "mainnet", "history": {}}}})
    objects = [manifest(r) for r in plan.kubernetes_objects()]
    statefulset = one(objects, "StatefulSet", "zebrad")
    assert "dataSourceRef" not in statefulset["spec"]["volumeClaimTemplates"][0]["spec"]
    # Nothing to restore from: a replica scaled away keeps its claim, so coming back is not a sync from genesis.
    assert statefulset["spec"]["persistentVolumeClaimRetentionPolicy"]["whenScaled"] == "Retain"
    assert not [o for o in objects if o.get("kind") == "PersistentVolumeClaim"]
    assert not [o for o in objects if o.get("kind") == "CronJob" and o["metadata"]["name"] == "chain-snapshot-rotation"]
    # KEDA still scales it, between the same floor and ceiling.
    assert one(objects, "ScaledObject", "zebrad")["spec"]["minReplicaCount"] == statefulset["spec"]["replicas"]
    assert any("sync from peers instead of restoring" in w for w in plan.warnings)


def test_zbi_plan_prints_the_model_and_refuses_a_ceiling_below_the_floor_with_exit_2(tmp_path: Path) -> None:
    from tests.stack_input import DEV, project_copy, zbi

    project = project_copy(tmp_path)
    good = {**DEV, "zbi:instances": {**DEV["zbi:instances"], "archive": {"network": "mainnet", "history": {}}}}
    (project / "Pulumi.hist.yaml").write_text(yaml.safe_dump({"config": good}))
    result = zbi("plan", "hist", cwd=project, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "a new replica serves in about 15 min" in result.stdout
    assert "catch-up: 302 s [assumed]" in result.stdout
    bad = {"network": "mainnet", "node": {"replicas": 4}, "history": {"scaling": {"maxReplicas": 3}}}
    config = {**DEV, "zbi:instances": {**DEV["zbi:instances"], "archive": bad}}
    (project / "Pulumi.bad.yaml").write_text(yaml.safe_dump({"config": config}))
    result = zbi("plan", "bad", cwd=project, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "history.scaling.maxReplicas (3) is below node.replicas (4)" in result.stderr and "Fix:" in result.stderr


def test_the_keda_chart_is_pinned_and_its_values_are_keys_it_reads(plan: Plan) -> None:
    chart = json.loads((KEDA / "chart.json").read_text())
    (release,) = [r.inputs for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "keda"]
    assert (release["chart"], release["version"]) == CHART == (chart["chart"], chart["version"])
    assert release["namespace"] == MONITORING_NAMESPACE == KEDA_NAMESPACE
    assert set(release["values"]) <= set(chart["valueKeys"])
    assert set(release["values"]["rbac"]) <= set(chart["rbacKeys"])
    # Without the custom kinds, KEDA's operator may scale Deployments and StatefulSets only.
    assert release["values"]["rbac"]["enabledCustomScaledRefKinds"] is False
    assert "apps statefulsets/scale" in chart["operatorRbac"]["always"]


def test_prometheus_admits_kedas_operator_and_only_the_monitoring_stack(objects: list[dict[str, Any]]) -> None:
    chart = json.loads((KEDA / "chart.json").read_text())
    peers = [p["podSelector"]["matchLabels"] for p in network_policy_specs()["prometheus"]["ingress"][0]["from"]]
    assert chart["operatorPodLabels"] in peers
    assert all("namespaceSelector" not in p for p in network_policy_specs()["prometheus"]["ingress"][0]["from"])


def test_no_keda_without_a_history_instance(plan_stack: PlanStack) -> None:
    dev = plan_stack("dev")
    assert "keda" not in {r.inputs["chart"] for r in dev.of_type("kubernetes:helm.sh/v3:Release")}
    assert not [r for r in dev.resources if "chain-snapshot-rotation" in r.name]


def test_the_rotation_never_leaves_new_claims_without_a_recent_source() -> None:
    """The order of the job's steps: `newest` is deleted only once `next` is ready (a claim arriving then waits for
    a snapshot that is seconds from ready, never hours), and `next` goes only once `newest` is ready again."""
    steps = rotation_steps("zebrad", "zbi-archive", 6)
    names = [name for name, _ in steps]
    args = dict(steps)

    def position(predicate: Any) -> int:
        (index,) = [i for i, (_, a) in enumerate(steps) if predicate(a)]
        return index

    waits = {a[-2]: i for i, (_, a) in enumerate(steps) if a[0] == "wait" and a[-2].startswith("volumesnapshot/")}
    drop_newest = position(lambda a: a[0] == "delete" and newest_snapshot("zebrad") in a)
    assert waits[f"volumesnapshot/{next_snapshot('zebrad')}"] < drop_newest
    assert position(lambda a: a[0] == "wait" and "pod/zebrad-0" in a) == 0
    last_drop_next = max(i for i, (_, a) in enumerate(steps) if a[0] == "delete" and next_snapshot("zebrad") in a)
    assert waits[f"volumesnapshot/{newest_snapshot('zebrad')}"] < last_drop_next == len(steps) - 1
    assert len(set(names)) == len(names) and "--ignore-not-found" in args["drop-newest"]


def test_the_rotations_role_allows_every_call_the_job_makes(objects: list[dict[str, Any]]) -> None:
    role = one(objects, "Role", "chain-snapshot-rotation")
    allowed = {(res, verb) for rule in role["rules"] for res in rule["resources"] for verb in rule["verbs"]}
    # kubectl: `wait` gets, lists and watches; `delete --wait` deletes and then watches; `create` creates.
    needed = {"wait": ("get", "list", "watch"), "delete": ("delete", "get", "list", "watch"), "create": ("create",)}
    for _, args in rotation_steps("zebrad", "zbi-archive", 6):
        target = next(a for a in args[1:] if "/" in a or a == "volumesnapshot" or a.endswith(".yaml"))
        resource = "pods" if target.startswith("pod/") else "volumesnapshots"
        for verb in needed[args[0]]:
            assert (resource, verb) in allowed, (args, verb)
    assert ("volumesnapshots", "update") not in allowed and ("persistentvolumeclaims", "delete") not in allowed


def test_a_history_instance_passes_every_guardrail_of_the_policy_pack(plan: Plan) -> None:
    from tests.test_policy import resources

    assert evaluate_policies(resources(plan)) == []


def test_the_scaled_objects_wait_for_kedas_chart_and_the_dashboard_has_the_panels(plan: Plan) -> None:
    (release,) = [r for r in plan.of_type("kubernetes:helm.sh/v3:Release") if r.inputs["chart"] == "keda"]
    (scaled,) = [r for r in plan.resources if r.type == "kubernetes:keda.sh/v1alpha1:ScaledObject"]
    assert release.urn in scaled.depends_on
    (board,) = [
        json.loads(next(iter(o["data"].values())))
        for o in (manifest(r) for r in plan.kubernetes_objects())
        if o.get("kind") == "ConfigMap" and o["metadata"]["name"] == "zbi-archive"
    ]
    titles = [panel.get("title", "") for panel in board["panels"]]
    assert "Full-node replicas: current, desired, ceiling" in titles
    assert any(t.startswith("Time from scale-up to ready (pod created to ready; modelled") for t in titles)
