"""Zakura's zcashd-compatibility mode: a zcashd P2P sidecar in the zakurad pod, peer-pinned to it.

Upstream (zakura-core/zakura v1.2.0, docs/zcashd-compat.md): Zakura faces the network; zcashd makes one outbound
peer connection to Zakura's legacy P2P listener and listens for nothing. zBI runs the sidecar itself (Zakura's
"externally managed" variant, `manage_zcashd = false`) as a second container of each zakurad pod, with exactly the
arguments Zakura's own supervisor would pass (crates/zakurad/src/components/zcashd_compat/supervisor.rs):
`-datadir -[testnet] -printtoconsole <extra> -allowdeprecated… -connect -listen=0 -dnsseed=0 -listenonion=0
-discover=0`. The image is Zakura's `runtime-zcashd-compat` build target, published as
`zakuracore/zakura:zcashd-compat-<version>` (docker/Dockerfile: the runtime image plus /usr/local/bin/zcashd, the
valargroup/zcashd sidecar build pinned by SHA-256 in crates/zakurad/zcashd-compat-manifest.json).

zBI's choices: the sidecar's JSON-RPC binds inside the pod only (`-rpcallowip=127.0.0.1`, no Service, no
NetworkPolicy port): nothing outside the pod can call it, unless the instance has an access gateway, which then
serves it at /zcashd with zcashd's method classes (zbi_infra/config/zcashd_methods.py): zcashd then admits any
address that holds the node's credentials (`-rpcuser`/`-rpcpassword`), and the NetworkPolicies admit the gateway's
pods only. Its wallet is off (`-disablewallet`,
`-allowdeprecated=none`) unless the instance administrator of a private instance turns it on
(`node.zcashdCompat.wallet`), which keeps Zakura's default set of legacy wallet features.
"""

from __future__ import annotations

from zbi_infra.config.instance import Network
from zbi_infra.render.zakurad import DATA_DIR

BINARY = "/usr/local/bin/zcashd"
# Zakura's default zcashd datadir is a subdirectory of its state cache dir: on the same volume here.
ZCASHD_DATADIR = f"{DATA_DIR}/zcashd"
# zakurad holds the network's RPC port in the same pod: the sidecar listens on its own.
RPC_PORT = 8252
# supervisor.rs WALLET_DEPRECATED_FEATURES (tests/fixtures/upstream/zakura/zcashd-compat.json).
WALLET_DEPRECATED_FEATURES = (
    "z_gettotalbalance",
    "fundrawtransaction",
    "keypoolrefill",
    "settxfee",
    "getnewaddress",
    "getrawchangeaddress",
    "z_getnewaddress",
    "z_getbalance",
    "z_listaddresses",
    "legacy_privacy",
    "wallettxvjoinsplit",
)


def image_tag(zakura_tag: str) -> str:
    return f"zcashd-compat-{zakura_tag}"


# The node's credentials, as the sidecar's environment names them (expanded by the kubelet, never in the spec).
CREDENTIAL_ENV = {"username": "ZCASHD_RPC_USER", "password": "ZCASHD_RPC_PASSWORD"}


def sidecar_args(network: Network, *, p2p_port: int, wallet: bool, behind_gateway: bool = False) -> list[str]:
    """zcashd's command line, in the order Zakura's supervisor builds it. `behind_gateway`: the access gateway
    forwards checked calls to it from its own pods, with the node's credentials."""
    args = [f"-datadir={ZCASHD_DATADIR}"]
    if network is Network.TESTNET:
        args.append("-testnet")
    args.append("-printtoconsole")
    # Extra arguments: RPC inside the pod only (bound on all addresses so the kubelet's TCP probe reaches it).
    args += ["-rpcbind=0.0.0.0", "-rpcallowip=127.0.0.1", f"-rpcport={RPC_PORT}"]
    if behind_gateway:
        # The gateway's pod addresses are not known in advance: the NetworkPolicy is the address rule, the
        # credentials the caller's.
        user, password = CREDENTIAL_ENV["username"], CREDENTIAL_ENV["password"]
        args += ["-rpcallowip=0.0.0.0/0", f"-rpcuser=$({user})", f"-rpcpassword=$({password})"]
    if wallet:
        args += [f"-allowdeprecated={feature}" for feature in WALLET_DEPRECATED_FEATURES]
    else:
        args += ["-disablewallet=1", "-allowdeprecated=none"]
    args += [f"-connect=127.0.0.1:{p2p_port}", "-listen=0", "-dnsseed=0", "-listenonion=0", "-discover=0"]
    return args
