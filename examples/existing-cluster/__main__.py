"""Use zBI as a library: one mainnet Zebra + lightwalletd instance on the cluster of your current kubeconfig.

pulumi stack init mainnet && pulumi config set context my-cluster && pulumi up

Mainnet runs only a Zebra release whose end of support zBI knows (docs/releases.md): one in zBI's release table, or
a newer one whose release data you give here, read from its end_of_support.rs at the tag:
    pulumi config set zebradTag 6.4.0
    pulumi config set --path release.estimatedReleaseHeight <ESTIMATED_RELEASE_HEIGHT>
    pulumi config set --path release.released <the tag's date, YYYY-MM-DD>
    pulumi config set --path release.source https://github.com/ZcashFoundation/zebra/blob/v6.4.0/zebrad/src/...
"""

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import InstanceConfig, ZbiCertificateAuthority, ZcashNode, ZcashNodeArgs

config = pulumi.Config()
provider = k8s.Provider("cluster", context=config.get("context"))

node_config: dict = {"replicas": 2, "storage": {"sizeGib": 500}}
if config.get("zebradTag"):
    node_config["image"] = {"tag": config.get("zebradTag")}
if config.get_object("release"):
    node_config["release"] = config.get_object("release")
# Validated like a stack file: a typo here fails before anything is created, and ZcashNode refuses a release the
# stack file would refuse (unknown on Mainnet, or past its end of support).
instance = InstanceConfig.model_validate(
    {
        "network": config.get("network") or "mainnet",
        "node": node_config,
        "lightwallet": {"kind": "lightwalletd", "minReplicas": 2, "maxReplicas": 4},
        "endpoints": {"publicGrpc": True, "hostnames": ["lwd.example.org"]},
    }
)
node = ZcashNode(
    "mainnet",
    ZcashNodeArgs(
        config=instance,
        storage_class_name=config.get("storageClass"),
        certificate_authority=ZbiCertificateAuthority("example-ca"),
    ),
    opts=pulumi.ResourceOptions(providers={"kubernetes": provider}),
)
pulumi.export("grpc", node.grpc_endpoint)
pulumi.export("namespace", node.namespace)
