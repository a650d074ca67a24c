"""The history export against the real things on loopback: every S3 request zbi-export makes is one the role allows
(moto), the program passes the real RPC guard with the file the job mounts (nginx), the docs' first query runs on
what the job writes (DuckDB), and the export alerts fire when they should (promtool)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT
from tests.test_history_export_aws import ARCHIVE, permits
from zbi_export.schema import partition_value
from zbi_infra.node.history_export_job import credential_file


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

    from tests.alert_harness import promtool
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
