"""`access/<instance>.yaml`: the instance administrator's file. Which JSON-RPC and gRPC methods the instance exposes,
whether anonymous clients get a narrower, rate-limited profile, and the end users: each a name, the SHA-256 of their
key (never the key), an optional expiry, optional narrower method sets and a rate limit. It holds no secret.

Method names are checked against the upstream sources at the pinned tags (zebra-rpc's `#[method(name = …)]`,
lightwalletd's `service.proto`), copied into `zbi_infra/data/` by tools/refresh_upstream.py.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
from datetime import date
from functools import cache
from importlib import resources
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, field_validator, model_validator

# Reading the files (and refusing the ones no instance uses) is access_files.py's; re-exported here, where callers
# have always imported them from.
from zbi_infra.config.access_files import ACCESS_DIR as ACCESS_DIR
from zbi_infra.config.access_files import ACCESS_FILE as ACCESS_FILE
from zbi_infra.config.access_files import ACCESS_SUFFIX as ACCESS_SUFFIX
from zbi_infra.config.access_files import check_for_instance as check_for_instance
from zbi_infra.config.access_files import declared_instance_names as declared_instance_names
from zbi_infra.config.access_files import instance_access_files as instance_access_files
from zbi_infra.config.access_files import parse_access as parse_access
from zbi_infra.config.access_files import parse_access_text as parse_access_text
from zbi_infra.config.access_files import read_access_document as read_access_document
from zbi_infra.config.access_files import read_access_file as read_access_file
from zbi_infra.config.base import StrictInt, StrictModel, listed_twice

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
# The exception: zebrad's two read-only z_ chain queries (zebra-rpc v6.3.0; docs/history-cache.md).
Z_CHAIN_QUERIES = frozenset({"z_gettreestate", "z_getsubtreesbyindex"})
# The monitoring stack's user on every gateway: one read-only call, to measure availability as users see it.
PROBE_USER = "zbi-probe"
PROBE_JSON_RPC = ("getblockchaininfo",)
# How the gateway logs and counts callers without a key: no user may take the name.
ANONYMOUS_USER = "anonymous"

# The largest batch an access file may allow (a profile's maxBatch); the gateway's rate meter keeps a batch's charges
# on one connection, up to this many.
MAX_BATCH_LIMIT = 10_000


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
    return method in NEVER_EXPOSED or (method.startswith(NEVER_EXPOSED_PREFIXES) and method not in Z_CHAIN_QUERIES)


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


def _narrower_list(where: str, key: str, listed: list[str] | None, exposed: set[str]) -> None:
    """A profile's own list: methods the instance exposes, each once."""
    if not listed:
        return
    if key == "jsonRpc" and (refused := sorted({m for m in listed if never_exposed(m)})):
        raise ValueError(f"{where}.jsonRpc: {', '.join(refused)} never exposed. Fix: remove them")
    if twice := listed_twice(listed):
        raise ValueError(f"{where}.{key}: {', '.join(twice)} listed twice. Fix: list each method once")
    if extra := sorted(set(listed) - exposed):
        raise ValueError(
            f"{where}.{key}: {', '.join(extra)} not in {key}.methods, which the instance exposes. Fix: "
            f"add them to {key}.methods or remove them here"
        )


def _grpc_methods(methods: list[str]) -> list[str]:
    service, known = light_wallet_service()
    for method in methods:
        if method not in known:
            raise ValueError(f"{method!r} is not a method of {service}. Fix: {_suggest(method, set(known))}")
    return _listed_once(methods)


USER_NAME_PATTERN = re.compile(r"[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?")
# The SHA-256 of no key at all: a gateway that hashed an empty password would match it.
EMPTY_KEY_SHA256 = hashlib.sha256(b"").hexdigest()


def user_name_problem(name: object) -> str | None:
    """Why `name` cannot be an end user's name, or None. One rule for the file and for `zbi access`'s argument:
    names are used exactly as written (no stripping), since the gateway compares them byte for byte."""
    if not isinstance(name, str):
        return f"{name!r} is not text. Fix: write the name as text (quote it)"
    if not USER_NAME_PATTERN.fullmatch(name):
        return (
            f"{name[:70]!r} is not a user name. Fix: use 1 to 64 lowercase letters, digits, '.', '_' or '-', "
            "starting and ending with a letter or digit (no spaces)"
        )
    try:
        EndUser._not_reserved(name)  # the model's own rule for reserved names, so the command cannot drift from it
    except ValueError as exc:
        return str(exc)
    return None


def _user_name(name: object) -> str:
    if problem := user_name_problem(name):
        raise ValueError(problem)
    assert isinstance(name, str)
    return name


def _key_hash(value: object) -> object:
    if value == EMPTY_KEY_SHA256:
        raise ValueError(
            "is the SHA-256 of an empty key, which would let a client in without a key. Fix: make a key with "
            "`zbi access create-key`"
        )
    return value


def _iso_date(value: object) -> object:
    """Expiry days as ISO dates (YYYY-MM-DD) only: `0` or a Unix time would be read as some day in 1970 or 2027."""
    if isinstance(value, date) or value is None:
        return value
    if isinstance(value, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a day of the calendar. Fix: write a real date, YYYY-MM-DD") from None
    raise ValueError(f"{str(value)[:40]!r} is not an ISO date. Fix: write the day the key stops working as YYYY-MM-DD")


UserName = Annotated[str, BeforeValidator(_user_name)]
KeyHash = Annotated[
    str, StringConstraints(pattern=r"^[0-9a-f]{64}$", strip_whitespace=False), BeforeValidator(_key_hash)
]
IsoDate = Annotated[date, BeforeValidator(_iso_date)]


class RateLimit(StrictModel):
    # The steady rate allowed, per gateway replica.
    requests_per_second: StrictInt = Field(default=10, ge=1, le=100_000)
    # Requests allowed at once above the steady rate; 0 means twice the rate.
    burst: StrictInt = Field(default=0, ge=0, le=1_000_000)
    # Calls one JSON-RPC batch may carry (each counts against the rate); None: the gateway's default, 100. Never
    # more than the burst. Like the rate, a limit of each gateway replica.
    max_batch: StrictInt | None = Field(default=None, ge=1, le=MAX_BATCH_LIMIT)

    def effective_burst(self) -> int:
        return self.burst or 2 * self.requests_per_second


class MethodSet(StrictModel):
    # Method names, each checked against the upstream service's own list (a misspelling gets "did you mean").
    methods: list[str] = Field(default_factory=list)


class JsonRpcMethods(MethodSet):
    @field_validator("methods")
    @classmethod
    def _known_and_exposable(cls, methods: list[str]) -> list[str]:
        return _json_rpc_methods(methods)


class ZcashdRpcMethods(MethodSet):
    @field_validator("methods")
    @classmethod
    def _known_and_exposable(cls, methods: list[str]) -> list[str]:
        from zbi_infra.config.zcashd_methods import checked_zcashd_methods

        return _listed_once(checked_zcashd_methods(methods))


class GrpcMethods(MethodSet):
    @field_validator("methods")
    @classmethod
    def _known(cls, methods: list[str]) -> list[str]:
        return _grpc_methods(methods)


class AnonymousProfile(StrictModel):
    """What clients without a key may call: a public light-wallet server's wallets."""

    # JSON-RPC methods callers without a key may call.
    json_rpc: list[str] = Field(default_factory=list)
    # gRPC methods callers without a key may call.
    grpc: list[str] = Field(default_factory=list)
    # The zcashd sidecar's JSON-RPC methods (path /zcashd) callers without a key may call; never wallet methods.
    zcashd_rpc: list[str] = Field(default_factory=list)
    # The rate limit for callers without a key (default 5/s).
    rate_limit: RateLimit = Field(default_factory=lambda: RateLimit(requests_per_second=5))


class EndUser(StrictModel):
    # The user's name, in logs and metrics.
    name: UserName
    # The SHA-256 of the user's key (`zbi access create-key` writes it; the key itself is never stored).
    key_sha256: KeyHash
    # The day the key expires (UTC dates, as the gateway counts them); omitted, it does not expire.
    expires: IsoDate | None = None
    # None: every method the instance exposes.
    json_rpc: list[str] | None = None
    # None: every gRPC method the instance exposes; else a narrower list.
    grpc: list[str] | None = None
    # None: every zcashd method the instance exposes except wallet methods, which a user gets only when this list
    # names them.
    zcashd_rpc: list[str] | None = None
    # The user's rate limit (default 10/s, burst twice the rate).
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
    # The full node's JSON-RPC methods the gateway exposes.
    json_rpc: JsonRpcMethods = Field(default_factory=JsonRpcMethods)
    # The light-wallet server's gRPC methods (CompactTxStreamer) the gateway exposes.
    grpc: GrpcMethods = Field(default_factory=GrpcMethods)
    # The zcashd sidecar's JSON-RPC methods (node.zcashdCompat) the gateway exposes at /zcashd (docs/zakura.md).
    zcashd_rpc: ZcashdRpcMethods = Field(default_factory=ZcashdRpcMethods)
    anonymous: AnonymousProfile | None = None
    # The end users with a key: each a name, the key's SHA-256, methods and a rate limit.
    users: list[EndUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _narrower_than_the_instance(self) -> AccessFile:
        exposed = {
            "jsonRpc": set(self.json_rpc.methods),
            "grpc": set(self.grpc.methods),
            "zcashdRpc": set(self.zcashd_rpc.methods),
        }
        profiles: list[tuple[str, Any]] = [("anonymous", self.anonymous)] if self.anonymous else []
        profiles += [(f"users[{i}]", user) for i, user in enumerate(self.users)]
        for where, profile in profiles:
            lists = (("jsonRpc", profile.json_rpc), ("grpc", profile.grpc), ("zcashdRpc", profile.zcashd_rpc))
            for key, listed in lists:
                _narrower_list(where, key, listed, exposed[key])
        if self.anonymous is not None:
            from zbi_infra.config.zcashd_methods import refuse_anonymous_wallet

            refuse_anonymous_wallet(self.anonymous.zcashd_rpc)
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

    def allowed_zcashd(self, user: EndUser | None) -> list[str]:
        """The zcashd methods a user may call (`None`: anonymous): wallet methods only if the user's list names them."""
        from zbi_infra.config.zcashd_methods import allowed_zcashd

        return allowed_zcashd(self, user)
