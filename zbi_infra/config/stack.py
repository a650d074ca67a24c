"""One validated model of a stack, read from its `zbi:` config."""

from __future__ import annotations

import difflib
import json
import os
import re
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, Strict, StringConstraints, ValidationError, model_validator

from zbi_infra.config.base import StrictModel, Tags
from zbi_infra.config.control_plane import ControlPlaneConfig
from zbi_infra.config.errors import NAMESPACE, describe
from zbi_infra.config.history_scaling import stack_history_problems
from zbi_infra.config.instance import InstanceConfig, InstanceName
from zbi_infra.config.monitoring import MonitoringConfig
from zbi_infra.config.names import MAX_TAGS_PER_RESOURCE, ZBI_TAG_BUDGET, check_aws_tags, check_node_group_name
from zbi_infra.config.platform import ClusterConfig, PlatformConfig
from zbi_infra.config.public_tls import check_stack as check_public_tls
from zbi_infra.config.recovery import BackupConfig, DnsConfig, DrConfig
from zbi_infra.config.stack_file import read_stack_file
from zbi_infra.errors import ConfigError
from zbi_infra.regions import COMMERCIAL_REGIONS
from zbi_infra.release_check import instance_release_problems

# `zbi plan --as-of DATE` evaluates release support as of another day (what will this plan do next month?).
AS_OF_ENV = "ZBI_AS_OF"
# The instance name whose namespace (zbi-<name>) is the control plane's.
CONTROL_PLANE_INSTANCE = "control-plane"


class StackRole(StrEnum):
    PRIMARY = "primary"
    DR = "dr"
    LOCAL = "local"


class LocalConfig(StrictModel):
    """`zbi:local`: run on a Kubernetes cluster you already have (kind, k3s, minikube), no AWS."""

    # The kubeconfig context of the cluster to deploy to; None: the current context.
    kubeconfig_context: Annotated[str, StringConstraints(min_length=1, max_length=253)] | None = None
    # A Kubernetes object name (DNS subdomain, at most 253 characters).
    storage_class: (
        Annotated[
            str,
            StringConstraints(
                pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$", max_length=253
            ),
        ]
        | None
    ) = Field(default=None, description="StorageClass for chain data; unset means the cluster's default class")


class BudgetConfig(StrictModel):
    """`zbi:budget`: the stack's monthly budget in US dollars, against `zbi cost`'s reserved-instance estimate."""

    # US dollars a month; `zbi cost <stack> --check` fails when the estimate is above it.
    monthly_usd: Annotated[float, Strict()] = Field(gt=0, le=10_000_000)


class StackConfig(StrictModel):
    # primary: a platform with its own VPC and EKS cluster; dr: the pilot light in another region (zbi:dr); local: a
    # cluster you already have, no AWS (zbi:local).
    role: StackRole = StackRole.PRIMARY
    platform: PlatformConfig | None = None
    cluster: ClusterConfig | None = None
    local: LocalConfig | None = None
    # The Zcash instances of this stack, by name: each a full node, optionally a light-wallet server, and their
    # endpoints.
    instances: dict[InstanceName, InstanceConfig] = Field(default_factory=dict)
    backup: BackupConfig | None = None
    dns: DnsConfig | None = None
    dr: DrConfig | None = None
    # Prometheus, Alertmanager and the alert rules, in the stack's cluster.
    monitoring: MonitoringConfig = Field(default_factory=MonitoringConfig)
    # Alertmanager webhooks by severity, as Pulumi secrets (`pulumi config set --secret zbi:alertWebhookCritical`).
    alert_webhook_critical: str | None = None
    # The Alertmanager webhook for warning alerts, a Pulumi secret like alertWebhookCritical.
    alert_webhook_warning: str | None = None
    # AWS tags added to every resource of the stack.
    tags: Tags
    # What the platform may cost a month: `zbi cost --check` fails above it.
    budget: BudgetConfig | None = None
    # An in-cluster Pulumi Kubernetes Operator that keeps the listed stacks converged on the repository's branch.
    control_plane: ControlPlaneConfig | None = None

    @model_validator(mode="after")
    def _role_has_what_it_needs(self) -> StackConfig:
        role = self.role.value
        if self.role in (StackRole.PRIMARY, StackRole.DR):
            missing = [k for k in ("platform", "cluster") if getattr(self, k) is None]
            if missing:
                raise ValueError(
                    f"a {role} stack builds an AWS platform, but {', '.join(f'zbi:{k}' for k in missing)} "
                    f"is not set. Fix: add it, or set zbi:role to local to run on an existing Kubernetes cluster"
                )
            if self.local is not None:
                raise ValueError(f"zbi:local only applies to zbi:role local, this stack is {role}")
        else:
            extra = [k for k in ("platform", "cluster", "backup", "dns", "dr") if getattr(self, k) is not None]
            if extra:
                raise ValueError(
                    f"a local stack creates no AWS resources, but {', '.join(f'zbi:{k}' for k in extra)} is set. "
                    "Fix: remove it, or set zbi:role to primary"
                )
            if self.control_plane is not None and self.control_plane.enabled:
                raise ValueError(
                    "zbi:controlPlane runs `pulumi up` inside the cluster on an AWS role (IRSA), which a local stack "
                    "has neither. Fix: remove it, and reconcile the local stack with `pulumi up` from your machine"
                )
        if self.role is StackRole.DR:
            if self.dr is None:
                raise ValueError(
                    "a dr stack restores another stack, but zbi:dr is not set. "
                    "Fix: set zbi:dr.primaryStack to the primary stack's name (e.g. acme/zbi/dev)"
                )
            if self.instances:
                raise ValueError(
                    "a dr stack restores the primary's instances and declares none itself. Fix: remove zbi:instances"
                )
            if self.backup is not None:
                raise ValueError("zbi:backup belongs to the primary stack. Fix: remove it from the dr stack")
        elif self.dr is not None:
            raise ValueError(f"zbi:dr only applies to zbi:role dr, this stack is {role}. Fix: remove zbi:dr")
        same_region = self.backup and self.platform and self.backup.dr_region == self.platform.region
        if self.role is StackRole.PRIMARY and same_region:
            raise ValueError(
                "zbi:backup.drRegion equals zbi:platform.region: copies would fail with the region. "
                "Fix: choose another region, e.g. us-west-2"
            )
        self._instances_do_not_collide()
        for problem in stack_history_problems(
            self.instances, monitoring_enabled=self.monitoring.enabled, local=self.role is StackRole.LOCAL
        ):
            raise ValueError(problem)
        check_public_tls(self)
        self._names_fit_aws()
        if self.role is StackRole.LOCAL:
            self._nothing_aws_only_on_local()
        return self

    def _instances_do_not_collide(self) -> None:
        owners: dict[str, str] = {}
        for name, instance in self.instances.items():
            for hostname in instance.endpoints.hostnames:
                if hostname in owners:
                    raise ValueError(
                        f"zbi:instances.{name}.endpoints.hostnames: {hostname} is also {owners[hostname]}'s. "
                        "Fix: give each instance its own hostnames"
                    )
                owners[hostname] = name
        cluster_admins = {a.principal_arn: a.name for a in (self.cluster.admins if self.cluster else [])}
        administered: dict[str, str] = {}
        for name, instance in self.instances.items():
            for principal in instance.admins:
                if principal in cluster_admins:
                    raise ValueError(
                        f"zbi:instances.{name}.admins: {principal} is already cluster admin "
                        f"{cluster_admins[principal]!r}, and EKS allows one access entry per principal. "
                        "Fix: remove it from the instance's admins (cluster admins reach every namespace)"
                    )
                if principal in administered:
                    raise ValueError(
                        f"zbi:instances.{name}.admins: {principal} also administers {administered[principal]}, and "
                        "EKS allows one access entry per principal. Fix: give each instance's administrators a role "
                        "of their own"
                    )
                administered[principal] = name
        # The control plane's stacks live in namespace zbi-control-plane (zbi_infra.control_plane.STACKS_NAMESPACE),
        # the namespace an instance named control-plane would get: two Namespaces of one name cannot both apply.
        if self.control_plane is not None and self.control_plane.enabled and CONTROL_PLANE_INSTANCE in self.instances:
            raise ValueError(
                f"zbi:instances.{CONTROL_PLANE_INSTANCE}: its namespace zbi-{CONTROL_PLANE_INSTANCE} is the control "
                "plane's (zbi:controlPlane is enabled). Fix: choose another instance name"
            )

    def _names_fit_aws(self) -> None:
        if self.platform is None or self.cluster is None:
            return
        tag_count = len({**self.tags, **self.platform.tags})
        if tag_count > MAX_TAGS_PER_RESOURCE - ZBI_TAG_BUDGET:
            check_aws_tags({**self.tags, **self.platform.tags})
        zone_ids = self.platform.zone_ids or _longest_zone_ids(self.platform.region)
        for group in self.cluster.node_groups:
            check_node_group_name(self.cluster.name, group, zone_ids)
        for name, instance in self.instances.items():
            problem = instance.node.storage.gp3_problem()
            if problem:
                raise ValueError(f"zbi:instances.{name}.node.storage: {problem}")

    def _nothing_aws_only_on_local(self) -> None:
        for name, instance in self.instances.items():
            if instance.admins:
                raise ValueError(
                    f"zbi:instances.{name}.admins: instance administrators become EKS access entries, which a "
                    "local stack does not have. Fix: remove them, and grant access with your cluster's own RBAC"
                )
            ebs_only = {"iops", "throughput_mibps"} & instance.node.storage.model_fields_set
            if ebs_only:
                raise ValueError(
                    f"zbi:instances.{name}.node.storage: iops and throughputMibps provision gp3 volumes on EKS; a "
                    "local stack's storage class ignores them. Fix: remove them (sizeGib still applies)"
                )
            if instance.node.bootstrap_snapshot_id:
                raise ValueError(
                    f"zbi:instances.{name}.node.bootstrapSnapshotId: an EBS snapshot cannot be restored outside AWS. "
                    "Fix: remove it"
                )
            if instance.history is not None and instance.history.export.enabled:
                raise ValueError(
                    f"zbi:instances.{name}.history.export: the export writes to an S3 bucket, a Glue catalog and an "
                    "Athena workgroup that zBI creates in AWS, and a local stack creates nothing in AWS. Fix: set "
                    "history.export.enabled to false here, and export from a primary stack"
                )
        if self.monitoring.remote_write_url:
            raise ValueError(
                "zbi:monitoring.remoteWriteUrl: remote write to Amazon Managed Prometheus signs with an IAM role, "
                "which a local stack does not have. Fix: remove it"
            )

    def release_problems(self, today: date) -> tuple[list[str], list[str]]:
        """(errors, warnings) about pinned node releases as of `today` (zbi_infra/release_check.py)."""
        errors, warnings = [], []
        for name, instance in self.instances.items():
            problems = instance_release_problems(name, instance, today)
            errors += problems.errors
            warnings += problems.warnings
        return errors, warnings


def _longest_zone_ids(region: str) -> list[str]:
    from zbi_infra.regions import zone_ids

    return zone_ids(region) if region in COMMERCIAL_REGIONS else []


def plan_date() -> date:
    """Today, or the day `zbi plan --as-of` asked for."""
    text = os.environ.get(AS_OF_ENV)
    return date.fromisoformat(text) if text else date.today()


def _parse_value(value: Any) -> Any:
    """Pulumi hands structured config to programs as JSON text."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _misspelled_namespaces(raw: dict[str, Any]) -> list[str]:
    """`zbi.instances` or `zib:instances` would otherwise be dropped as another namespace's key."""
    problems = []
    known = sorted(f"{NAMESPACE}:{alias}" for alias in _top_level_keys())
    for key in raw:
        namespace, colon, _ = key.partition(":")
        looks_like_zbi = re.match(r"^z[a-z]{1,3}([.:_/-]|$)", key) and not key.startswith(f"{NAMESPACE}:")
        if looks_like_zbi and (not colon or difflib.get_close_matches(namespace, [NAMESPACE], 1, 0.6)):
            close = difflib.get_close_matches(key.replace(".", ":", 1), known, 1)
            fix = f"write {close[0]!r}" if close else f"use the {NAMESPACE}: namespace, e.g. {NAMESPACE}:instances"
            problems.append(f"{key}: not in the {NAMESPACE}: namespace, so zBI would ignore it. Fix: {fix}")
    return problems


def _top_level_keys() -> list[str]:
    return [f.alias or n for n, f in StackConfig.model_fields.items()]


SECRET_ONLY_KEYS = ("zbi:alertWebhookCritical", "zbi:alertWebhookWarning")


def load_stack_config(
    raw: dict[str, Any], *, today: date | None = None, secret_keys: set[str] | None = None
) -> StackConfig:
    """Validate every `zbi:` key of a stack. `raw` maps full config keys ("zbi:platform") to values; `secret_keys`
    are those the stack holds encrypted (None: not known, e.g. for another stack's file)."""
    misspelled = _misspelled_namespaces(raw)
    if misspelled:
        raise ConfigError(misspelled)
    if secret_keys is not None:
        plain = [key for key in SECRET_ONLY_KEYS if key in raw and key not in secret_keys]
        if plain:
            raise ConfigError(
                [
                    f"{key}: a webhook URL is a credential and must not be in git as plain text. "
                    f"Fix: pulumi config set --secret {key} <url>"
                    for key in plain
                ]
            )
    prefix = f"{NAMESPACE}:"
    zbi = {k[len(prefix) :]: _parse_value(v) for k, v in raw.items() if k.startswith(prefix)}
    try:
        # Stack files use the camelCase names only: `min_size` is an unknown key ("did you mean minSize?").
        config = StackConfig.model_validate(zbi, by_alias=True, by_name=False)
    except ValidationError as exc:
        raise describe(StackConfig, exc) from None
    errors, _ = config.release_problems(today or plan_date())
    if errors:
        raise ConfigError(errors)
    aws_region = raw.get("aws:region")
    primary_region = config.platform.region if config.platform and config.role is not StackRole.LOCAL else None
    if aws_region and primary_region and aws_region != primary_region:
        raise ConfigError(
            [
                f"aws:region: {aws_region} differs from zbi:platform.region {primary_region}. "
                "Fix: set both to the same region (zBI places every resource in zbi:platform.region)"
            ]
        )
    return config


def load_project_stack(project_root: Path, name: str, *, key: str, missing_fix: str, which: str = "") -> StackConfig:
    """Another stack of the project (a DR stack's primary, a stack the control plane reconciles), validated; errors
    name the config `key` that pointed at it."""
    path = project_root / f"Pulumi.{name}.yaml"
    if not path.is_file():
        raise ConfigError([f"{key}: no {path.name} in this project. Fix: {missing_fix}"])
    try:
        return load_stack_config(read_stack_file(name, path).config)
    except ConfigError as exc:
        raise ConfigError([f"{key}: {which}{path.name} is invalid: {p}" for p in exc.problems]) from None


def stack_config_values() -> dict[str, Any]:
    """Every config key of the running stack ("zbi:platform" -> value), as the Pulumi engine hands them to a program
    (the PULUMI_CONFIG environment variable, read through the SDK's public `get_config_env`)."""
    import pulumi

    return dict(pulumi.runtime.get_config_env())
