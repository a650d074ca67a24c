"""The zBI Pulumi program: one project, and each stack's `zbi:role` says what its ZbiPlatform builds.

Configuration is validated in full before anything is registered, so a bad stack file deploys nothing.
"""

from pathlib import Path

import pulumi

from zbi_infra import StackRole, ZbiPlatform, ZbiPlatformArgs, load_stack_config, stack_config_values
from zbi_infra.config.access import declared_instance_names, instance_access_files
from zbi_infra.control_plane import reconciled_stack_configs
from zbi_infra.recovery import primary_config

config = load_stack_config(stack_config_values(), secret_keys=set(pulumi.runtime.get_config_secret_keys_env()))
# Release warnings (end of support near, release facts not checked) come from each ZcashNode (release_check.py).

project_dir = Path(__file__).resolve().parent.parent
primary = dr_key = None
if config.role is StackRole.DR:
    assert config.dr is not None
    primary = primary_config(config, project_dir)
    reference = pulumi.StackReference(config.dr.primary_stack)
    dr_key = reference.get_output("disasterRecovery").apply(lambda d: (d or {}).get("drKmsKeyArn", ""))

# Each instance with an access file (access/<instance>.yaml) gets its access gateway; a DR stack's are its primary's.
# A file in access/ that names no instance of the project is refused: it would silently leave an instance ungated.
access = instance_access_files(
    project_dir, (primary or config).instances, declared=declared_instance_names(project_dir)
)

# The stacks an in-cluster control plane keeps converged (zbi:controlPlane), validated from their stack files.
reconciled = reconciled_stack_configs(config, pulumi.get_stack(), project_dir)

platform = ZbiPlatform(
    pulumi.get_stack(),
    ZbiPlatformArgs(
        config=config,
        primary=primary,
        primary_dr_key_arn=dr_key,
        access=access,
        reconciled_stacks=reconciled,
    ),
)

if platform.vpc is not None and platform.cluster is not None:
    pulumi.export("region", platform.region)
    pulumi.export("zoneIds", platform.vpc.zone_ids)
    pulumi.export("availabilityZones", platform.vpc.availability_zones)
    pulumi.export("vpcId", platform.vpc.vpc_id)
    pulumi.export("privateSubnetIds", platform.vpc.private_subnet_ids)
    pulumi.export("publicSubnetIds", platform.vpc.public_subnet_ids)
    pulumi.export("clusterName", platform.cluster.cluster_name)
    pulumi.export("kubeconfig", platform.cluster.kubeconfig)
    pulumi.export("oidcProviderArn", platform.cluster.oidc_provider_arn)
    pulumi.export("nodeRoleArn", platform.cluster.node_role_arn)
if platform.disaster_recovery is not None:
    pulumi.export("disasterRecovery", platform.disaster_recovery)
if config.dr is not None:
    pulumi.export("activated", config.dr.activate)
    pulumi.export("primaryStack", config.dr.primary_stack)
    pulumi.export("restoredFrom", platform.restored_from)
if platform.nodes:
    # Instance -> its CA certificate: `pulumi stack output caCertPems --json | jq -r .<instance>`.
    pulumi.export("caCertPems", platform.ca_cert_pems)
    pulumi.export(
        "instances",
        {
            n: {"namespace": z.namespace, "grpc": z.grpc_endpoint, "gateway": z.gateway_endpoint}
            for n, z in platform.nodes.items()
        },
    )
