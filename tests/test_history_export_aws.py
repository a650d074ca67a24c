"""The history export on AWS: a history instance plans its bucket, catalog, workgroup, IRSA role and CronJob; the role
writes its own prefix and nothing else; the job is hardened and reaches only the node's RPC and HTTPS. Config and
cost: tests/test_history_export_config.py; against the real program, guard, S3 and promtool:
tests/test_history_export_live.py."""

from __future__ import annotations

import fnmatch
import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, PlanStack
from tests.iam_analysis import cloudsplaining_findings, escalation_findings, parliament_findings, trust_findings
from tests.netpol_model import Pod, reachable
from zbi_export.schema import PARTITION_KEY, glue_tables, partition_value
from zbi_infra.history_catalog import table_definitions
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
    # Each file of the partition (one per --file-blocks heights) lies directly in the projected folder.
    for file_first in (2_500_000, 2_501_000, 2_509_000):
        written = f"s3://{store.partition_path('blocks', value, file_first)}"
        assert written.startswith(projected) and "/" not in written.removeprefix(projected), written


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
