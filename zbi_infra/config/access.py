"""`access/<instance>.yaml`: the instance administrator's file. Which JSON-RPC and gRPC methods the instance exposes,
whether anonymous clients get a narrower, rate-limited profile, and the end users: each a name, the SHA-256 of their
key (never the key), an optional expiry, optional narrower method sets and a rate limit. It holds no secret.

Method names are checked against the upstream sources at the pinned tags (zebra-rpc's `#[method(name = …)]`,
lightwalletd's `service.proto`), copied into `zbi_infra/data/` by tools/refresh_upstream.py.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import Field, StringConstraints, ValidationError, field_validator, model_validator

from zbi_infra.config.base import StrictInt, StrictModel, listed_twice
from zbi_infra.config.errors import describe
from zbi_infra.errors import ConfigError

ACCESS_DIR = "access"
ACCESS_FILE = "access file"
# JSON-RPC methods no access file can expose: they change the node's state or peers, mine, or reveal the operator's
# network (peer addresses, bans). Every `z_` method is refused too: in zcashd they are the wallet's, and Zebra's few
# read-only ones have equivalents a client can use instead (`validateaddress`, gRPC `GetTreeState`/`GetSubtreeRoots`).
NEVER_EXPOSED = frozenset(
    {
        "addnode",
        "clearbanned",
        "disconnectnode",
        "generate",
        "generatetoaddress",
        "getaddednodeinfo",
        "getblocktemplate",
        "getpeerinfo",
        "invalidateblock",
        "listbanned",
        "prioritisetransaction",
        "reconsiderblock",
        "setban",
        "setgenerate",
        "stop",
        "submitblock",
    }
)
NEVER_EXPOSED_PREFIXES = ("z_",)
# The monitoring stack's user on every gateway: one read-only call, to measure availability as users see it.
PROBE_USER = "zbi-probe"
PROBE_JSON_RPC = ("getblockchaininfo",)
# How the gateway logs and counts callers without a key: no user may take the name.
ANONYMOUS_USER = "anonymous"


@cache
def zebrad_rpc_methods() -> frozenset[str]:
    text = resources.files("zbi_infra.data").joinpath("zebrad-rpc-methods.json").read_text()
    return frozenset(json.loads(text)["methods"])


@cache
def light_wallet_service() -> tuple[str, dict[str, dict[str, bool]]]:
    """(fully qualified service name, method -> streaming flags) of lightwalletd's CompactTxStreamer."""
    data = json.loads(resources.files("zbi_infra.data").joinpath("lightwalletd-grpc-methods.json").read_text())
    return data["service"], data["methods"]


def never_exposed(method: str) -> bool:
    return method in NEVER_EXPOSED or method.startswith(NEVER_EXPOSED_PREFIXES)


def exposable() -> set[str]:
    return {method for method in zebrad_rpc_methods() if not never_exposed(method)}


def _suggest(method: str, known: set[str]) -> str:
    close = difflib.get_close_matches(method, sorted(known), n=1)
    return f"did you mean {close[0]!r}?" if close else f"use one of {', '.join(sorted(known))}"


def _json_rpc_methods(methods: list[str]) -> list[str]:
    known = zebrad_rpc_methods()
    for method in methods:
        if never_exposed(method):
            raise ValueError(
                f"{method!r} is never exposed (it changes the node, mines, or reveals the operator's network or "
                "wallet). Fix: remove it"
            )
        if method not in known:
            raise ValueError(f"{method!r} is not a zebrad JSON-RPC method. Fix: {_suggest(method, exposable())}")
    return _listed_once(methods)


def _listed_once(methods: list[str]) -> list[str]:
    if twice := listed_twice(methods):
        raise ValueError(f"{', '.join(twice)} listed twice. Fix: list each method once")
    return methods


def _grpc_methods(methods: list[str]) -> list[str]:
    service, known = light_wallet_service()
    for method in methods:
        if method not in known:
            raise ValueError(f"{method!r} is not a method of {service}. Fix: {_suggest(method, set(known))}")
    return _listed_once(methods)


UserName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")]
KeyHash = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class RateLimit(StrictModel):
    requests_per_second: StrictInt = Field(default=10, ge=1, le=100_000)
    # Requests allowed at once above the steady rate; 0 means twice the rate.
    burst: StrictInt = Field(default=0, ge=0, le=1_000_000)
    # Calls one JSON-RPC batch may carry (each counts against the rate); None: the gateway's default, 100. Never
    # more than the burst. Like the rate, a limit of each gateway replica.
    max_batch: StrictInt | None = Field(default=None, ge=1, le=10_000)

    def effective_burst(self) -> int:
        return self.burst or 2 * self.requests_per_second


class MethodSet(StrictModel):
    methods: list[str] = Field(default_factory=list)


class JsonRpcMethods(MethodSet):
    @field_validator("methods")
    @classmethod
    def _known_and_exposable(cls, methods: list[str]) -> list[str]:
        return _json_rpc_methods(methods)


class GrpcMethods(MethodSet):
    @field_validator("methods")
    @classmethod
    def _known(cls, methods: list[str]) -> list[str]:
        return _grpc_methods(methods)


class AnonymousProfile(StrictModel):
    """What clients without a key may call: a public light-wallet server's wallets."""

    json_rpc: list[str] = Field(default_factory=list)
    grpc: list[str] = Field(default_factory=list)
    rate_limit: RateLimit = Field(default_factory=lambda: RateLimit(requests_per_second=5))


class EndUser(StrictModel):
    name: UserName
    key_sha256: KeyHash
    expires: date | None = None
    # None: every method the instance exposes.
    json_rpc: list[str] | None = None
    grpc: list[str] | None = None
    rate_limit: RateLimit = Field(default_factory=RateLimit)

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, name: str) -> str:
        if name == PROBE_USER:
            raise ValueError(f"{PROBE_USER} is the monitoring probe's own user. Fix: choose another name")
        if name == ANONYMOUS_USER:
            raise ValueError(
                f"{ANONYMOUS_USER} names callers without a key in logs and metrics. Fix: choose another name"
            )
        return name

    def active_on(self, day: date) -> bool:
        return self.expires is None or day < self.expires


class AccessFile(StrictModel):
    json_rpc: JsonRpcMethods = Field(default_factory=JsonRpcMethods)
    grpc: GrpcMethods = Field(default_factory=GrpcMethods)
    anonymous: AnonymousProfile | None = None
    users: list[EndUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _narrower_than_the_instance(self) -> AccessFile:
        exposed = {"jsonRpc": set(self.json_rpc.methods), "grpc": set(self.grpc.methods)}
        profiles: list[tuple[str, Any]] = [("anonymous", self.anonymous)] if self.anonymous else []
        profiles += [(f"users[{i}]", user) for i, user in enumerate(self.users)]
        for where, profile in profiles:
            refused = sorted(m for m in profile.json_rpc or [] if never_exposed(m))
            if refused:
                raise ValueError(f"{where}.jsonRpc: {', '.join(refused)} never exposed. Fix: remove them")
            for key, listed in (("jsonRpc", profile.json_rpc), ("grpc", profile.grpc)):
                extra = sorted(set(listed or []) - exposed[key])
                if extra:
                    raise ValueError(
                        f"{where}.{key}: {', '.join(extra)} not in {key}.methods, which the instance exposes. Fix: "
                        f"add them to {key}.methods or remove them here"
                    )
        if twice := listed_twice([user.name for user in self.users]):
            raise ValueError(f"users: {', '.join(twice)} listed twice. Fix: one entry per user")
        if listed_twice([user.key_sha256 for user in self.users]):
            raise ValueError("users: two users share a key. Fix: give each user its own key (zbi access create-key)")
        return self

    def user(self, name: str) -> EndUser | None:
        return next((user for user in self.users if user.name == name), None)

    def allowed(self, user: EndUser | None) -> tuple[list[str], list[str]]:
        """(JSON-RPC methods, gRPC methods) a user may call; `None` is the anonymous profile."""
        if user is None:
            profile = self.anonymous
            return (list(profile.json_rpc), list(profile.grpc)) if profile else ([], [])
        json_rpc = self.json_rpc.methods if user.json_rpc is None else user.json_rpc
        grpc = self.grpc.methods if user.grpc is None else user.grpc
        return list(json_rpc), list(grpc)


def parse_access(document: object, source: str) -> AccessFile:
    """Validate an access file's parsed YAML: every error names the key in `source` and the fix."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            [f"{source}: the file must be a mapping of keys to values (jsonRpc, grpc, users, …)"], what=ACCESS_FILE
        )
    try:
        return AccessFile.model_validate(document)
    except ValidationError as exc:
        raise describe(AccessFile, exc, prefix=f"{source}: ", where=source, what=ACCESS_FILE) from None


def read_access_file(path: Path) -> AccessFile:
    if not path.is_file():
        raise ConfigError(
            [f"{path}: no such access file. Fix: create it (see the README's access section)"], what=ACCESS_FILE
        )
    try:
        document = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        problem = f"{path}: not valid YAML ({str(exc).splitlines()[0]}). Fix: correct the syntax"
        raise ConfigError([problem], what=ACCESS_FILE) from None
    return parse_access(document, str(path))


def instance_access_files(root: Path, instances: Iterable[str]) -> dict[str, AccessFile]:
    """The access file of each instance that has one (`<root>/access/<instance>.yaml`), validated: a stack program
    reads them before registering anything, so a bad file deploys nothing."""
    found = {}
    problems = []
    for name in instances:
        path = root / ACCESS_DIR / f"{name}.yaml"
        if not path.exists():
            continue
        try:
            found[name] = read_access_file(path)
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems, what=ACCESS_FILE)
    return found
