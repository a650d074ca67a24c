// A zBI instance from a TypeScript program, on the cluster of your kubeconfig's current context.
//   pulumi package add ../../components        (or <repository git URL>/components): generates @pulumi/zbi
//   npm install && pulumi stack init dev && pulumi up
import * as k8s from "@pulumi/kubernetes";
import * as zbi from "@pulumi/zbi";

const cluster = new k8s.Provider("cluster", {});

const testnet = new zbi.ZcashNode(
    "testnet",
    {
        network: "testnet",
        node: { replicas: 2, storage: { sizeGib: 100 } },
        lightwallet: { kind: "lightwalletd", minReplicas: 2, maxReplicas: 4 },
        endpoints: { publicGrpc: true, hostnames: ["testnet.lwd.example.com"] },
    },
    { providers: { kubernetes: cluster } },
);

export const grpc = testnet.grpcEndpoint;
export const caCertPem = testnet.caCertPem;
