"""End users' API keys and the instance administrator's edits of `access/<instance>.yaml`.

A key is shown once, when it is made; only its SHA-256 is written. Edits go through a round-trip YAML parser, so the
administrator's comments, ordering and layout survive, and the edited file is validated before it is written:
an edit that would make the file invalid changes nothing.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError

from zbi_infra.access_splice import plain_safe as _plain_safe
from zbi_infra.access_splice import splice_user
from zbi_infra.config.access import (
    ACCESS_FILE,
    AccessFile,
    EndUser,
    RateLimit,
    parse_access,
    parse_access_text,
    read_access_document,
    user_name_problem,
)
from zbi_infra.errors import ConfigError
from zbi_infra.yaml_roundtrip import dump, flow_list, locked, replace_file, round_trip_yaml

# A check of the edited file beyond the model (the instance's config), run before anything is written.
Check = Callable[[AccessFile], None]

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
    # The zcashd sidecar's methods (node.zcashdCompat); wallet methods reach a user only when listed here.
    zcashd_rpc: list[str] | None = None


def _load(path: Path) -> tuple[str, CommentedMap]:
    """The file's text and its round-trip document; the text is first read as `zbi plan` reads it (UTF-8, no
    anchors, aliases, duplicate keys or custom tags), so the edit starts from what the plan would see."""
    data_document = read_access_document(path)
    if data_document is not None and not isinstance(data_document, dict):
        raise ConfigError(
            [f"{path}: the file must be a mapping of keys to values. Fix: start it with jsonRpc:, grpc: or users:"],
            what=ACCESS_FILE,
        )
    text = path.read_bytes().decode("utf-8-sig")
    try:
        document = round_trip_yaml().load(text)
    except YAMLError as exc:  # the strict reader accepted it: a ruamel limitation, still the user's file to fix
        problem = f"{path}: cannot be edited ({str(exc).splitlines()[0]}). Fix: edit this part by hand"
        raise ConfigError([problem], what=ACCESS_FILE) from None
    return text, document if isinstance(document, CommentedMap) else CommentedMap()


def _validated(path: Path, text: str, check: Check | None) -> AccessFile:
    """What `text` would be, read as `zbi access check` and `zbi plan` will read it."""
    access = parse_access(parse_access_text(text.encode(), str(path)), str(path))
    if check is not None:
        check(access)
    return access


def _write(path: Path, document: CommentedMap, spliced: str | None, check: Check | None) -> None:
    """Write the spliced text (only the edited lines changed) when it means what the whole re-dumped document
    means; otherwise the re-dump (ruamel keeps comments and order, but may re-flow long lists)."""
    redumped = dump(document)
    access = _validated(path, redumped, check)
    if spliced is not None:
        try:
            if _validated(path, spliced, check) == access:
                redumped = spliced
        except ConfigError:
            pass
    # A UTF-8 byte-order mark the file starts with is kept (the readers skip it; the edit must not drop it).
    with path.open("rb") as handle:
        bom = "\ufeff" if handle.read(3) == "\ufeff".encode() else ""
    replace_file(path, bom + redumped)


def _user_index(users: object, user: str) -> int | None:
    if not isinstance(users, CommentedSeq):
        return None
    return next((i for i, u in enumerate(users) if isinstance(u, CommentedMap) and u.get("name") == user), None)


def _checked_user(user: str) -> None:
    if problem := user_name_problem(user):
        raise ConfigError([f"user: {problem}"], what="command")


def create_key(path: Path, user: str, grant: UserGrant, *, today: date, check: Check | None = None) -> str:
    """A new key for `user` (added, or rotated if listed): returns the key; the file gets its hash only. `check`
    sees the edited file before it is written (e.g. against the instance's config)."""
    _checked_user(user)
    if grant.expires is not None and grant.expires <= today:
        raise ConfigError([f"--expires {grant.expires}: already past. Fix: give a later date"], what="command")
    with locked(path):
        before, document = _load(path)
        users = document.get("users")
        if users is None:
            users = document["users"] = CommentedSeq()
        if not isinstance(users, CommentedSeq):
            raise ConfigError([f"{path}: users: not a list. Fix: write a list (or users: [])"], what=ACCESS_FILE)
        key = new_key()
        index = _user_index(users, user)
        entry = CommentedMap(name=_plain_safe(user)) if index is None else users[index]
        entry["keySha256"] = key_hash(key)
        if grant.expires is not None:
            entry["expires"] = grant.expires
        if grant.json_rpc is not None:
            entry["jsonRpc"] = flow_list(grant.json_rpc)
        if grant.grpc is not None:
            entry["grpc"] = flow_list(grant.grpc)
        if grant.zcashd_rpc is not None:
            entry["zcashdRpc"] = flow_list(grant.zcashd_rpc)
        if grant.rate_limit is not None:
            limit = CommentedMap(requestsPerSecond=grant.rate_limit.requests_per_second)
            if grant.rate_limit.burst:
                limit["burst"] = grant.rate_limit.burst
            entry["rateLimit"] = limit
        if index is None:
            users.append(entry)
        spliced = splice_user(before, document, len(users) - 1 if index is None else index, entry)
        _write(path, document, spliced, check)
    return key


def revoke(path: Path, user: str, *, check: Check | None = None) -> None:
    """Remove `user` and with it their key's hash: the gateway refuses the key once it reloads the table."""
    _checked_user(user)
    with locked(path):
        before, document = _load(path)
        users = document.get("users")
        index = _user_index(users, user)
        if index is None:
            listed = users if isinstance(users, CommentedSeq) else []
            known = ", ".join(str(u.get("name")) for u in listed if isinstance(u, CommentedMap)) or "none"
            raise ConfigError([f"{path}: no user {user!r} (users: {known}). Fix: name a listed user"], what=ACCESS_FILE)
        spliced = splice_user(before, document, index, None)
        del users[index]
        _write(path, document, spliced, check)


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
    if access.zcashd_rpc.methods:  # the zcashd sidecar's lists, for files that expose it
        profiles: list[EndUser | None] = [None] if access.anonymous is not None else []
        for row, profile in zip(rows, [*profiles, *access.users], strict=True):
            row["zcashdRpc"] = access.allowed_zcashd(profile)
    return rows
