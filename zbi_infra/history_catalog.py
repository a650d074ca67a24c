"""Names, Glue table definitions and the export job's IAM policy for one history instance: pure functions, so the
Pulumi component (zbi_infra/history_export_aws.py) and the tests read the same values.

The tables come from the export program's own schema (zbi_export/schema.py), so the catalog and the Parquet files
cannot drift apart. Objects live at `s3://<bucket>/<network>/<table>/height_range=<first>-<last>/part-<n>.parquet`.
Athena finds partitions by projection, with no partition ever registered: `height_range` is an enum of every range
from height 0 up to `catalogMaxHeight`, spelled by the program's own `partition_value` (docs/history-export-aws.md
says why an enum).
"""

from __future__ import annotations

import json
import re
from typing import Any

from zbi_export.schema import PARTITION_KEY, glue_tables, partition_value
from zbi_infra.iam import POLICY_VERSION

# S3 bucket names: 3-63 characters (S3 user guide, "General purpose bucket naming rules").
MAX_BUCKET_NAME = 63
ACCOUNT_ID_DIGITS = 12
PARQUET_INPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat"
PARQUET_OUTPUT = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat"
PARQUET_SERDE = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe"
# What the job may do to objects under its prefix: read its state object and the partition it extends, write, and
# abandon a failed multipart upload. No delete: a partition is overwritten (a new version; the old one stays
# recoverable for history.export.noncurrentRetentionDays).
OBJECT_ACTIONS = ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"]


def bucket_names(stack: str, instance: str, account_id: str) -> tuple[str, str]:
    """(data bucket, Athena results bucket): bucket names are global, so each carries the stack, the instance and
    the account."""
    base = f"zbi-{stack}-{instance}".lower()
    return f"{base}-history-{account_id}", f"{base}-athena-{account_id}"


def bucket_name_problem(stack: str, instance: str) -> str | None:
    """Why the instance's bucket names would be invalid; None if they are valid."""
    longest = bucket_names(stack, instance, "0" * ACCOUNT_ID_DIGITS)[0]
    if len(longest) > MAX_BUCKET_NAME:
        return (
            f"its bucket name ({longest.replace('0' * ACCOUNT_ID_DIGITS, '<account>')}) has {len(longest)} "
            f"characters, S3 allows {MAX_BUCKET_NAME}. Fix: a shorter stack or instance name"
        )
    if not re.fullmatch(r"[a-z0-9][a-z0-9-]*[a-z0-9]", longest):
        return "S3 bucket names take lowercase letters, digits and hyphens. Fix: rename the stack"
    return None


def database_name(stack: str, instance: str) -> str:
    """Athena reads lowercase letters, digits and underscores in database names without quoting."""
    return re.sub(r"[^a-z0-9_]", "_", f"zbi_{stack}_{instance}".lower())


def data_prefix(network: str) -> str:
    """The key prefix the job writes, and nothing outside it."""
    return f"{network}/"


def projected_ranges(partition_blocks: int, max_height: int) -> str:
    """Every `height_range` from height 0 to `max_height`, comma-separated: the enum Athena projects."""
    return ",".join(partition_value(first, partition_blocks) for first in range(0, max_height, partition_blocks))


def table_definitions(bucket: str, prefix: str, partition_blocks: int, max_height: int) -> dict[str, dict[str, Any]]:
    """Per table: Glue's description, columns, partition keys, S3 location, formats and parameters."""
    ranges = projected_ranges(partition_blocks, max_height)
    tables = {}
    for name, table in glue_tables().items():
        location = f"s3://{bucket}/{prefix}{name}/"
        tables[name] = {
            **table,
            "location": location,
            "input_format": PARQUET_INPUT,
            "output_format": PARQUET_OUTPUT,
            "serde": PARQUET_SERDE,
            "parameters": {
                # EXTERNAL: dropping the table never deletes the data; classification tells Athena the format.
                "EXTERNAL": "TRUE",
                "classification": "parquet",
                "projection.enabled": "true",
                f"projection.{PARTITION_KEY}.type": "enum",
                f"projection.{PARTITION_KEY}.values": ranges,
                "storage.location.template": f"{location}{PARTITION_KEY}=${{{PARTITION_KEY}}}/",
            },
        }
    return tables


def writer_policy(*, bucket: str, prefix: str, key_arn: str, region: str) -> str:
    """The export job's permissions: read and write objects under `prefix` of its bucket only, list only that prefix,
    and use its key only through S3."""
    return json.dumps(
        {
            "Version": POLICY_VERSION,
            "Statement": [
                {
                    "Sid": "ReadAndWriteItsPrefix",
                    "Effect": "Allow",
                    "Action": OBJECT_ACTIONS,
                    "Resource": f"arn:aws:s3:::{bucket}/{prefix}*",
                },
                {
                    "Sid": "ListItsPrefix",
                    "Effect": "Allow",
                    "Action": "s3:ListBucket",
                    "Resource": f"arn:aws:s3:::{bucket}",
                    "Condition": {"StringLike": {"s3:prefix": [f"{prefix}*"]}},
                },
                {
                    "Sid": "EncryptThroughS3",
                    "Effect": "Allow",
                    # GenerateDataKey to write (SSE-KMS with a bucket key); Decrypt to read and for multipart uploads.
                    "Action": ["kms:GenerateDataKey", "kms:Decrypt"],
                    "Resource": key_arn,
                    "Condition": {"StringEquals": {"kms:ViaService": f"s3.{region}.amazonaws.com"}},
                },
            ],
        }
    )


def deny_insecure_transport(bucket: str) -> str:
    """A bucket policy that refuses every request not made over TLS (S3 user guide, "aws:SecureTransport")."""
    return json.dumps(
        {
            "Version": POLICY_VERSION,
            "Statement": [
                {
                    "Sid": "TlsOnly",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
