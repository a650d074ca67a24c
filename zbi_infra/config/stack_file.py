"""Read a `Pulumi.<stack>.yaml` the way Pulumi reads it, and refuse what Pulumi would misread or choke on.

Pulumi parses stack files with Go's yaml.v3, which follows YAML 1.2: `yes`, `no`, `on`, `off` are strings, dates
are strings, and only `true`/`false` are booleans. PyYAML follows YAML 1.1, where `NO` is false and `2024-01-01` is a
date, so the offline plan would read another config than `pulumi up`. This reader resolves plain scalars by the
YAML 1.2 core schema, and refuses, with the file, line and a fix:

- anything but UTF-8 text (UTF-16 with a BOM, Latin-1), NUL and other control characters, files over 1 MiB;
- anchors, aliases and merge keys (`&a`, `*a`, `<<`): stack files are small, and alias expansion is how a
  "billion laughs" file exhausts memory, so they are not worth their risk;
- tags other than YAML's core ones (`!Ref`, `!!python/object`, `!!binary`, `!!timestamp`): never constructed;
- keys that are not text (`1:`, `null:`, `? [a, b]`), a key defined twice, more than one document, nesting deeper
  than 32 levels, a document that is not a mapping;
- integers with a leading zero (`010`, `+010`, `0_10`): yaml.v3 reads them as octal, YAML 1.2 as decimal; write what
  you mean. Integers are otherwise read as yaml.v3 reads them: underscores dropped (`1_000`), a sign before a
  0b/0o/0x prefix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from yaml.composer import Composer
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.parser import Parser
from yaml.reader import Reader
from yaml.resolver import BaseResolver
from yaml.scanner import Scanner

from zbi_infra.errors import ConfigError

SECRET_PLACEHOLDER = "[secret]"
MAX_FILE_BYTES = 1024 * 1024
MAX_DEPTH = 32
# No setting needs more than 20 digits; Python refuses to convert more than 4300 (CVE-2020-10735).
MAX_INTEGER_DIGITS = 30
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BOMS = {b"\xff\xfe\x00\x00": "UTF-32", b"\x00\x00\xfe\xff": "UTF-32", b"\xff\xfe": "UTF-16", b"\xfe\xff": "UTF-16"}

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"
_MAP = "tag:yaml.org,2002:map"
_SEQ = "tag:yaml.org,2002:seq"
CORE_TAGS = frozenset({_STR, _INT, _FLOAT, _BOOL, _NULL, _MAP, _SEQ})


class Yaml12Resolver(BaseResolver):
    """Plain scalars resolved by the YAML 1.2 core schema (what yaml.v3 gives an untyped value)."""


Yaml12Resolver.yaml_implicit_resolvers = {}
for _tag, _pattern, _first in (
    (_BOOL, r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    (_NULL, r"^(?:~|null|Null|NULL|)$", ["~", "n", "N", ""]),
    # yaml.v3 drops underscores, then reads the sign and a 0b/0o/0x prefix as Go's strconv.ParseInt(s, 0, 64) does.
    (_INT, r"^[-+]?(?:[0-9][0-9_]*|0[bB][01_]+|0[oO][0-7_]+|0[xX][0-9a-fA-F_]+)$", "-+0123456789"),
    (
        _FLOAT,
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+0123456789.",
    ),
):
    Yaml12Resolver.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


class StackFileError(ConfigError):
    """A stack file that cannot be read as Pulumi would read it."""


class _Constructor(SafeConstructor):
    def construct_yaml_int(self, node: ScalarNode) -> int:
        value = str(self.construct_scalar(node)).replace("_", "")
        digits = value.lstrip("+-")
        if len(digits) > MAX_INTEGER_DIGITS:
            raise _problem(
                node,
                f"a number of {len(digits)} digits; no setting needs more than {MAX_INTEGER_DIGITS}",
                "write the value the setting needs (see docs/configuration.md for its limits)",
            )
        if len(digits) > 1 and digits.startswith("0") and digits[1] in "0123456789":
            raise _problem(
                node,
                f"{value} has a leading zero: yaml.v3 (Pulumi) reads it as octal, YAML 1.2 as decimal",
                f"write {int(value, 10)} for the decimal number, {value[: len(value) - len(digits)]}0o"
                f"{digits.lstrip('0') or '0'} for octal, or quote it",
            )
        return int(value, 0) if digits[:2].lower() in ("0b", "0o", "0x") else int(value, 10)

    def construct_yaml_float(self, node: ScalarNode) -> float:
        value = str(self.construct_scalar(node)).lower()
        if value.endswith(".inf"):
            return float("-inf") if value.startswith("-") else float("inf")
        return float("nan") if value == ".nan" else float(value)

    def construct_yaml_bool(self, node: ScalarNode) -> bool:
        return str(self.construct_scalar(node)).lower() == "true"


_Constructor.add_constructor(_INT, _Constructor.construct_yaml_int)  # type: ignore[type-var]
_Constructor.add_constructor(_FLOAT, _Constructor.construct_yaml_float)  # type: ignore[type-var]
_Constructor.add_constructor(_BOOL, _Constructor.construct_yaml_bool)  # type: ignore[type-var]


class _StackFileLoader(Reader, Scanner, Parser, Composer, _Constructor, Yaml12Resolver):
    def __init__(self, stream: str, kind: str) -> None:
        Reader.__init__(self, stream)
        Scanner.__init__(self)
        Parser.__init__(self)
        Composer.__init__(self)
        _Constructor.__init__(self)
        Yaml12Resolver.__init__(self)
        self._depth = 0
        self._kind = kind

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _problem(event, f"alias *{event.anchor} is not allowed in a {self._kind}", "write the value out")
        if getattr(event, "anchor", None):
            raise _problem(event, f"anchor &{event.anchor} is not allowed in a {self._kind}", "remove the anchor")
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _problem(event, f"nesting deeper than {MAX_DEPTH} levels", "flatten the structure")
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}" if mark is not None else "unknown line"


def _problem(at: Any, what: str, fix: str) -> StackFileError:
    return StackFileError([f"{_line(getattr(at, 'start_mark', None))}: {what}. Fix: {fix}"])


def _check_nodes(node: Node, kind: str) -> None:
    """Tags and keys, checked on the node tree before anything is constructed."""
    if node.tag not in CORE_TAGS:
        raise _problem(node, f"tag {node.tag} is not allowed in a {kind}", "remove the tag, write a plain value")
    if isinstance(node, MappingNode):
        seen: dict[str, Node] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag != _STR:
                shown = key.value if isinstance(key, ScalarNode) else "a collection"
                raise _problem(key, f"key {shown!r} is not text", 'quote the key, e.g. "1": value')
            if key.value == "<<":
                raise _problem(key, f"merge key << is not allowed in a {kind}", "write the keys out")
            if key.value in seen:
                first = seen[key.value].start_mark.line + 1
                raise _problem(key, f"{key.value!r} is defined twice (first on line {first})", "keep one definition")
            seen[key.value] = key
            _check_nodes(value, kind)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _check_nodes(item, kind)


def parse_yaml_document(text: str, source: str, *, kind: str = "stack file") -> Any:
    """One YAML document as Pulumi would read it; StackFileError names `source` and the line. `kind` names the
    file in messages (access files are read by the same rules)."""
    loader = _StackFileLoader(text, kind)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node, kind)
        return loader.construct_document(node)
    except StackFileError as exc:
        raise StackFileError([f"{source}: {p}" for p in exc.problems]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = ", ".join(p for p in (exc.context, exc.problem) if p) or "not valid YAML"
        fix = _yaml_fix(problem)
        raise StackFileError([f"{source}: {_line(mark)}: {problem}. Fix: {fix}"]) from None
    except yaml.YAMLError as exc:
        raise StackFileError([f"{source}: not valid YAML ({exc}). Fix: correct the YAML syntax"]) from None
    except ValueError as exc:
        # PyYAML's scanner lets chr() fail on an escape past Unicode's range ("\U00110000").
        raise StackFileError(
            [f"{source}: not valid YAML ({exc}). Fix: a \\U escape must name a character up to \\U0010FFFF"]
        ) from None
    finally:
        loader.dispose()


def _yaml_fix(problem: str) -> str:
    if "'\\t'" in problem or "tab" in problem:
        return "indent with spaces; YAML does not allow tabs for indentation"
    if "expected a single document" in problem:
        return "keep one document: remove the `---` separator and what follows it"
    if "flow sequence" in problem or "flow mapping" in problem:
        return "close the [ ] or { } on the same value"
    return "correct the YAML syntax at that line"


def read_bounded(path: Path) -> bytes:
    """The file's bytes, never more than one byte past the limit (decode_text refuses those): a multi-gigabyte file is
    not read into memory to be refused."""
    with path.open("rb") as handle:
        return handle.read(MAX_FILE_BYTES + 1)


def decode_text(data: bytes, source: str, *, kind: str = "stack file") -> str:
    if len(data) > MAX_FILE_BYTES:
        raise StackFileError([f"{source}: over {MAX_FILE_BYTES} bytes, more than a {kind} needs. Fix: trim the file"])
    for bom, encoding in _BOMS.items():
        if data.startswith(bom):
            raise StackFileError([f"{source}: the file is {encoding}. Fix: save it as UTF-8"])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise StackFileError(
            [f"{source}: line {line}: not UTF-8 text (byte {data[exc.start]:#04x}). Fix: save the file as UTF-8"]
        ) from None
    control = _CONTROL.search(text)
    if control:
        line = text[: control.start()].count("\n") + 1
        raise StackFileError([f"{source}: line {line}: control character {control.group()!r}. Fix: remove it"])
    return text


@dataclass(frozen=True)
class StackFile:
    stack: str
    config: dict[str, Any]
    secret_keys: frozenset[str] = field(default_factory=frozenset)


def read_stack_file(stack: str, path: Path) -> StackFile:
    """The `config:` of a stack file, with `secure:` values as opaque placeholders."""
    source = path.name
    try:
        data = read_bounded(path)
    except OSError as exc:
        problem = f"{source}: cannot be read ({exc.strerror}). Fix: check the file and its permissions"
        raise StackFileError([problem]) from None
    return parse_stack_text(stack, decode_text(data, source), source)


def parse_stack_text(stack: str, text: str, source: str) -> StackFile:
    """A stack file's text, read as `read_stack_file` reads the file (for edits validated before they are written)."""
    document = parse_yaml_document(text, source)
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise StackFileError(
            [f"{source}: the file is a {type(document).__name__}, not a mapping. Fix: start it with `config:`"]
        )
    raw = document.get("config") or {}
    if not isinstance(raw, dict):
        raise StackFileError([f"{source}: `config` must be a mapping of keys to values. Fix: indent keys under it"])
    config: dict[str, Any] = {}
    secrets: set[str] = set()
    for key, value in raw.items():
        # `secure:` values are ciphertext for the stack's secrets provider; offline they stay opaque.
        if isinstance(value, dict) and set(value) == {"secure"}:
            config[key] = SECRET_PLACEHOLDER
            secrets.add(key)
        else:
            config[key] = value
    return StackFile(stack=stack, config=config, secret_keys=frozenset(secrets))
