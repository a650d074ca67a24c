"""zbi_json_text.lua's `valid` (the Lua engine's check of a node's answer it splices, building no value) against
Python's strict JSON parser, on generated texts and single-byte mutations of them, and its `utf8` (the check of a
caller's body) against Python's strict UTF-8 decoder, in LuaJIT (Debian's luajit2, the module loaded as the gateway
loads it, with lua-cjson): both must call the same texts JSON, the same bytes UTF-8."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.debian import debian_tool
from zbi_infra.render.gateway import GatewayPaths
from zbi_infra.render.gateway_engines import LUA_JSON_TEXT_MODULE, lua_modules

DRIVER = """
package.path = arg[1] .. "/?.lua;" .. package.path
local text = require "zbi_json_text"
local check = text[arg[2]]
local input = io.read("*a")
local i, out = 1, {}
while i <= #input do
    local newline = input:find("\\n", i, true)
    local length = tonumber(input:sub(i, newline - 1))
    out[#out + 1] = check(input:sub(newline + 1, newline + length)) and "1" or "0"
    i = newline + length + 1
end
io.write(table.concat(out))
"""

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8)
)
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)  # fmt: skip
# Bytes a mutation inserts or writes: JSON's punctuation, whitespace, control characters and letters of literals.
MUTATIONS = st.sampled_from(list(b'{}[]:,"\\ \t\n\r\x00\x01\x1f-+.eE0123456789truefalsnu/'))


def depth(value: object) -> int:
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def strictly_json(data: bytes) -> bool:
    """JSON by Python's strict parser, nested 31 deep at most (njs's JSON.parse, which the engines match)."""

    def refuse(name: str) -> None:
        raise ValueError(name)

    try:
        value = json.loads(data.decode("utf-8"), parse_constant=refuse)
    except (ValueError, RecursionError):
        return False
    return depth(value) <= 31


def lua_valid(texts: list[bytes], tmp_path: Path, check: str = "valid") -> list[bool]:
    # luajit2 (OpenResty's LuaJIT branch, as the nginx module's libluajit2 and OpenResty's image): Debian's other
    # luajit conflicts with that library, and installing it removed the nginx module under the other tests.
    luajit = debian_tool("luajit", ["luajit2", "lua-cjson"])
    module = lua_modules(GatewayPaths(config_dir="/c", upstream_auth_file="/a"))[LUA_JSON_TEXT_MODULE]
    (tmp_path / LUA_JSON_TEXT_MODULE).write_text(module)
    (tmp_path / "driver.lua").write_text(DRIVER)
    payload = b"".join(str(len(t)).encode() + b"\n" + t for t in texts)
    result = subprocess.run(
        [luajit, str(tmp_path / "driver.lua"), str(tmp_path), check], input=payload, capture_output=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [c == ord("1") for c in result.stdout]


def text_of(value: object, spaced: bool) -> bytes:
    return json.dumps(value, ensure_ascii=False, indent=1 if spaced else None).encode()


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cases=st.lists(
        st.tuples(VALUES, st.booleans(), st.integers(min_value=0), st.sampled_from(["keep", "insert", "replace", "cut", "swap"]),
                  MUTATIONS),
        min_size=20, max_size=20,
    )
)  # fmt: skip
def test_valid_calls_json_what_a_strict_parser_does(
    tmp_path_factory: pytest.TempPathFactory, cases: list[tuple[object, bool, int, str, int]]
) -> None:
    texts = []
    for value, spaced, where, how, byte in cases:
        text = text_of(value, spaced)
        at = where % (len(text) + 1)
        if how == "insert":
            text = text[:at] + bytes([byte]) + text[at:]
        elif how == "replace" and at < len(text):
            text = text[:at] + bytes([byte]) + text[at + 1 :]
        elif how == "cut":
            text = text[:at]
        elif how == "swap":
            # A bracket closed by the other kind, or opened as it: the nesting a validator must track.
            brackets = [i for i, c in enumerate(text) if c in b"{}[]"]
            if brackets:
                i = brackets[where % len(brackets)]
                text = text[:i] + bytes([{123: 91, 91: 123, 125: 93, 93: 125}[text[i]]]) + text[i + 1 :]
        texts.append(text)
    # Some texts a mutation may leave as invalid UTF-8 are skipped: the node's answers are UTF-8 by contract.
    texts = [t for t in texts if t.decode("utf-8", errors="replace").encode() == t]
    verdicts = lua_valid(texts, tmp_path_factory.mktemp("lua"))
    assert [(t, v) for t, v in zip(texts, verdicts, strict=True) if v != strictly_json(t)] == []


def test_valid_refuses_what_json_parse_would_refuse(tmp_path: Path) -> None:
    texts = [b"1.", b"-01", b"NaN", b"[1,]", b'{"a":1,}', b'"a\tb"', b"[1]\x00", b"[1] [2]", b'{"a" 1}', b"\xef\xbb\xbf1",
             b'"\\x"', b'"\\u12"', b"tru", b"", b" ", b'{"a":1]', b"[1}", b'{"a":[1}]',
             b"[" * 32 + b"]" * 32]  # fmt: skip
    oks = [b"1", b"-0.5e+3", b'{"a":[1,{"b":null}],"c":"\\u00e9\\n"}', b" [ ] ", b"[" * 31 + b"]" * 31]
    assert lua_valid(texts, tmp_path) == [False] * len(texts)
    assert lua_valid(oks, tmp_path) == [True] * len(oks)


def strictly_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8", errors="strict")
    except UnicodeDecodeError:
        return False
    return True


# Bytes where UTF-8's rules turn: continuation bounds, the lead bytes that bound their second byte (E0, ED, F0, F4),
# the never-valid C0, C1 and F5-FF.
EDGES = st.sampled_from([0x00, 0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC1, 0xC2, 0xDF, 0xE0, 0xE1, 0xEC,
                         0xED, 0xEE, 0xEF, 0xF0, 0xF1, 0xF3, 0xF4, 0xF5, 0xFF, ord("a"), ord('"')])  # fmt: skip


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    cases=st.lists(
        st.tuples(st.text(max_size=12), st.lists(EDGES, max_size=5), st.integers(min_value=0), st.binary(max_size=6)),
        min_size=40, max_size=40,
    )
)  # fmt: skip
def test_utf8_calls_utf8_what_a_strict_decoder_does(
    tmp_path_factory: pytest.TempPathFactory, cases: list[tuple[str, list[int], int, bytes]]
) -> None:
    """Valid text (every plane Hypothesis draws from) with edge bytes and random bytes spliced in at any place."""
    texts = []
    for text, edges, where, noise in cases:
        data = text.encode("utf-8", errors="surrogatepass")
        at = where % (len(data) + 1)
        texts.append(data[:at] + bytes(edges) + noise + data[at:])
    verdicts = lua_valid(texts, tmp_path_factory.mktemp("utf8"), "utf8")
    assert [(t, v) for t, v in zip(texts, verdicts, strict=True) if v != strictly_utf8(t)] == []


def test_utf8_refuses_each_kind_of_ill_formed_sequence(tmp_path: Path) -> None:
    bad = [b"\xff", b"\xc0\xaf", b"\xc1\xbf", b"\xe0\x80\xaf", b"\xed\xa0\x80", b"\xf0\x80\x80\xaf",
           b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"a\xf0\x9f\x98", b"\x80", b"\xc3\xc3"]  # fmt: skip
    good = [b"", b"ascii only", "é€😀\uffff\U0010ffff".encode(), b"\xed\x9f\xbf", b"\xee\x80\x80", b"\xf4\x8f\xbf\xbf"]
    assert lua_valid(bad, tmp_path, "utf8") == [False] * len(bad)
    assert lua_valid(good, tmp_path, "utf8") == [True] * len(good)
