"""The history export on AWS: a history instance plans its bucket, catalog, workgroup, IRSA role and CronJob; the role
writes its own prefix and nothing else; the job is hardened and reaches only the node's RPC and HTTPS; bad config is
refused naming the field and the fix; a local stack refuses the export."""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, PlanStack
from tests.iam_analysis import cloudsplaining_findings, escalation_findings, parliament_findings, trust_findings
from tests.netpol_model import Pod, reachable
from tests.test_config import with_patch
from zbi_export.schema import PARTITION_KEY, glue_tables, partition_value
from zbi_infra.config import load_stack_config
from zbi_infra.config.history_export import cron_problem
from zbi_infra.cost import Assumptions, estimate, load_prices
from zbi_infra.errors import ConfigError
from zbi_infra.history_catalog import bucket_name_problem, table_definitions
from zbi_infra.node.history_export_job import credential_file
from zbi_infra.plan.engine import Plan
from zbi_infra.plan.render import manifest

IMAGE = {"repository": "123456789012.dkr.ecr.us-east-1.amazonaws.com/zbi-history-export", "tag": "0.1.0"}
ARCHIVE = {"network": "mainnet", "history": {"export": {"enabled": True, "image": IMAGE, "scanLimitGib": 50}}}
# A second history instance, on testnet, so the roles can be checked against each other's data.
ARCHIVE_TEST = {"network": "testnet", "history": {"export": {"enabled": True, "image": IMAGE}}}
# The dev stack's own testnet instance exports too; here it is the instance that does not.
INSTANCES = {"archive": ARCHIVE, "archivet": ARCHIVE_TEST, "testnet": {"history": None}}
GIB = 2**30


@pytest.fixture(scope="module")
def plan(plan_stack: PlanStack) -> Plan:
    return plan_stack("dev", merge={"zbi:instances": INSTANCES})


def named(plan: Plan, name: str) -> dict[str, Any]:
    return plan.named(name).inputs


def buckets(plan: Plan, instance: str) -> tuple[str, str]:
    return named(plan, f"{instance}-history-export-data")["bucket"], named(plan, f"{instance}-history-export-results")[
        "bucket"
    ]


def key_arn(plan: Plan, instance: str) -> str:
    """The instance's key, as its data bucket's default encryption names it."""
    (rule,) = named(plan, f"{instance}-history-export-data-encryption")["rules"]
    arn = rule["applyServerSideEncryptionByDefault"]["kmsMasterKeyId"]
    assert arn.startswith("arn:aws:kms:us-east-1:123456789012:key/")
    return str(arn)


# ---- an IAM evaluator small enough to read: Allow statements, wildcards, StringLike/StringEquals conditions ------------


def permits(document: dict[str, Any], action: str, resource: str, context: dict[str, str] | None = None) -> bool:
    context = context or {}
    for statement in document["Statement"]:
        if statement["Effect"] != "Allow":
            continue
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        if not any(fnmatch.fnmatchcase(action.lower(), a.lower()) for a in actions):
            continue
        if not any(fnmatch.fnmatchcase(resource, r) for r in resources):
            continue
        conditions = statement.get("Condition", {})
        met = True
        for operator, pairs in conditions.items():
            for key, wanted in pairs.items():
                values = wanted if isinstance(wanted, list) else [wanted]
                have = context.get(key)
                if have is None:
                    met = False
                elif operator == "StringLike":
                    met = met and any(fnmatch.fnmatchcase(have, v) for v in values)
                elif operator == "StringEquals":
                    met = met and have in values
                else:
                    met = False
        if met:
            return True
    return False


def test_the_evaluator_says_no_to_what_a_policy_does_not_grant() -> None:
    document = {"Statement": [{"Effect": "Allow", "Action": "s3:PutObject", "Resource": "arn:aws:s3:::b/p/*"},
                              {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::b",
                               "Condition": {"StringLike": {"s3:prefix": ["p/*"]}}}]}  # fmt: skip
    assert permits(document, "s3:PutObject", "arn:aws:s3:::b/p/x")
    assert not permits(document, "s3:PutObject", "arn:aws:s3:::b/q/x")
    assert not permits(document, "s3:DeleteObject", "arn:aws:s3:::b/p/x")
    assert permits(document, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "p/blocks/"})
    assert not permits(document, "s3:ListBucket", "arn:aws:s3:::b", {"s3:prefix": "q/"})
    assert not permits(document, "s3:ListBucket", "arn:aws:s3:::b")


# ---- the plan ---------------------------------------------------------------------------------------------------


def test_a_history_instance_plans_its_bucket_catalog_workgroup_role_and_job(plan: Plan) -> None:
    types = {r.type for r in plan.resources if r.name.startswith("archive-")}
    assert {
        "zbi:history:ZbiHistoryExport",
        "aws:kms/key:Key",
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
        "aws:s3/bucketVersioning:BucketVersioning",
        "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
        "aws:s3/bucketLifecycleConfiguration:BucketLifecycleConfiguration",
        "aws:glue/catalogDatabase:CatalogDatabase",
        "aws:glue/catalogTable:CatalogTable",
        "aws:athena/workgroup:Workgroup",
        "aws:iam/role:Role",
        "kubernetes:batch/v1:CronJob",
    } <= types
    # The instance without history has none of it.
    assert not [r for r in plan.resources if r.name.startswith("testnet-history")]


def test_the_glue_tables_are_the_export_programs_schema_at_the_instances_prefix(plan: Plan) -> None:
    data, _ = buckets(plan, "archive")
    tables = {r.inputs["name"]: r.inputs for r in plan.of_type("aws:glue/catalogTable:CatalogTable")
              if r.name.startswith("archive-history")}  # fmt: skip
    schema = glue_tables()
    assert set(tables) == set(schema)
    for name, table in tables.items():
        descriptor = table["storageDescriptor"]
        assert descriptor["location"] == f"s3://{data}/mainnet/{name}/"
        assert [(c["name"], c["type"]) for c in descriptor["columns"]] == [
            (c["name"], c["type"]) for c in schema[name]["columns"]
        ]
        assert [k["name"] for k in table["partitionKeys"]] == [PARTITION_KEY]
        assert descriptor["serDeInfo"]["serializationLibrary"].endswith("ParquetHiveSerDe")
        assert table["tableType"] == "EXTERNAL_TABLE" and table["databaseName"] == "zbi_dev_archive"
        parameters = table["parameters"]
        assert parameters["projection.enabled"] == "true" and parameters["projection.height_range.type"] == "enum"
        template = parameters["storage.location.template"]
        assert template == f"s3://{data}/mainnet/{name}/height_range=${{height_range}}/"
        ranges = parameters["projection.height_range.values"].split(",")
        # Every partition the program writes, up to catalogMaxHeight, spelled as the program spells it.
        assert len(ranges) == 10_000_000 // 10_000 and ranges[0] == partition_value(0, 10_000)
        assert partition_value(3_444_123, 10_000) in ranges and ranges[-1] == partition_value(9_999_999, 10_000)
        assert len(parameters["projection.height_range.values"]) <= 512_000  # Glue's limit for a parameter value


def test_the_projected_location_is_where_the_program_writes() -> None:
    """The template Athena fills in, and the path the export program's store writes, for the same height."""
    from zbi_export.store import Store

    definition = table_definitions("b", "mainnet/", 10_000, 10_000_000)["blocks"]
    value = partition_value(2_500_123, 10_000)
    projected = definition["parameters"]["storage.location.template"].replace("${height_range}", value)
    store = Store(filesystem=None, bucket="b", prefix="mainnet")  # type: ignore[arg-type]
    assert f"s3://{store.partition_path('blocks', value)}".startswith(projected)
    assert f"s3://{store.partition_path('blocks', value)}" == projected + "part.parquet"


def test_the_workgroup_enforces_its_scan_limit_and_encrypted_results(plan: Plan) -> None:
    workgroup = named(plan, "archive-history-export-workgroup")["configuration"]
    assert workgroup["bytesScannedCutoffPerQuery"] == 50 * GIB
    assert workgroup["enforceWorkgroupConfiguration"] is True
    _, results = buckets(plan, "archive")
    assert workgroup["resultConfiguration"]["outputLocation"] == f"s3://{results}/"
    encryption = workgroup["resultConfiguration"]["encryptionConfiguration"]
    assert encryption["encryptionOption"] == "SSE_KMS"
    assert encryption["kmsKeyArn"] == key_arn(plan, "archive") != key_arn(plan, "archivet")
    # The other instance keeps the default limit.
    assert named(plan, "archivet-history-export-workgroup")["configuration"]["bytesScannedCutoffPerQuery"] == 100 * GIB


def test_the_buckets_are_private_versioned_encrypted_and_expire_what_they_should(plan: Plan) -> None:
    for part in ("data", "results"):
        prefix = f"archive-history-export-{part}"
        block = named(plan, f"{prefix}-public-access-block")
        assert all(block[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                              "restrictPublicBuckets"))  # fmt: skip
        assert named(plan, f"{prefix}-versioning")["versioningConfiguration"]["status"] == "Enabled"
        (rule,) = named(plan, f"{prefix}-encryption")["rules"]
        assert rule["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "aws:kms" and rule["bucketKeyEnabled"]
        statement = json.loads(named(plan, f"{prefix}-tls-only")["policy"])["Statement"][0]
        assert statement["Effect"] == "Deny" and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    (data_rule,) = named(plan, "archive-history-export-data-lifecycle")["rules"]
    assert data_rule["noncurrentVersionExpiration"]["noncurrentDays"] == 30 and "expiration" not in data_rule
    (results_rule,) = named(plan, "archive-history-export-results-lifecycle")["rules"]
    assert results_rule["expiration"]["days"] == 30


# ---- IAM: the job's role writes its prefix and nothing else ---------------------------------------------------------


def writer(plan: Plan, instance: str) -> dict[str, Any]:
    return json.loads(named(plan, f"{instance}-history-export-writer")["policy"])


def test_the_export_role_writes_only_its_own_prefix(plan: Plan) -> None:
    policy = writer(plan, "archive")
    data, results = buckets(plan, "archive")
    other_data, other_results = buckets(plan, "archivet")
    part = "mainnet/blocks/height_range=0000000000-0000009999/part.parquet"
    assert permits(policy, "s3:PutObject", f"arn:aws:s3:::{data}/{part}")
    refused = [
        ("s3:PutObject", f"arn:aws:s3:::{data}/testnet/blocks/part.parquet"),  # its bucket, another prefix
        ("s3:PutObject", f"arn:aws:s3:::{data}/part.parquet"),  # its bucket's root
        ("s3:PutObject", f"arn:aws:s3:::{other_data}/mainnet/blocks/part.parquet"),  # the other instance's bucket
        ("s3:PutObject", f"arn:aws:s3:::{results}/x.csv"),  # Athena's results
        ("s3:PutObject", f"arn:aws:s3:::{other_results}/x.csv"),
        ("s3:DeleteObject", f"arn:aws:s3:::{data}/{part}"),  # no delete at all
        ("s3:DeleteObjectVersion", f"arn:aws:s3:::{data}/{part}"),
        ("s3:GetObject", f"arn:aws:s3:::{other_data}/mainnet/_export/state.json"),  # no read elsewhere
        ("s3:GetObject", f"arn:aws:s3:::{results}/x.csv"),
        ("s3:PutBucketPolicy", f"arn:aws:s3:::{data}"),
        ("s3:PutLifecycleConfiguration", f"arn:aws:s3:::{data}"),
        ("glue:DeleteTable", "arn:aws:glue:us-east-1:123456789012:table/zbi_dev_archive/blocks"),
        ("glue:BatchCreatePartition", "arn:aws:glue:us-east-1:123456789012:table/zbi_dev_archive/blocks"),
    ]
    assert [(a, r) for a, r in refused if permits(policy, a, r)] == []
    assert permits(policy, "s3:ListBucket", f"arn:aws:s3:::{data}", {"s3:prefix": "mainnet/blocks/"})
    assert not permits(policy, "s3:ListBucket", f"arn:aws:s3:::{data}", {"s3:prefix": "testnet/"})
    # Its state object and the partition it extends are read back (zbi_export/store.py).
    assert permits(policy, "s3:GetObject", f"arn:aws:s3:::{data}/mainnet/_export/state.json")
    key = key_arn(plan, "archive")
    assert permits(policy, "kms:GenerateDataKey", key, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})
    assert not permits(policy, "kms:GenerateDataKey", key)  # only through S3
    other_key = key_arn(plan, "archivet")
    assert not permits(policy, "kms:Decrypt", other_key, {"kms:ViaService": "s3.us-east-1.amazonaws.com"})


def test_the_export_role_trusts_only_its_instances_job(plan: Plan) -> None:
    (statement,) = json.loads(named(plan, "archive-history-export-role")["assumeRolePolicy"])["Statement"]
    values = sorted(statement["Condition"]["StringEquals"].values())
    assert values == ["sts.amazonaws.com", "system:serviceaccount:zbi-archive:history-export"]
    assert trust_findings(json.loads(named(plan, "archive-history-export-role")["assumeRolePolicy"])) == []
    account = manifest(next(r for r in plan.kubernetes_objects() if r.name == "archive-history-export"
                            and r.type == "kubernetes:core/v1:ServiceAccount"))  # fmt: skip
    role_arn = account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
    assert role_arn.startswith("arn:aws:iam::123456789012:role/archive-history-export-role")
    assert account["automountServiceAccountToken"] is False


def test_the_analysers_find_nothing_in_the_export_policies(plan: Plan) -> None:
    for instance in ("archive", "archivet"):
        document = writer(plan, instance)
        assert escalation_findings(document) == []
        assert cloudsplaining_findings(document) == {}
        assert parliament_findings(document) == []


# ---- the CronJob ----------------------------------------------------------------------------------------------------


def cronjob(plan: Plan) -> dict[str, Any]:
    (job,) = [r for r in plan.of_type("kubernetes:batch/v1:CronJob") if r.name == "archive-history-export"]
    return manifest(job)


def test_the_job_is_hardened_and_never_runs_twice_at_once(plan: Plan) -> None:
    job = cronjob(plan)
    assert job["spec"]["concurrencyPolicy"] == "Forbid" and job["spec"]["schedule"] == "23 */6 * * *"
    assert job["spec"]["jobTemplate"]["spec"]["activeDeadlineSeconds"] == 300 * 60
    pod = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["automountServiceAccountToken"] is False and pod["serviceAccountName"] == "history-export"
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["readOnlyRootFilesystem"] is True and context["allowPrivilegeEscalation"] is False
    assert context["runAsUser"] >= 10000 and context["capabilities"] == {"drop": ["ALL"]}
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"},
                                      "limits": {"cpu": "2", "memory": "2Gi"}}  # fmt: skip
    assert container["image"] == f"{IMAGE['repository']}:{IMAGE['tag']}"
    assert "command" not in container  # the image's entrypoint is the program
    data, _ = buckets(plan, "archive")
    assert container["args"] == [
        "--rpc-url=http://zebrad-rpc.zbi-archive.svc.cluster.local:8232",
        "--rpc-cookie-file=/etc/zbi-export/rpc-user-password",
        f"--destination=s3://{data}/mainnet",
        "--network=mainnet",
        "--partition-blocks=10000",
        "--region=us-east-1",
    ]
    # The flags are the program's own: its parser accepts them as rendered.
    from zbi_export.cli import parser

    parsed = parser().parse_args(container["args"])
    assert parsed.destination == f"s3://{data}/mainnet" and parsed.partition_blocks == 10_000
    # The credential is a file from the instance's Secret, readable by the pod's group only; never a value here.
    (volume,) = pod["volumes"]
    assert volume["secret"] == {"secretName": "rpc-credentials", "defaultMode": 0o440,
                                "items": [{"key": "rpc-user-password", "path": "rpc-user-password"}]}  # fmt: skip
    assert pod["securityContext"]["fsGroup"] == context["runAsUser"] == 65532  # the Dockerfile's USER


def test_the_instance_secret_holds_the_jobs_credential_only_when_it_exports(plan: Plan) -> None:
    def secret(instance: str) -> dict[str, Any]:
        (found,) = [r for r in plan.of_type("kubernetes:core/v1:Secret") if r.name == f"{instance}-rpc-credentials"]
        return manifest(found)["stringData"]

    assert secret("archive")["rpc-user-password"] == "[secret]"  # a Pulumi secret: never plain in state or plan
    assert "rpc-user-password" not in secret("testnet")
    # The image runs as the uid the pod declares.
    dockerfile = (ROOT / "images" / "history-export" / "Dockerfile").read_text()
    assert "USER 65532:65532" in dockerfile


def test_the_program_passes_the_rpc_guard_with_the_file_zbi_mounts(tmp_path: Path) -> None:
    """The real RPC guard (nginx, its rendered config) in front of a stand-in node on loopback, and the export
    program's own RPC client reading the credential file as the job mounts it."""
    from tests.test_rpc_guard import PASSWORD, USER, Upstream, running_guard
    from zbi_export.rpc import NodeRpc, RpcError

    upstream = Upstream()
    with running_guard(tmp_path / "guard", upstream) as port:
        url = f"http://127.0.0.1:{port}/"
        assert NodeRpc(url, credential_file(USER, PASSWORD), attempts=1).call("getblockcount", []) == {"echo": []}
        with pytest.raises(RpcError, match="unauthorized"):
            NodeRpc(url, credential_file(USER, PASSWORD + "x"), attempts=1).call("getblockcount", [])
    assert len(upstream.received) == 1  # the refused call never reached the node


def test_the_job_reaches_the_nodes_rpc_and_https_only_and_nothing_reaches_it(plan: Plan) -> None:
    objects = [manifest(r) for r in plan.kubernetes_objects()]
    namespace = {"kubernetes.io/metadata.name": "zbi-archive"}

    def pod(component: str, name: str, ports: dict[str, int] | None = None) -> Pod:
        labels = {"app.kubernetes.io/instance": "archive", "app.kubernetes.io/component": component,
                  "app.kubernetes.io/name": name}  # fmt: skip
        return Pod("zbi-archive", labels, namespace, ports=ports or {}, name=name)

    job = pod("history-export", "history-export")
    node = pod("full-node", "zebrad", {"rpc": 8232})
    s3 = Pod(None, address="52.216.0.10")
    assert reachable(objects, job, node, 8232)
    assert reachable(objects, job, s3, 443)
    assert not reachable(objects, job, s3, 80)
    assert not reachable(objects, job, Pod(None, address="169.254.169.254"), 443)  # the node's credentials
    assert not reachable(objects, job, node, 8233)  # P2P is the node's business
    other = Pod("zbi-archivet", {"app.kubernetes.io/instance": "archivet", "app.kubernetes.io/component": "full-node"},
                {"kubernetes.io/metadata.name": "zbi-archivet"}, ports={"rpc": 18232})  # fmt: skip
    assert not reachable(objects, job, other, 18232)
    assert not reachable(objects, node, job, 8080)
    # Without the export the node's RPC stays closed to a pod with the job's labels in another instance.
    stranger = Pod("zbi-testnet", {"app.kubernetes.io/instance": "testnet",
                                   "app.kubernetes.io/component": "history-export"},
                   {"kubernetes.io/metadata.name": "zbi-testnet"})  # fmt: skip
    assert not reachable(objects, stranger, node, 8232)


# ---- config -----------------------------------------------------------------------------------------------------


def instance_config(export: dict[str, Any]) -> dict[str, Any]:
    return with_patch("zbi:instances", {"archive": {"network": "mainnet", "history": {"export": export}}})


@pytest.mark.parametrize(
    ("export", "field", "fix"),
    [
        ({"enabled": True}, "history.export", "images/history-export/Dockerfile"),
        ({"enabled": True, "image": {"repository": IMAGE["repository"]}}, "history.export", "image.tag"),
        ({"schedule": "every hour"}, "history.export.schedule", "five cron fields"),
        ({"schedule": "0 */6 * *"}, "history.export.schedule", "has 4 fields"),
        ({"schedule": "61 * * * *"}, "history.export.schedule", "outside 0-59"),
        ({"schedule": "0 0 * * MON"}, "history.export.schedule", "names like MON"),
        ({"schedule": "*/0 * * * *"}, "history.export.schedule", "step"),
        ({"scanLimitGib": 0}, "history.export.scanLimitGib", "1"),
        ({"scanLimitGib": 20000}, "history.export.scanLimitGib", "10240"),
        ({"noncurrentRetentionDays": 0}, "history.export.noncurrentRetentionDays", "1"),
        (
            {"resources": {"cpu": "1", "memory": "1Gi", "memoryLimit": "512Mi"}},
            "history.export.resources",
            "memoryLimit",
        ),
    ],
)
def test_bad_export_config_is_refused_naming_the_field_and_the_fix(
    export: dict[str, Any], field: str, fix: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_stack_config(instance_config(export))
    message = str(caught.value)
    assert f"zbi:instances.archive.{field}" in message and fix in message, message


def test_a_good_export_config_loads() -> None:
    config = load_stack_config(instance_config({"enabled": True, "image": IMAGE, "schedule": "5,35 1-3 * * 0-5"}))
    export = config.instances["archive"].history.export  # type: ignore[union-attr]
    assert export.schedule == "5,35 1-3 * * 0-5" and export.scan_limit_gib == 100


def test_cron_ranges_are_checked_field_by_field() -> None:
    assert cron_problem("0 0 1 1 7") is None
    assert "day of month" in (cron_problem("0 0 0 * *") or "")
    assert "backwards" in (cron_problem("0 5-1 * * *") or "")
    assert "month" in (cron_problem("0 0 1 13 *") or "")


def test_a_local_stack_refuses_the_export() -> None:
    local = {"zbi:role": "local", "zbi:instances": {"archive": {"network": "mainnet", "history": {
        "export": {"enabled": True, "image": IMAGE}}}}}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        load_stack_config(local)
    message = str(caught.value)
    assert "zbi:instances.archive.history.export" in message and "primary stack" in message
    # The same instance without the export is fine on a local stack.
    quiet = copy.deepcopy(local)
    quiet["zbi:instances"]["archive"]["history"]["export"]["enabled"] = False
    assert load_stack_config(quiet).instances["archive"].history is not None


def test_the_local_plan_creates_nothing_in_aws(plan_stack: PlanStack) -> None:
    history = {"network": "testnet", "history": {"export": {"enabled": False}}}
    local = plan_stack("local", merge={"zbi:instances": {"archive": history}})
    assert local.named("archive-namespace")  # the instance itself is there
    assert not [r for r in local.resources if r.type.startswith(("aws:", "eks:")) or "history-export" in r.name]


def test_bucket_names_that_s3_would_refuse_are_caught() -> None:
    assert bucket_name_problem("dev", "archive") is None
    assert "63" in (bucket_name_problem("production-eu", "a" * 30) or "")
    assert "lowercase" in (bucket_name_problem("dev_1", "archive") or "")


# ---- cost -------------------------------------------------------------------------------------------------------


def test_storage_and_scans_are_priced_per_exporting_instance(plan: Plan) -> None:
    from tests.test_cost import config_of

    config = config_of("dev", {"zbi:instances": INSTANCES})
    prices = load_prices(None)
    lines = [line for line in estimate(plan, config, prices=prices, assumptions=Assumptions()).lines
             if line.service in ("S3", "Athena")]  # fmt: skip
    assert {(line.service, line.owner): round(line.monthly_usd, 4) for line in lines} == {
        ("S3", "archive"): round(100 * 0.023, 4),
        ("Athena", "archive"): 5.0,
        ("S3", "archivet"): round(100 * 0.023, 4),
        ("Athena", "archivet"): 5.0,
    }
    assert any("at most 50 GiB a query" in line.item for line in lines if line.owner == "archive")
    more = estimate(plan, config, prices=prices, assumptions=Assumptions(export_stored_gib=2000, athena_tb_scanned=3))
    costs = {(line.service, line.owner): line.monthly_usd for line in more.lines}
    assert costs[("S3", "archive")] == pytest.approx(2000 * 0.023) and costs[("Athena", "archive")] == 15.0


def test_a_prices_file_without_the_export_prices_fails_only_a_stack_that_exports(
    plan: Plan, plan_stack: PlanStack
) -> None:
    from tests.test_cost import config_of

    prices = {k: v for k, v in load_prices(None).items() if k != "athenaTbScanned"}
    config = config_of("dev", {"zbi:instances": INSTANCES})
    with pytest.raises(ConfigError, match="athenaTbScanned is missing"):
        estimate(plan, config, prices=prices, assumptions=Assumptions())
    quiet = {"zbi:instances": {"testnet": {"history": None}}}
    plain = estimate(plan_stack("dev", merge=quiet), config_of("dev", quiet), prices=prices, assumptions=Assumptions())
    assert plain.lines and not [line for line in plain.lines if line.service in ("S3", "Athena")]


# ---- the role against the program's real S3 calls ---------------------------------------------------------------


def iam_request(method: str, target: str, bucket: str) -> tuple[str, str, dict[str, str]]:
    """An S3 REST request (path style) as IAM authorizes it: (action, resource ARN, condition context). S3's
    "Actions, resources, and condition keys" page maps each operation: HeadObject and GetObject need s3:GetObject,
    ListObjects(V2) and HeadBucket s3:ListBucket (with s3:prefix when listed by prefix), every step of a multipart
    upload s3:PutObject, AbortMultipartUpload its own action."""
    from urllib.parse import parse_qs, unquote, urlsplit

    parts = urlsplit(target)
    query = parse_qs(parts.query, keep_blank_values=True)
    path = unquote(parts.path).lstrip("/")
    name, _, key = path.partition("/")
    assert name == bucket, target
    if not key:
        context = {"s3:prefix": query["prefix"][0]} if "prefix" in query else {}
        if method in ("GET", "HEAD"):
            return "s3:ListBucket", f"arn:aws:s3:::{bucket}", context
        return f"s3:{method}Bucket", f"arn:aws:s3:::{bucket}", context
    resource = f"arn:aws:s3:::{bucket}/{key}"
    if method in ("GET", "HEAD"):
        return "s3:GetObject", resource, {}
    if method == "DELETE":
        return ("s3:AbortMultipartUpload" if "uploadId" in query else "s3:DeleteObject"), resource, {}
    return "s3:PutObject", resource, {}  # PUT, and POST of ?uploads / ?uploadId


def test_every_s3_call_the_export_program_makes_is_one_its_role_allows(tmp_path: Path) -> None:
    """zbi-export, as the CronJob runs it, against moto's S3 on loopback with every request recorded; each request,
    as IAM would authorize it, checked against the role's rendered policy. Two runs: the second reads back what the
    first wrote."""
    import logging
    import re

    import pyarrow.fs as pafs

    from tests.history_export_harness import FakeZebra, moto_s3, segment, serve_rpc
    from zbi_export import cli
    from zbi_infra.history_catalog import writer_policy

    bucket = "zbi-dev-archive-history-123456789012"
    records: list[str] = []

    class Recorder(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record.getMessage())

    werkzeug = logging.getLogger("werkzeug")
    with moto_s3() as endpoint:
        host = endpoint.removeprefix("http://")
        pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True).create_dir(bucket)
        recorder = Recorder()
        werkzeug.addHandler(recorder)
        werkzeug.setLevel(logging.INFO)
        try:
            blocks = segment("genesis")
            for tip in (102, 102):
                with serve_rpc(FakeZebra(blocks, tip=tip)) as url:
                    args = [f"--rpc-url={url}", f"--destination=s3://{bucket}/mainnet", "--network=mainnet",
                            "--partition-blocks=10000", "--region=us-east-1", f"--s3-endpoint={endpoint}",
                            f"--start-height={min(blocks)}", "--finality-depth=100"]  # fmt: skip
                    assert cli.main(args) == 0
        finally:
            werkzeug.removeHandler(recorder)
            werkzeug.setLevel(logging.WARNING)
    requests = [m.groups() for m in (re.search(r'"([A-Z]+) (\S+) HTTP/', r) for r in records) if m]
    assert requests, records
    policy = json.loads(
        writer_policy(
            bucket=bucket, prefix="mainnet/", key_arn="arn:aws:kms:us-east-1:123456789012:key/k", region="us-east-1"
        )
    )
    asked = [iam_request(method, target, bucket) for method, target in requests]
    refused = [
        (action, resource, context)
        for action, resource, context in asked
        if not permits(policy, action, resource, context)
    ]
    assert refused == []
    actions = {action for action, _, _ in asked}
    assert {"s3:PutObject", "s3:GetObject"} <= actions, actions  # it wrote, and read back its state


# ---- where the export does not run ------------------------------------------------------------------------------


def test_a_dr_stack_runs_the_instance_without_its_export() -> None:
    from zbi_infra.config.instance import InstanceConfig
    from zbi_infra.history_export_aws import history_exports

    archive = InstanceConfig.model_validate(ARCHIVE)
    plain = InstanceConfig.model_validate({"network": "testnet"})
    built, targets = history_exports(
        "dr",
        {"archive": archive, "testnet": plain},
        primary=False,
        region="us-west-2",
        oidc_provider_arn="arn:aws:iam::123456789012:oidc-provider/x",
        oidc_provider_url="https://x",
        tags={},
        opts=None,  # type: ignore[arg-type]  # nothing is registered in a DR stack
    )
    assert targets == {}
    history = built["archive"].history
    assert history is not None and history.export.enabled is False
    # Everything else about the instance is the primary's.
    assert built["archive"].model_copy(update={"history": archive.history}) == archive
    assert built["testnet"] is plain


def test_a_library_caller_must_say_where_an_enabled_export_writes(tmp_path: Path) -> None:
    from zbi_infra.plan.engine import evaluate
    from zbi_infra.plan.project import StackFile

    program = f"""
from zbi_infra import ZcashNode, ZcashNodeArgs
from zbi_infra.config.instance import InstanceConfig

ZcashNode("archive", ZcashNodeArgs(config=InstanceConfig.model_validate({ARCHIVE!r})))
"""
    (tmp_path / "__main__.py").write_text(program)
    with pytest.raises(Exception, match=r"history\.export\.enabled writes to an S3 bucket with an IRSA role\. Fix"):
        evaluate(StackFile(stack="example", config={}), program=tmp_path, project="example")


def test_a_catalog_the_chain_will_outgrow_within_a_year_is_warned_about(plan: Plan, plan_stack: PlanStack) -> None:
    assert not [w for w in plan.warnings if "catalogMaxHeight" in w]  # 10 million: years away
    # As of 2026-09-01 (the suite's day) Mainnet is near 3.47 million; a year on, near 3.9 million.
    short = {**ARCHIVE, "history": {"export": {**ARCHIVE["history"]["export"], "catalogMaxHeight": 3_800_000}}}
    warned = plan_stack("dev", merge={"zbi:instances": {"archive": short}})
    (warning,) = [w for w in warned.warnings if "catalogMaxHeight" in w]
    assert "zbi:instances.archive.history.export.catalogMaxHeight" in warning and "Fix: raise" in warning


def test_the_plan_summary_says_where_the_chain_lands_and_where_to_query_it(plan: Plan) -> None:
    from tests.test_cost import config_of
    from zbi_infra.plan.summary import summary

    config = config_of("dev", {"zbi:instances": INSTANCES})
    text = summary(plan, config, monthly_usd=None)
    data, _ = buckets(plan, "archive")
    assert f"history export: '23 */6 * * *' (UTC) to s3://{data}/mainnet/ as Parquet" in text
    assert "SQL: Athena workgroup zbi-dev-archive, at most 50 GiB scanned a query" in text
    assert "SQL: Athena workgroup zbi-dev-archivet, at most 100 GiB scanned a query" in text


# ---- alerts -----------------------------------------------------------------------------------------------------


def test_the_stale_threshold_follows_each_schedule() -> None:
    from datetime import timedelta

    from zbi_infra.monitoring.history_export_alerts import longest_gap

    assert longest_gap("23 */6 * * *") == timedelta(hours=6)
    assert longest_gap("5/20 * * * *") == timedelta(minutes=20)  # 5, 25, 45
    assert longest_gap("0 3 * * 1") == timedelta(days=7)
    assert longest_gap("0 0 1 * *") == timedelta(days=31)  # January to February
    assert longest_gap("0 0 1 * 1") == timedelta(days=7)  # both days restricted: the 1st or a Monday (Vixie cron)
    assert longest_gap("0 12 * * 0") == longest_gap("0 12 * * 7") == timedelta(days=7)  # 7 is Sunday too


def test_the_export_alerts_fire_when_they_should_and_not_otherwise(tmp_path: Path) -> None:
    import subprocess

    import yaml

    from tests.test_alerts import promtool
    from zbi_infra.config.instance import InstanceConfig
    from zbi_infra.monitoring.alerts import alert_rules

    instances = {
        "archive": InstanceConfig.model_validate(ARCHIVE),
        "testnet": InstanceConfig.model_validate({"network": "testnet"}),
    }
    groups = [g for g in alert_rules(instances, probed_endpoints=False) if g["name"] == "zbi-history-export"]
    rules = {r["alert"]: r for g in groups for r in g["rules"]}
    assert set(rules) == {"HistoryExportStale", "HistoryExportFailed"}
    # Every 6 hours, 300 minutes a run: stale after 2 x 6 h + 5 h = 17 h without a success.
    assert rules["HistoryExportStale"]["expr"].endswith("> 61200")
    success = 'kube_cronjob_status_last_successful_time{namespace="zbi-archive", cronjob="history-export"}'
    failed = 'kube_job_status_failed{namespace="zbi-archive", job_name="history-export-29412345"}'
    other = 'kube_job_status_failed{namespace="zbi-archive", job_name="other-29412345"}'
    stale_labels = {"namespace": "zbi-archive", "cronjob": "history-export", "severity": "warning", "team": "zbi"}
    failed_labels = {"namespace": "zbi-archive", "job_name": "history-export-29412345", "severity": "warning",
                     "team": "zbi"}  # fmt: skip

    def case(alert: str, at: str, series: list[tuple[str, str]], labels: dict[str, str] | None) -> dict[str, Any]:
        summary = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: (labels or {}).get(m.group(1), ""),
                         rules[alert]["annotations"]["summary"])  # fmt: skip
        expected = [] if labels is None else [{"exp_labels": labels, "exp_annotations": {"summary": summary}}]
        return {
            "interval": "1m",
            "input_series": [{"series": s, "values": v} for s, v in series],
            "alert_rule_test": [{"eval_time": at, "alertname": alert, "exp_alerts": expected}],
        }

    tests = [
        # Last success at time 0: at 18 h it is 18 h old, over 17 h for more than 15 minutes.
        case("HistoryExportStale", "18h", [(success, "0x1200")], stale_labels),
        # Last success at 2 h: 16 h old at 18 h, within the allowance.
        case("HistoryExportStale", "18h", [(success, "7200x1200")], None),
        # Just past 17 h, but not yet for 15 minutes.
        case("HistoryExportStale", "17h10m", [(success, "0x1200")], None),
        case("HistoryExportFailed", "5m", [(failed, "0 1x10")], failed_labels),
        case("HistoryExportFailed", "5m", [(failed, "0x10"), (other, "1x10")], None),
    ]
    (tmp_path / "rules.yml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    unit = tmp_path / "unit.yml"
    unit.write_text(yaml.safe_dump({"rule_files": ["rules.yml"], "tests": tests}, sort_keys=False))
    result = subprocess.run([promtool(), "test", "rules", str(unit)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # kube-state-metrics exports both series (its metric list, vendored).
    names = set(json.loads((ROOT / "tests/fixtures/upstream/kube-state-metrics/metrics.json").read_text())["metrics"])
    assert {"kube_cronjob_status_last_successful_time", "kube_job_status_failed"} <= names


def test_the_analysts_first_query_runs_on_what_the_job_writes(tmp_path: Path) -> None:
    """The first query of docs/history-export-aws.md, on three real NU5 blocks exported as the CronJob runs the
    program (moto's S3), read by DuckDB as Hive-partitioned Parquet (Athena's engine is Trino, not run here: this
    checks the names, types and partition column the query relies on, and its answer)."""
    import duckdb
    import pyarrow.fs as pafs

    from tests.history_export_harness import FakeZebra, moto_s3, segment, serve_rpc
    from zbi_export import cli
    from zbi_export.schema import TABLES
    from zbi_export.store import Store, s3_filesystem

    doc = (ROOT / "docs" / "history-export-aws.md").read_text()
    query = doc.split("## An analyst's first query", 1)[1].split("```sql\n", 1)[1].split("```", 1)[0]
    assert "'0002500000-0002509999'" in query
    query = query.replace("'0002500000-0002509999'", f"'{partition_value(1_687_106, 10_000)}'")
    bucket = "zbi-dev-analyst-history-123456789012"  # moto keeps buckets across servers in one process
    blocks = segment("nu5")
    with moto_s3() as endpoint:
        host = endpoint.removeprefix("http://")
        pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True).create_dir(bucket)
        with serve_rpc(FakeZebra(blocks, tip=max(blocks) + 100)) as url:
            args = [f"--rpc-url={url}", f"--destination=s3://{bucket}/mainnet", "--network=mainnet",
                    "--partition-blocks=10000", "--region=us-east-1", f"--s3-endpoint={endpoint}",
                    f"--start-height={min(blocks)}", "--finality-depth=100"]  # fmt: skip
            assert cli.main(args) == 0
        store = Store(s3_filesystem(endpoint, "us-east-1"), bucket, "mainnet")
        listing = store.fs.get_file_info(pafs.FileSelector(store.root, recursive=True))
        for info in (i for i in listing if i.type == pafs.FileType.File):
            local = tmp_path / info.path[len(store.root) + 1 :]
            local.parent.mkdir(parents=True, exist_ok=True)
            with store.fs.open_input_stream(info.path) as stream:
                local.write_bytes(stream.read())
    con = duckdb.connect()
    for table in TABLES:
        if (tmp_path / table).is_dir():
            con.execute(f"create view {table} as select * from read_parquet('{tmp_path}/{table}/*/*.parquet', "
                        "hive_partitioning = true)")  # fmt: skip
    rows = con.execute(query.replace(";", "")).fetchall()
    assert len(rows) >= 1 and sum(r[1] for r in rows) == 3  # the three blocks, by day
    transactions = con.execute("select sum(transaction_count) from blocks").fetchone()
    assert transactions is not None and sum(r[2] for r in rows) == transactions[0] > 3
