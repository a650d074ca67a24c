"""ZbiBackups: scheduled EBS snapshots of chain data, copied to the DR region under a DR-region key.

Data Lifecycle Manager rather than AWS Backup: DLM selects volumes by the tags the EBS CSI driver already puts on
them, copies across regions with its own encryption key and retention, keeps snapshots incremental, and needs no
vault, plan or selection resources. AWS Backup's extras (vault lock, cross-account, audit) protect data that cannot
be re-derived; chain data can, so what we buy is time, and DLM buys it with less machinery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from zbi_infra.iam import kms_key_use_policy, service_trust_policy
from zbi_infra.snapshots import POLICY_TAG, policy_target_tags

DLM_SERVICE_POLICY = "arn:aws:iam::aws:policy/service-role/AWSDataLifecycleManagerServiceRole"


@dataclass(frozen=True)
class ZbiBackupsArgs:
    stack: str
    source_kms_key_arn: pulumi.Input[str]
    # Where the snapshots are taken (DLM runs there) and where they are copied to.
    region: str
    dr_region: str
    interval_hours: int = 12
    retain_count: int = 14
    dr_retain_days: int = 7
    tags: dict[str, str] = field(default_factory=dict)


class ZbiBackups(pulumi.ComponentResource):
    dr_kms_key_arn: pulumi.Output[str]
    policy_id: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        args: ZbiBackupsArgs,
        *,
        dr_provider: aws.Provider,
        opts: pulumi.ResourceOptions | None = None,
    ):
        super().__init__("zbi:backup:ZbiBackups", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        # Lives in the DR region so that it outlives the primary region; losing it loses every copy.
        dr_key = aws.kms.Key(
            f"{name}-dr-key",
            description=f"zBI {args.stack}: chain-data snapshot copies in {args.dr_region}",
            enable_key_rotation=True,
            deletion_window_in_days=30,
            tags=args.tags,
            opts=pulumi.ResourceOptions(parent=self, provider=dr_provider, protect=True),
        )
        aws.kms.Alias(
            f"{name}-dr-key-alias",
            name=f"alias/zbi/{args.stack}/dr-snapshots",
            target_key_id=dr_key.id,
            opts=pulumi.ResourceOptions(parent=self, provider=dr_provider),
        )
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        role = aws.iam.Role(
            f"{name}-dlm-role",
            # Only DLM policies of this account and region may use the role (confused-deputy guidance).
            assume_role_policy=account.apply(
                lambda account_id: service_trust_policy(
                    "dlm.amazonaws.com",
                    source_account=account_id,
                    source_arn=f"arn:aws:dlm:{args.region}:{account_id}:policy/*",
                )
            ),
            tags=args.tags,
            opts=child,
        )
        aws.iam.RolePolicyAttachment(f"{name}-dlm-service", role=role.name, policy_arn=DLM_SERVICE_POLICY, opts=child)
        aws.iam.RolePolicy(
            f"{name}-dlm-kms",
            role=role.id,
            # CreateGrant: copying an encrypted snapshot re-encrypts it under the destination key through a grant.
            policy=pulumi.Output.all(args.source_kms_key_arn, dr_key.arn).apply(
                lambda arns: kms_key_use_policy(arns, grants_for_aws_resources=True)
            ),
            opts=child,
        )
        policy = aws.dlm.LifecyclePolicy(
            f"{name}-snapshots",
            description=f"zBI {args.stack} chain data every {args.interval_hours}h, copied to {args.dr_region}",
            execution_role_arn=role.arn,
            state="ENABLED",
            policy_details=aws.dlm.LifecyclePolicyPolicyDetailsArgs(
                resource_types=["VOLUME"],
                target_tags=policy_target_tags(args.stack),
                schedules=[
                    aws.dlm.LifecyclePolicyPolicyDetailsScheduleArgs(
                        name=f"every-{args.interval_hours}h",
                        create_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleCreateRuleArgs(
                            interval=args.interval_hours, interval_unit="HOURS"
                        ),
                        retain_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleRetainRuleArgs(count=args.retain_count),
                        # The volume's tags (instance, stack) travel with the snapshot and its copy: they are how
                        # the DR stack finds the newest snapshot of each instance.
                        copy_tags=True,
                        tags_to_add={POLICY_TAG: name},
                        cross_region_copy_rules=[
                            aws.dlm.LifecyclePolicyPolicyDetailsScheduleCrossRegionCopyRuleArgs(
                                target=args.dr_region,
                                encrypted=True,
                                cmk_arn=dr_key.arn,
                                copy_tags=True,
                                retain_rule=aws.dlm.LifecyclePolicyPolicyDetailsScheduleCrossRegionCopyRuleRetainRuleArgs(
                                    interval=args.dr_retain_days, interval_unit="DAYS"
                                ),
                            )
                        ],
                    )
                ],
            ),
            tags=args.tags,
            opts=child,
        )
        self.dr_kms_key_arn = dr_key.arn
        self.policy_id = policy.id
        self.register_outputs({"drKmsKeyArn": self.dr_kms_key_arn, "policyId": self.policy_id})
