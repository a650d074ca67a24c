"""zbi_rate.lua (the Lua engine's rate buckets) against nginx 1.22's limit_req rule with `nodelay`, transcribed below
from ngx_http_limit_req_lookup, in LuaJIT (Debian's luajit2) with the shared dictionary and nginx's clock stood in
for: the dictionary behaves as lua-nginx-module 0.10.23's (incr of an absent or expired key starts from `init` with
`init_ttl`; expiry in whole milliseconds of the cached wall clock, lazily, valid through its last millisecond; expire
looks no expiry up). Two workers are played by coroutines that yield after each dictionary operation, so every
interleaving of two calls can be run."""

from __future__ import annotations

import itertools
import random
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.debian import debian_tool
from zbi_infra.render.gateway import GatewayPaths
from zbi_infra.render.gateway_engines import LUA_RATE_MODULE, lua_modules

DRIVER = """
package.path = arg[1] .. "/?.lua;" .. package.path
local mono, wall = 0, 0
-- After each operation, a worker played by a coroutine lets the schedule choose who goes next.
local function operated(...)
    if coroutine.running() then
        coroutine.yield()
    end
    return ...
end
local function live(entries, key)
    local entry = entries[key]
    if entry and entry.expires ~= 0 and entry.expires < wall then
        return nil
    end
    return entry
end
-- A dictionary per name, as nginx.conf's lua_shared_dict per bucket.
local Dict = {}
Dict.__index = Dict
function Dict:incr(key, value, init, init_ttl)
    local entry = live(self.entries, key)
    if not entry then
        if init == nil then
            return operated(nil, "not found")
        end
        entry = {value = init, expires = (init_ttl or 0) > 0 and wall + math.floor(init_ttl * 1000) or 0}
        self.entries[key] = entry
    end
    entry.value = entry.value + value
    return operated(entry.value)
end
function Dict:expire(key, exptime)
    local entry = self.entries[key]
    if not entry then
        return operated(nil, "not found")
    end
    entry.expires = exptime > 0 and wall + math.floor(exptime * 1000) or 0
    return operated(true)
end
ngx = {shared = setmetatable({}, {__index = function(shared, name)
    local dict = setmetatable({entries = {}}, Dict)
    rawset(shared, name, dict)
    return dict
end})}
package.loaded.ffi = {cdef = function() end, C = setmetatable({}, {__index = function(_, name)
    assert(name == "ngx_current_msec")
    return mono
end})}
local rate = require "zbi_rate"
rate.configure({r1b1 = {1, 1}, r1b5 = {1, 5}, r3b0 = {3, 0}, r7b20 = {7, 20}, r500b1000 = {500, 1000},
    r100000b100000 = {100000, 100000}}, "r1b1")
local out = {}
for line in io.lines() do
    local words = {}
    for word in line:gmatch("%S+") do
        words[#words + 1] = word
    end
    local command = words[1]
    if command == "clock" then
        mono, wall = tonumber(words[2]), tonumber(words[3])
    elseif command == "take" then
        out[#out + 1] = rate.take(words[2], words[3], tonumber(words[4])) and "1" or "0"
    elseif command == "pair" then
        -- Two workers' calls, interleaved as the schedule says (a or b: whose next operation runs).
        local results = {}
        local workers = {}
        for w = 1, 2 do
            local at = 2 + (w - 1) * 3
            workers[w] = coroutine.create(function()
                results[w] = rate.take(words[at], words[at + 1], tonumber(words[at + 2]))
            end)
        end
        local schedule = words[8]
        local step = 1
        while coroutine.status(workers[1]) ~= "dead" or coroutine.status(workers[2]) ~= "dead" do
            local w = schedule:sub(step, step) == "b" and 2 or 1
            if coroutine.status(workers[w]) == "dead" then
                w = 3 - w
            end
            assert(coroutine.resume(workers[w]))
            step = step + 1
        end
        out[#out + 1] = (results[1] and "1" or "0") .. (results[2] and "1" or "0")
    elseif command == "state" then
        -- The entry of a bucket (words[2]) and rate key (words[3]).
        local entry = live(ngx.shared["zbi_rate_" .. words[2]].entries, words[3])
        out[#out + 1] = entry and string.format("%d@%d", entry.value, entry.expires) or "-"
    end
end
io.write(table.concat(out, "\\n"))
"""

BUCKETS = {"r1b1": (1, 1), "r1b5": (1, 5), "r3b0": (3, 0), "r7b20": (7, 20), "r500b1000": (500, 1000),
           "r100000b100000": (100_000, 100_000)}  # fmt: skip
STRICTEST = "r1b1"


@dataclass
class NginxZones:
    """nginx 1.22's limit_req, a zone per bucket with `nodelay` (ngx_http_limit_req_lookup): per key, `excess` in
    thousandths of a call and `last` in milliseconds of ngx_current_msec. A batch's calls are charged in a row, the
    first refused ending it (the njs engine's meter)."""

    nodes: dict[tuple[str, str], list[int]] = field(default_factory=dict)

    def take(self, key: str, bucket: str, count: int, now: int) -> bool:
        zone = bucket if bucket in BUCKETS else STRICTEST
        rate, burst = BUCKETS[zone]
        for _ in range(count):
            node = self.nodes.get((zone, key))
            if node is None:
                self.nodes[(zone, key)] = [0, now]
                continue
            ms = now - node[1]
            ms = 1 if ms < -60000 else max(ms, 0)
            excess = max(0, node[0] - rate * 1000 * ms // 1000 + 1000)
            if excess > burst * 1000:
                return False
            node[0] = excess
            if ms:
                node[1] = now
        return True


def run_driver(commands: list[str], tmp_path: Path) -> list[str]:
    luajit = debian_tool("luajit", ["luajit2", "lua-cjson"])
    module = lua_modules(GatewayPaths(config_dir="/c", upstream_auth_file="/a"))[LUA_RATE_MODULE]
    (tmp_path / LUA_RATE_MODULE).write_text(module)
    (tmp_path / "driver.lua").write_text(DRIVER)
    result = subprocess.run(
        [luajit, str(tmp_path / "driver.lua"), str(tmp_path)],
        input="\n".join(commands).encode(),
        capture_output=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode().split("\n")


# Where the wall clock's milliseconds tick relative to the monotonic clock's (both truncated from one reading).
@pytest.mark.parametrize("phase", [0.0, 0.3, 0.999])
@pytest.mark.parametrize("seed", range(4))
def test_one_worker_takes_exactly_what_nginx_takes(phase: float, seed: int, tmp_path: Path) -> None:
    """Random calls and batches of random keys and buckets (an unknown one too), at random gaps: around each
    bucket's interval, just past its draining, none, and long ones; from a monotonic clock far from zero (a host up
    for months). Every verdict is nginx's."""
    generator = random.Random(seed)
    zones = NginxZones()
    commands, expected = [], []
    start = 10_000_000_000.0 + generator.random() * 1000
    wall_offset = 1_700_000_000_000
    now = start
    for _ in range(6000):
        bucket = generator.choice([*BUCKETS, "r777b1554"])
        rate = BUCKETS.get(bucket, BUCKETS[STRICTEST])[0]
        interval = 1000 / rate
        now += generator.choice(
            [0, 0, generator.random() * 3, interval * generator.choice([0.5, 1, 2]), interval + 1,
             generator.random() * interval * 5, generator.random() * 4000]
        )  # fmt: skip
        key = generator.choice(["user:a", "user:b", "anon:127.0.0.1"])
        count = generator.choice([1, 1, 1, 2, 5, 30])
        mono = int(now)
        commands.append(f"clock {mono} {int(now + phase) + wall_offset}")
        commands.append(f"take {key} {bucket} {count}")
        expected.append("1" if zones.take(key, bucket, count, mono) else "0")
    assert run_driver(commands, tmp_path) == expected


def interleavings(first: int, second: int) -> list[str]:
    """Every order of `first` operations of worker a and `second` of worker b."""
    return sorted({"".join(p) for p in itertools.permutations("a" * first + "b" * second)})


def test_an_idle_bucket_touched_by_two_workers_at_once_counts_both(tmp_path: Path) -> None:
    """Worker a and b each take one call of a drained bucket (its entry gone or expired) in every interleaving of
    their dictionary operations: both pass and both count, so the burst that follows is held to what is left (burst
    1: none). With a read, then a write, one of the two would be lost and the bucket would pass one call too many."""
    commands = []
    schedules = interleavings(2, 2)
    for index, schedule in enumerate(schedules):
        key = f"user:idle{index}"
        commands += ["clock 5000 1700000005000", f"take {key} r1b1 1", "clock 9000 1700000009000"]
        commands += [f"pair {key} r1b1 1 {key} r1b1 1 {schedule}", f"take {key} r1b1 1", f"state r1b1 {key}"]
    results = run_driver(commands, tmp_path)
    for index, schedule in enumerate(schedules):
        first, pair, after, state = results[4 * index : 4 * index + 4]
        assert (first, pair, after) == ("1", "11", "0"), schedule
        # excess 1000 (one call above the one served) at 9000 ms, 1/s: T = 1000 + 9000 * 1, drained in 2 s; when
        # the worker that counted first wrote its expiry last, one call's draining (1 s) earlier (the next test).
        value, expires = (int(v) for v in state.split("@"))
        assert value == 1000 + 9000, schedule
        assert expires - 1700000009000 == (1000 + 1 if schedule[0] == schedule[-1] else 2000 + 1), schedule


def test_two_workers_at_the_limit_pass_no_more_than_nginx_would(tmp_path: Path) -> None:
    """A bucket with room for one more call (r1b5 after five), two workers calling at once, every interleaving: one
    passes, the other is refused, and what is stored is one more call, as nginx in either order. A batch of three
    against a single call likewise never passes more than the room."""
    commands = []
    cases = [(1, 1, interleavings(2, 2)), (3, 1, interleavings(2, 2))]
    for count_a, count_b, schedules in cases:
        for index, schedule in enumerate(schedules):
            key = f"user:full{count_a}{index}"
            commands += ["clock 5000 1700000005000", f"take {key} r1b5 5"]
            commands += [f"pair {key} r1b5 {count_a} {key} r1b5 {count_b} {schedule}", f"state r1b5 {key}"]
    results = run_driver(commands, tmp_path)
    position = 0
    for count_a, _, schedules in cases:
        for schedule in schedules:
            assert results[position] == "1", schedule
            pair, state = results[position + 1], results[position + 2]
            position += 3
            # One of the two passes (a single call fits; a batch of three does not, its first call counted).
            assert pair in ({"10", "01"} if count_a == 1 else {"01", "00"}), (schedule, pair)
            value = int(state.split("@")[0])
            # Six calls counted in all: five, then the one with room, never more.
            assert value == 5000 + 5000, (schedule, pair, state)


def test_an_expiry_written_out_of_order_forgives_at_most_one_call(tmp_path: Path) -> None:
    """The documented imprecision of two workers' expiries: a's call counted, then b's, then b's expiry written,
    then a's (earlier) one: the entry goes one call's draining early, and at most that one call is forgiven."""
    key = "user:racing"
    commands = ["clock 5000 1700000005000", f"pair {key} r1b5 1 {key} r1b5 1 abba", f"state r1b5 {key}"]
    results = run_driver(commands, tmp_path)
    assert results[0] == "11"
    value, expires = (int(v) for v in results[1].split("@"))
    assert value == 5000 + 1000  # both counted
    # nginx would drain this bucket (excess 1000 at 5000 ms, 1/s) at 7000 ms; the entry goes after 6000 ms.
    assert expires == 1700000005000 + 1000 + 1
