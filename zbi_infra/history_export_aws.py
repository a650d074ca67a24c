"""ZbiHistoryExport: where one history instance's export lands in AWS, and how an analyst queries it.

- a KMS key (yearly rotation) that encrypts both buckets and Athena's results;
- the data bucket: versioned, SSE-KMS with a bucket key, every kind of public access blocked, TLS only, objects owned
  by the bucket owner (no ACLs); overwritten Parquet stays recoverable for `noncurrentRetentionDays`;
- a Glue database with one table per exported table (zbi_infra/history_catalog.py, from zbi_export/schema.py),
  partitions found by Athena's partition projection (nothing to register);
- an Athena workgroup whose settings override the client's: results in its own bucket (expired after
  `queryResultRetentionDays`), encrypted with the key, and no query reading more than `scanLimitGib`;
- an IRSA role for the export job's service account that may write the instance's prefix of the data bucket and
  nothing else (history_catalog.writer_policy).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pulumi
import pulumi_aws as aws

from zbi_export.schema import glue_tables
from zbi_infra.config.history_export import HistoryExportConfig
from zbi_infra.config.instance import InstanceConfig, Network
from zbi_infra.config.stack import plan_date
from zbi_infra.errors import ConfigError
from zbi_infra.history_catalog import (
    bucket_name_problem,
    bucket_names,
    data_prefix,
    database_name,
    deny_insecure_transport,
    table_definitions,
    writer_policy,
)
from zbi_infra.iam import irsa_trust_policy
from zbi_infra.node.context import namespace_of
from zbi_infra.node.history_export_job import EXPORT_SERVICE_ACCOUNT, HistoryExportTarget
from zbi_infra.releases import chain_anchor

GIB = 2**30
# Multipart uploads the job abandoned (a killed pod) are billed until removed.
ABORT_INCOMPLETE_UPLOAD_DAYS = 7
ATHENA_ENGINE = "Athena engine version 3"


@dataclass(frozen=True)
class ZbiHistoryExportArgs:
    stack: str
    instance: str
    network: str
    config: HistoryExportConfig
    region: str
    oidc_provider_arn: pulumi.Input[str]
    oidc_provider_url: pulumi.Input[str]
    tags: dict[str, str] = field(default_factory=dict)


class ZbiHistoryExport(pulumi.ComponentResource):
    bucket: pulumi.Output[str]
    results_bucket: pulumi.Output[str]
    role_arn: pulumi.Output[str]
    database: str
    workgroup: pulumi.Output[str]
    prefix: str

    def __init__(self, name: str, args: ZbiHistoryExportArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("zbi:history:ZbiHistoryExport", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        config = args.config
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        names = account.apply(lambda a: bucket_names(args.stack, args.instance, a))
        key = aws.kms.Key(
            f"{name}-key",
            description=f"zBI {args.stack}/{args.instance}: the exported chain and its Athena results",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=child,
        )
        aws.kms.Alias(
            f"{name}-key-alias",
            name=f"alias/zbi/{args.stack}/{args.instance}/history",
            target_key_id=key.id,
            opts=child,
        )
        self.prefix = data_prefix(args.network)
        data = self._bucket(
            f"{name}-data",
            names.apply(lambda n: n[0]),
            key,
            [
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-overwritten-parquet",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=config.noncurrent_retention_days
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=ABORT_INCOMPLETE_UPLOAD_DAYS
                    ),
                )
            ],
            args.tags,
        )
        results = self._bucket(
            f"{name}-results",
            names.apply(lambda n: n[1]),
            key,
            [
                aws.s3.BucketLifecycleConfigurationRuleArgs(
                    id="expire-query-results",
                    status="Enabled",
                    filter=aws.s3.BucketLifecycleConfigurationRuleFilterArgs(prefix=""),
                    expiration=aws.s3.BucketLifecycleConfigurationRuleExpirationArgs(
                        days=config.query_result_retention_days
                    ),
                    noncurrent_version_expiration=aws.s3.BucketLifecycleConfigurationRuleNoncurrentVersionExpirationArgs(
                        noncurrent_days=1
                    ),
                    abort_incomplete_multipart_upload=aws.s3.BucketLifecycleConfigurationRuleAbortIncompleteMultipartUploadArgs(
                        days_after_initiation=ABORT_INCOMPLETE_UPLOAD_DAYS
                    ),
                )
            ],
            args.tags,
        )
        self.database = database_name(args.stack, args.instance)
        glue_database = aws.glue.CatalogDatabase(
            f"{name}-database",
            name=self.database,
            description=f"zBI {args.stack}/{args.instance}: the final {args.network} chain, exported as Parquet",
            opts=child,
        )
        prefix = self.prefix

        def definition_of(table: str) -> pulumi.Output[dict[str, Any]]:
            return data.bucket.apply(
                lambda bucket: table_definitions(bucket, prefix, config.partition_blocks, config.catalog_max_height)[
                    table
                ]
            )

        table_names = sorted(glue_tables())
        for table in table_names:
            definition = definition_of(table)
            aws.glue.CatalogTable(
                f"{name}-table-{table.replace('_', '-')}",
                name=table,
                database_name=glue_database.name,
                table_type="EXTERNAL_TABLE",
                description=definition.apply(lambda d: str(d["description"])),
                parameters=definition.apply(lambda d: d["parameters"]),
                partition_keys=definition.apply(
                    lambda d: [aws.glue.CatalogTablePartitionKeyArgs(**key) for key in d["partition_keys"]]
                ),
                storage_descriptor=definition.apply(
                    lambda d: aws.glue.CatalogTableStorageDescriptorArgs(
                        location=d["location"],
                        input_format=d["input_format"],
                        output_format=d["output_format"],
                        ser_de_info=aws.glue.CatalogTableStorageDescriptorSerDeInfoArgs(
                            serialization_library=d["serde"]
                        ),
                        columns=[aws.glue.CatalogTableStorageDescriptorColumnArgs(**c) for c in d["columns"]],
                    )
                ),
                opts=child,
            )
        workgroup = aws.athena.Workgroup(
            f"{name}-workgroup",
            name=f"zbi-{args.stack}-{args.instance}",
            description=f"Queries of {self.database}: at most {config.scan_limit_gib} GiB scanned per query",
            state="ENABLED",
            configuration=aws.athena.WorkgroupConfigurationArgs(
                # The workgroup's settings win over the client's: no query escapes the scan limit or the encryption.
                enforce_workgroup_configuration=True,
                publish_cloudwatch_metrics_enabled=True,
                bytes_scanned_cutoff_per_query=config.scan_limit_gib * GIB,
                engine_version=aws.athena.WorkgroupConfigurationEngineVersionArgs(
                    selected_engine_version=ATHENA_ENGINE
                ),
                result_configuration=aws.athena.WorkgroupConfigurationResultConfigurationArgs(
                    output_location=results.bucket.apply(lambda b: f"s3://{b}/"),
                    expected_bucket_owner=account,
                    encryption_configuration=aws.athena.WorkgroupConfigurationResultConfigurationEncryptionConfigurationArgs(
                        encryption_option="SSE_KMS", kms_key_arn=key.arn
                    ),
                ),
            ),
            tags=args.tags,
            opts=child,
        )
        service_account = f"system:serviceaccount:{namespace_of(args.instance)}:{EXPORT_SERVICE_ACCOUNT}"
        role = aws.iam.Role(
            f"{name}-role",
            assume_role_policy=pulumi.Output.all(args.oidc_provider_arn, args.oidc_provider_url).apply(
                lambda v: irsa_trust_policy(v[0], v[1], service_account)
            ),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-writer",
            role=role.id,
            policy=pulumi.Output.all(data.bucket, key.arn).apply(
                lambda v: writer_policy(bucket=v[0], prefix=self.prefix, key_arn=v[1], region=args.region)
            ),
            opts=child,
        )
        self.bucket = data.bucket
        self.results_bucket = results.bucket
        self.role_arn = role.arn
        self.workgroup = workgroup.name
        self.register_outputs(
            {"bucket": self.bucket, "database": self.database, "workgroup": self.workgroup, "roleArn": self.role_arn}
        )

    def target(self, region: str) -> HistoryExportTarget:
        """What the instance's export CronJob needs to know about its destination."""
        return HistoryExportTarget(bucket=self.bucket, prefix=self.prefix, region=region, role_arn=self.role_arn)

    def _bucket(
        self,
        name: str,
        bucket_name: pulumi.Output[str],
        key: aws.kms.Key,
        rules: list[aws.s3.BucketLifecycleConfigurationRuleArgs],
        tags: dict[str, str],
    ) -> aws.s3.Bucket:
        """A private, versioned, KMS-encrypted, TLS-only bucket with its lifecycle rules."""
        child = pulumi.ResourceOptions(parent=self)
        bucket = aws.s3.Bucket(name, bucket=bucket_name, tags=tags, opts=child)
        aws.s3.BucketPublicAccessBlock(
            f"{name}-public-access-block",
            bucket=bucket.bucket,
            block_public_acls=True,
            block_public_policy=True,
            ignore_public_acls=True,
            restrict_public_buckets=True,
            opts=child,
        )
        aws.s3.BucketOwnershipControls(
            f"{name}-ownership",
            bucket=bucket.bucket,
            rule=aws.s3.BucketOwnershipControlsRuleArgs(object_ownership="BucketOwnerEnforced"),
            opts=child,
        )
        versioning = aws.s3.BucketVersioning(
            f"{name}-versioning",
            bucket=bucket.bucket,
            versioning_configuration=aws.s3.BucketVersioningVersioningConfigurationArgs(status="Enabled"),
            opts=child,
        )
        aws.s3.BucketServerSideEncryptionConfiguration(
            f"{name}-encryption",
            bucket=bucket.bucket,
            rules=[
                aws.s3.BucketServerSideEncryptionConfigurationRuleArgs(
                    apply_server_side_encryption_by_default=aws.s3.BucketServerSideEncryptionConfigurationRuleApplyServerSideEncryptionByDefaultArgs(
                        sse_algorithm="aws:kms", kms_master_key_id=key.arn
                    ),
                    # One data key per bucket rather than per object: far fewer KMS requests (billed per 10,000).
                    bucket_key_enabled=True,
                )
            ],
            opts=child,
        )
        aws.s3.BucketPolicy(
            f"{name}-tls-only", bucket=bucket.bucket, policy=bucket.bucket.apply(deny_insecure_transport), opts=child
        )
        # A lifecycle rule about versions needs versioning switched on first.
        aws.s3.BucketLifecycleConfiguration(
            f"{name}-lifecycle",
            bucket=bucket.bucket,
            rules=rules,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[versioning]),
        )
        return bucket


def history_exports(
    stack: str,
    instances: dict[str, InstanceConfig],
    *,
    primary: bool,
    region: str,
    oidc_provider_arn: pulumi.Input[str],
    oidc_provider_url: pulumi.Input[str],
    tags: dict[str, str],
    opts: pulumi.ResourceOptions,
) -> tuple[dict[str, InstanceConfig], dict[str, HistoryExportTarget]]:
    """The instances as the platform builds them, and the export target of each that exports. Only a primary stack
    exports: a DR stack's instances run without their export (the primary's bucket is in the failed region), said
    in a warning."""
    built, targets = dict(instances), {}
    for name, instance in sorted(instances.items()):
        if instance.history is None or not instance.history.export.enabled:
            continue
        if not primary:
            pulumi.log.warn(
                f"instance {name}: history.export does not run in a DR stack; the primary's bucket keeps it"
            )
            history = instance.history.model_copy(update={"export": HistoryExportConfig()})
            built[name] = instance.model_copy(update={"history": history})
            continue
        problem = bucket_name_problem(stack, name)
        if problem:
            raise ConfigError([f"zbi:instances.{name}.history.export: {problem}"])
        catalog_warning = catalog_horizon_warning(name, instance)
        if catalog_warning:
            pulumi.log.warn(catalog_warning)
        export = ZbiHistoryExport(
            f"{name}-history-export",
            ZbiHistoryExportArgs(
                stack=stack,
                instance=name,
                network=instance.network.value,
                config=instance.history.export,
                region=region,
                oidc_provider_arn=oidc_provider_arn,
                oidc_provider_url=oidc_provider_url,
                tags=tags,
            ),
            opts=opts,
        )
        targets[name] = export.target(region)
    return built, targets


def catalog_horizon_warning(name: str, instance: InstanceConfig) -> str | None:
    """A year before Mainnet passes `catalogMaxHeight` (estimated from zBI's chain anchor at 1,152 blocks a day), say
    so: partitions above it exist in S3 but Athena does not project them. Test networks have no anchor here."""
    assert instance.history is not None
    limit = instance.history.export.catalog_max_height
    if instance.network is not Network.MAINNET:
        return None
    in_a_year = chain_anchor().height_on(plan_date() + timedelta(days=365))
    if in_a_year < limit:
        return None
    return (
        f"zbi:instances.{name}.history.export.catalogMaxHeight: Mainnet will be near height {in_a_year:,} a year from "
        f"now, and Athena projects no partition above {limit:,}. Fix: raise catalogMaxHeight"
    )
