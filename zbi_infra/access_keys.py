"""End users' API keys and the instance administrator's edits of `access/<instance>.yaml`.

A key is shown once, when it is made; only its SHA-256 is written. Edits go through a round-trip YAML parser, so the
administrator's comments, ordering and layout survive, and the edited file is validated before it is written:
an edit that would make the file invalid changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq

from zbi_infra.config.access import ACCESS_FILE, AccessFile, RateLimit, parse_access
from zbi_infra.errors import ConfigError
from zbi_infra.yaml_roundtrip import dump, flow_list, replace_file, round_trip_yaml

# Recognisable in logs and by secret scanners; 32 random bytes (256 bits) follow it.
KEY_PREFIX = "zbik_"
KEY_BYTES = 32


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class UserGrant:
    expires: date | None = None
    json_rpc: list[str] | None = None
    grpc: list[str] | None = None
    rate_limit: RateLimit | None = None


def _load(path: Path) -> CommentedMap:
    if not path.is_file():
        raise ConfigError([f"{path}: no such access file. Fix: create it first (see the README)"], what=ACCESS_FILE)
    document = round_trip_yaml().load(path.read_text())
    if document is None:
        document = CommentedMap()
    if not isinstance(document, CommentedMap):
        raise ConfigError([f"{path}: the file must be a mapping of keys to values"], what=ACCESS_FILE)
    return document


def _write_validated(path: Path, document: CommentedMap) -> AccessFile:
    text = dump(document)
    # Validate what would be written, as `zbi access check` will read it.
    import yaml

    access = parse_access(yaml.safe_load(text), str(path))
    replace_file(path, text)
    return access


def create_key(path: Path, user: str, grant: UserGrant, *, today: date) -> str:
    """A new key for `user` (added, or rotated if listed): returns the key; the file gets its hash only."""
    if grant.expires is not None and grant.expires <= today:
        raise ConfigError([f"--expires {grant.expires}: already past. Fix: give a later date"], what="command")
    document = _load(path)
    users = document.setdefault("users", CommentedSeq())
    if not isinstance(users, CommentedSeq):
        raise ConfigError([f"{path}: users: write a list"], what=ACCESS_FILE)
    key = new_key()
    entry = next((u for u in users if isinstance(u, CommentedMap) and u.get("name") == user), None)
    if entry is None:
        entry = CommentedMap(name=user)
        users.append(entry)
    entry["keySha256"] = key_hash(key)
    if grant.expires is not None:
        entry["expires"] = grant.expires
    if grant.json_rpc is not None:
        entry["jsonRpc"] = flow_list(grant.json_rpc)
    if grant.grpc is not None:
        entry["grpc"] = flow_list(grant.grpc)
    if grant.rate_limit is not None:
        limit = CommentedMap(requestsPerSecond=grant.rate_limit.requests_per_second)
        if grant.rate_limit.burst:
            limit["burst"] = grant.rate_limit.burst
        entry["rateLimit"] = limit
    _write_validated(path, document)
    return key


def revoke(path: Path, user: str) -> None:
    """Remove `user` and with it their key's hash: the gateway refuses the key once it reloads the table."""
    document = _load(path)
    users = document.get("users") or []
    index = next((i for i, u in enumerate(users) if isinstance(u, CommentedMap) and u.get("name") == user), None)
    if index is None:
        known = ", ".join(str(u.get("name")) for u in users if isinstance(u, CommentedMap)) or "none"
        raise ConfigError([f"{path}: no user {user!r} (users: {known})"], what=ACCESS_FILE)
    del users[index]
    _write_validated(path, document)


def describe_users(access: AccessFile, *, today: date) -> list[dict[str, Any]]:
    """What each user (and the anonymous profile) may call, at what rate, and whether the key is still valid."""
    rows: list[dict[str, Any]] = []
    if access.anonymous is not None:
        json_rpc, grpc = access.allowed(None)
        limit = access.anonymous.rate_limit
        rows.append(
            {
                "user": "(anonymous)",
                "status": "active",
                "expires": None,
                "jsonRpc": json_rpc,
                "grpc": grpc,
                "rate": f"{limit.requests_per_second}/s burst {limit.effective_burst()}",
            }
        )
    for user in access.users:
        json_rpc, grpc = access.allowed(user)
        rows.append(
            {
                "user": user.name,
                "status": "active" if user.active_on(today) else "expired",
                "expires": user.expires.isoformat() if user.expires else None,
                "jsonRpc": json_rpc,
                "grpc": grpc,
                "rate": f"{user.rate_limit.requests_per_second}/s burst {user.rate_limit.effective_burst()}",
            }
        )
    return rows
