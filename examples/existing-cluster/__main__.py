"""Use zBI as a library: one mainnet Zebra + lightwalletd instance on the cluster of your current kubeconfig.

pulumi stack init mainnet && pulumi config set context my-cluster && pulumi up
"""

import pulumi
import pulumi_kubernetes as k8s

from zbi_infra import InstanceConfig, ZbiCertificateAuthority, ZcashNode, ZcashNodeArgs

config = pulumi.Config()
provider = k8s.Provider("cluster", context=config.get("context"))

# Validated like a stack file: a typo here fails before anything is created.
instance = InstanceConfig.model_validate(
    {
        "network": "mainnet",
        "node": {"replicas": 2, "storage": {"sizeGib": 500}},
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
