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
from collections.abc import Iterable, Mapping
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, StringConstraints, ValidationError, field_validator, model_validator

from zbi_infra.config.base import StrictInt, StrictModel, listed_twice
from zbi_infra.config.errors import describe
from zbi_infra.config.stack_file import StackFileError, decode_text, parse_yaml_document, read_bounded
from zbi_infra.errors import ConfigError

if TYPE_CHECKING:
    from zbi_infra.config.instance import InstanceConfig

ACCESS_DIR = "access"
ACCESS_SUFFIX = ".yaml"
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
# The exception: zebrad's two read-only z_ chain queries (zebra-rpc v6.3.0; docs/history-cache.md).
Z_CHAIN_QUERIES = frozenset({"z_gettreestate", "z_getsubtreesbyindex"})
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
    max_batch: StrictInt | None = Field(default=None, ge=1, le=10_000)

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


def parse_access(document: object, source: str) -> AccessFile:
    """Validate an access file's parsed YAML: every error names the key in `source` and the fix."""
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise ConfigError(
            [f"{source}: the file must be a mapping of keys to values. Fix: start it with jsonRpc:, grpc: or users:"],
            what=ACCESS_FILE,
        )
    try:
        return AccessFile.model_validate(document)
    except ValidationError as exc:
        raise describe(AccessFile, exc, prefix=f"{source}: ", where=source, what=ACCESS_FILE) from None


def read_access_file(path: Path) -> AccessFile:
    """An access file read by the stack-file reader's rules (UTF-8, YAML 1.2 scalars, no anchors, aliases, duplicate
    keys, custom tags or deep nesting), then validated: every error names the file, the line or key, and the fix."""
    return parse_access(read_access_document(path), str(path))


def read_access_document(path: Path) -> object:
    source = str(path)
    if path.is_symlink() and not path.exists():
        problem = f"{source}: a symbolic link to {path.readlink()}, which does not exist. Fix: point it at a file"
        raise ConfigError([problem], what=ACCESS_FILE)
    if not path.exists():
        problem = f"{source}: no such access file. Fix: create it (see the README's access section)"
        raise ConfigError([problem], what=ACCESS_FILE)
    if not path.is_file():
        raise ConfigError([f"{source}: not a regular file. Fix: make it the instance's YAML file"], what=ACCESS_FILE)
    try:
        data = read_bounded(path)
    except OSError as exc:
        problem = f"{source}: cannot be read ({exc.strerror}). Fix: check the file and its permissions"
        raise ConfigError([problem], what=ACCESS_FILE) from None
    return parse_access_text(data, source)


def parse_access_text(data: bytes, source: str) -> object:
    try:
        return parse_yaml_document(decode_text(data, source, kind=ACCESS_FILE), source, kind=ACCESS_FILE)
    except StackFileError as exc:
        raise ConfigError(exc.problems, what=ACCESS_FILE) from None


def check_for_instance(access: AccessFile, name: str, instance: InstanceConfig, source: str) -> None:
    """What the file asks of its instance, checked against the instance: gRPC needs a light-wallet server, zcashd
    methods a zcashd sidecar, its wallet methods the sidecar's wallet."""
    from zbi_infra.config.instance import LightwalletKind
    from zbi_infra.config.zcashd_methods import zcashd_access_problem

    if problem := zcashd_access_problem(access, instance):
        raise ConfigError([f"{source}: zcashdRpc: instance {name} {problem}"], what=ACCESS_FILE)
    if instance.lightwallet.kind is not LightwalletKind.NONE:
        return
    profiles = [access.grpc.methods, access.anonymous.grpc if access.anonymous else []]
    profiles += [user.grpc or [] for user in access.users]
    if any(profiles):
        raise ConfigError(
            [f"{source}: grpc: instance {name} has no light-wallet server (lightwallet.kind: none), so no gRPC method "
             "can be exposed. Fix: remove the grpc lists, or give the instance a light-wallet server"],
            what=ACCESS_FILE,
        )  # fmt: skip


def instance_access_files(
    root: Path, instances: Mapping[str, InstanceConfig] | Iterable[str], *, declared: Iterable[str] | None = None
) -> dict[str, AccessFile]:
    """The access file of each instance that has one (`<root>/access/<instance>.yaml`), validated: a stack program
    reads them before registering anything, so a bad file deploys nothing. Given the instances' configs, each file is
    checked against its instance; given `declared` (every instance of the project's stacks), a file in access/ that
    names none of them (`testnet.yml`, a misspelt `tesnet.yaml`) is refused rather than silently ignored."""
    found = {}
    problems = []
    configs = instances if isinstance(instances, Mapping) else {}
    names = list(instances)
    if declared is not None:
        problems += _orphans(root / ACCESS_DIR, {*declared, *names})
    for name in names:
        path = root / ACCESS_DIR / f"{name}{ACCESS_SUFFIX}"
        if not (path.exists() or path.is_symlink()):
            continue
        try:
            found[name] = read_access_file(path)
            if name in configs:
                check_for_instance(found[name], name, configs[name], str(path))
        except ConfigError as exc:
            problems += exc.problems
    if problems:
        raise ConfigError(problems, what=ACCESS_FILE)
    return found


def _orphans(directory: Path, declared: set[str]) -> list[str]:
    if not directory.is_dir():
        return []
    problems = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.suffix.lower() not in (".yaml", ".yml"):
            continue  # lock files, a README
        if path.suffix == ACCESS_SUFFIX and path.stem in declared:
            continue
        if path.stem in declared:
            fix = f"rename it {path.stem}{ACCESS_SUFFIX}"
        elif close := difflib.get_close_matches(path.stem, sorted(declared), n=1):
            fix = f"rename it {close[0]}{ACCESS_SUFFIX} if it is {close[0]}'s, or remove it"
        else:
            fix = "remove it, or declare its instance in a Pulumi.<stack>.yaml"
        problems.append(
            f"{directory.name}/{path.name}: names no instance of the project's stacks (zBI reads "
            f"{directory.name}/<instance>{ACCESS_SUFFIX}), so no gateway would use it. Fix: {fix}"
        )
    return problems


def declared_instance_names(root: Path) -> set[str]:
    """Every instance some stack file of the project declares (a stack file that cannot be read declares none: its
    own plan says why)."""
    from zbi_infra.config.stack_file import read_stack_file

    names: set[str] = set()
    for path in root.glob("Pulumi.*.yaml"):
        try:
            instances = read_stack_file(path.name[len("Pulumi.") : -len(".yaml")], path).config.get("zbi:instances")
        except StackFileError:
            continue
        if isinstance(instances, dict):
            names.update(str(name) for name in instances)
    return names
