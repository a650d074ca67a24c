"""The export job end to end on loopback: a JSON-RPC server answering as zebrad with real blocks (three linked runs of
Zebra's Mainnet vectors, at their real heights), moto's S3 server, and DuckDB reading the Parquet back.

DuckDB reads copies of the objects (its S3 reader is an extension it would download); the copies keep the Hive layout
`<table>/height_range=<first>-<last>/part.parquet`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.fs as pafs
import pytest

from tests import zcash_blocks
from tests.conftest import UPSTREAM
from tests.history_export_harness import FakeZebra, moto_s3, segment, serve_rpc
from zbi_export import cli
from zbi_export.block_format import display_hex, read_block
from zbi_export.export import MIN_FINALITY_DEPTH, ChainMismatchError, Settings, run
from zbi_export.rpc import NodeRpc
from zbi_export.schema import TABLES, glue_tables
from zbi_export.store import Store, s3_filesystem

BUCKET = "history"


@pytest.fixture(scope="module")
def s3() -> Iterator[str]:
    with moto_s3() as endpoint:
        host = endpoint.removeprefix("http://")
        pafs.S3FileSystem(endpoint_override=host, scheme="http", allow_bucket_creation=True).create_dir(BUCKET)
        yield endpoint


def export(endpoint: str, prefix: str, blocks: dict[int, bytes], tip: int, **settings: Any) -> tuple[Store, Any]:
    node = FakeZebra(blocks, tip)
    store = Store(s3_filesystem(endpoint, "us-east-1"), BUCKET, prefix)
    options = {"network": "mainnet", "partition_blocks": 2, "start_height": min(blocks), "finality_depth": 100}
    options |= settings
    stop = options.pop("stop_after_batches", None)
    with serve_rpc(node) as url:
        report = run(NodeRpc(url, attempts=1), store, Settings(**options), stop_after_batches=stop)
    return store, report


def objects(store: Store) -> dict[str, bytes]:
    """Every object under the store's prefix: key -> bytes."""
    found = store.fs.get_file_info(pafs.FileSelector(store.root, recursive=True, allow_not_found=True))
    out = {}
    for info in found:
        if info.type == pafs.FileType.File:
            with store.fs.open_input_stream(info.path) as stream:
                out[info.path[len(store.root) + 1 :]] = stream.read()
    return out


def duck(store: Store, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    for key, data in objects(store).items():
        (tmp_path / key).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / key).write_bytes(data)
    con = duckdb.connect()
    for table in TABLES:
        con.execute(
            f"create view {table} as select * from read_parquet('{tmp_path}/{table}/*/*.parquet', "
            "hive_partitioning = true)"
        )
    return con


def test_nu5_blocks_read_back_with_duckdb_match_the_blocks_contents(s3: str, tmp_path: Path) -> None:
    blocks = segment("nu5")
    store, report = export(s3, "nu5", blocks, tip=max(blocks) + 100)
    assert (report.first_height, report.last_height, report.blocks) == (1_687_106, 1_687_108, 3)
    con = duck(store, tmp_path)
    parsed = {h: read_block(raw) for h, raw in blocks.items()}

    rows = con.execute("select height, hash, transaction_count, height_range from blocks order by height").fetchall()
    assert rows == [
        (h, display_hex(b.hash), len(b.transactions), "0001687106-0001687107" if h < 1_687_108 else
         "0001687108-0001687109")
        for h, b in parsed.items()
    ]  # fmt: skip
    # Each block's parent is the exported block before it.
    assert con.execute(
        "select count(*) from blocks b join blocks p on b.previous_block_hash = p.hash and b.height = p.height + 1"
    ).fetchone() == (2,)
    # v4 transaction ids are the double SHA-256 of their bytes (an independent splitter finds the same bytes).
    for h, b in parsed.items():
        v4 = {zcash_blocks.sha256d(t.raw)[::-1].hex() for t in b.transactions if t.version == 4}
        exported = {r[0] for r in con.execute("select txid from transactions where height = ? and version = 4", [h])
                    .fetchall()}  # fmt: skip
        assert exported == v4 and v4
    # Counts per table equal the blocks' own.
    expected = {
        "transactions": sum(len(b.transactions) for b in parsed.values()),
        "transparent_inputs": sum(len(t.inputs) for b in parsed.values() for t in b.transactions),
        "transparent_outputs": sum(len(t.outputs) for b in parsed.values() for t in b.transactions),
        "sapling_spends": sum(len(t.sapling_spends) for b in parsed.values() for t in b.transactions),
        "sapling_outputs": sum(len(t.sapling_outputs) for b in parsed.values() for t in b.transactions),
        "orchard_actions": 2,
        "ironwood_actions": 0,
    }
    for table, count in expected.items():
        assert con.execute(f"select count(*) from {table}").fetchone() == (count,), table
    # Sums: transparent values and per-pool value balances, per block, against the parsed blocks.
    for h, b in parsed.items():
        got = con.execute(
            "select transparent_output_value, sapling_value_balance, orchard_value_balance, sprout_value_balance "
            "from blocks where height = ?",
            [h],
        ).fetchone()
        assert got == (
            sum(o.value for t in b.transactions for o in t.outputs),
            sum(t.sapling_value_balance for t in b.transactions),
            sum(t.orchard.value_balance for t in b.transactions),
            0,
        )
    # The blocks table's totals agree with the rows of the other tables.
    assert (
        con.execute("select sum(value) from transparent_outputs").fetchone()
        == con.execute("select sum(transparent_output_value) from blocks").fetchone()
    )
    assert con.execute("select sum(orchard_value_balance) from transactions").fetchone() == (-1_000_000,)
    # Joins: every output to its transaction to its block; every Orchard nullifier is distinct.
    assert con.execute(
        "select count(*) from transparent_outputs o join transactions t using (height, txid) "
        "join blocks b on b.height = t.height and b.hash = t.block_hash"
    ).fetchone() == (expected["transparent_outputs"],)
    assert con.execute(
        "select count(distinct nullifier) from orchard_actions a join transactions t using (height, txid) "
        "where t.version = 5"
    ).fetchone() == (2,)
    # Columns and types are the ones the Glue tables declare.
    for table, spec in glue_tables().items():
        described = con.execute(f"describe {table}").fetchall()
        assert [r[0] for r in described] == [c["name"] for c in spec["columns"]] + ["height_range"]


def test_sapling_activation_segment_has_sprout_and_overwinter_transactions(s3: str, tmp_path: Path) -> None:
    blocks = segment("sapling")
    store, _ = export(s3, "sapling", blocks, tip=max(blocks) + 100, partition_blocks=100)
    con = duck(store, tmp_path)
    parsed = [read_block(raw) for raw in blocks.values()]
    assert con.execute("select distinct version from transactions order by 1").fetchall() == [(3,), (4,)]
    assert con.execute("select sum(joinsplit_count), sum(sprout_value_balance) from blocks").fetchone() == (
        sum(t.joinsplit_count for b in parsed for t in b.transactions),
        sum(t.sprout_value_balance for b in parsed for t in b.transactions),
    )
    # The Sapling nullifiers and note commitments are the independent splitter's.
    nullifiers, cmus = set(), set()
    for b in parsed:
        for t in b.transactions:
            sapling = zcash_blocks.Sapling()
            zcash_blocks.transaction_end(zcash_blocks.Reader(t.raw), sapling)
            nullifiers |= {n.hex() for n in sapling.spends}
            cmus |= {o[0].hex() for o in sapling.outputs}
    assert {r[0] for r in con.execute("select nullifier from sapling_spends").fetchall()} == nullifiers
    assert {r[0] for r in con.execute("select cmu from sapling_outputs").fetchall()} == cmus and cmus
    # Two partitions of 100 blocks: 419,100-419,199 and 419,200-419,299.
    assert con.execute("select height_range, count(*) from blocks group by 1 order by 1").fetchall() == [
        ("0000419100-0000419199", 1),
        ("0000419200-0000419299", 3),
    ]


def test_an_interrupted_export_resumes_to_the_same_bytes_and_reruns_are_identical(s3: str) -> None:
    blocks = segment("sapling")
    whole, _ = export(s3, "whole", blocks, tip=max(blocks) + 100, batch_blocks=1)
    # Stopped after each single-block batch, then resumed: same objects, byte for byte.
    for _ in range(len(blocks)):
        stepped, report = export(s3, "stepped", blocks, tip=max(blocks) + 100, batch_blocks=1, stop_after_batches=1)
        assert report.blocks == 1
    assert objects(stepped) == objects(whole)
    # One batch per partition: same files again.
    batched, _ = export(s3, "batched", blocks, tip=max(blocks) + 100, batch_blocks=100)
    assert objects(batched) == objects(whole)
    # Nothing left: a further run writes nothing.
    again, report = export(s3, "whole", blocks, tip=max(blocks) + 100)
    assert report.blocks == 0 and objects(again) == objects(whole)


def test_a_run_stopped_after_writing_files_but_before_its_state_redoes_the_batch(s3: str) -> None:
    blocks = segment("nu5")
    reference, _ = export(s3, "crash-reference", blocks, tip=max(blocks) + 100)
    crashed = Store(s3_filesystem(s3, "us-east-1"), BUCKET, "crash")
    original = crashed.write_state
    writes: list[int] = []

    def die_on_second_state(state: Any) -> None:
        writes.append(state.next_height)
        if len(writes) == 2:
            raise KeyboardInterrupt("the pod was stopped")
        original(state)

    crashed.write_state = die_on_second_state  # type: ignore[method-assign]
    with serve_rpc(FakeZebra(blocks, max(blocks) + 100)) as url, pytest.raises(KeyboardInterrupt):
        settings = Settings("mainnet", 2, batch_blocks=1, start_height=1_687_106, finality_depth=100)
        run(NodeRpc(url, attempts=1), crashed, settings)
    assert crashed.read_state().next_height == 1_687_107  # type: ignore[union-attr]
    # The second block's rows are in the partition file already; the resumed run must not duplicate them.
    resumed, _ = export(s3, "crash", blocks, tip=max(blocks) + 100, batch_blocks=1)
    assert objects(resumed) == objects(reference)


@pytest.mark.parametrize(
    ("depth", "behind"), [(100, 98), (100, 99), (100, 100), (1000, 998), (1000, 999), (1000, 1000)]
)
def test_no_block_zebrad_could_still_roll_back_is_exported(s3: str, depth: int, behind: int) -> None:
    # zebrad 6.3.0 finalizes a block once its best non-finalized chain is longer than 1000 blocks (the default depth);
    # before 5.2.0, longer than 99 (the smallest depth the job accepts).
    blocks = segment("nu5")
    last = max(blocks)
    store, report = export(s3, f"final-{depth}-{behind}", blocks, tip=last + behind, finality_depth=depth)
    assert report.last_height == last - (depth - behind)
    assert store.read_state().next_height == report.last_height + 1  # type: ignore[union-attr]


def zebrad_finalized_tip(tip: int, window: int) -> int:
    """zebrad's rule (zebra-state/src/service/write.rs, v6.3.0, vendored as state-finality.json): after each block is
    committed to the best non-finalized chain, finalize its oldest block while the chain is longer than the window."""
    finalized, chain = -1, 0
    for _ in range(tip + 1):
        chain += 1
        while chain > window:
            finalized, chain = finalized + 1, chain - 1
    return finalized


def test_the_default_depth_is_zebrads_finalized_tip_and_a_shallower_one_is_refused(s3: str) -> None:
    facts = json.loads((UPSTREAM / "zebra" / "state-finality.json").read_text())
    assert facts["finalize_while"] == "best_chain_len > MAX_BLOCK_REORG_HEIGHT"
    window = facts["MAX_BLOCK_REORG_HEIGHT"]
    default = Settings("mainnet", 2).finality_depth
    for tip in (window - 1, window, window + 1, 5 * window + 17):
        # The default exports exactly what zebrad 6.3.0 has finalized, and nothing above it.
        assert max(tip - default, -1) == zebrad_finalized_tip(tip, window)
    # The older rule ("more than 99 below the tip"), the smallest depth accepted, is zebrad < 5.2.0's.
    old = facts["MAX_BLOCK_REORG_HEIGHT_before_v5.2.0"]
    assert zebrad_finalized_tip(5000, old) >= 5000 - MIN_FINALITY_DEPTH
    blocks = segment("nu5")
    with pytest.raises(ValueError, match="finality depth 99"):
        export(s3, "too-shallow", blocks, tip=max(blocks) + 99, finality_depth=99)


def test_a_block_that_does_not_link_to_the_exported_chain_stops_the_run(s3: str) -> None:
    blocks = segment("nu5")
    store, _ = export(s3, "fork", {1_687_106: blocks[1_687_106]}, tip=1_687_206)
    # A different block at the next height: its parent is not the exported block.
    forked = {1_687_106: blocks[1_687_106], 1_687_107: segment("sapling")[419_201]}
    before = objects(store)
    with pytest.raises(ChainMismatchError, match="parent"):
        export(s3, "fork", forked, tip=1_687_207)
    assert objects(store) == before


def test_the_cli_exports_with_the_default_credential_chain_and_refuses_bad_flags(
    s3: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocks = segment("genesis")
    with serve_rpc(FakeZebra(blocks, tip=102)) as url:
        base = ["--rpc-url", url, "--network", "mainnet", "--s3-endpoint", s3, "--region", "us-east-1"]
        base += ["--start-height", "1", "--finality-depth", "100"]
        bad = [
            (["--destination", "gs://x/y"], "--destination"),
            (["--destination", f"s3://{BUCKET}/cli", "--partition-blocks", "0"], "--partition-blocks"),
            (["--destination", f"s3://{BUCKET}/cli", "--start-height", "-1"], "--start-height"),
            (["--destination", f"s3://{BUCKET}/cli", "--finality-depth", "99"], "--finality-depth"),
            (["--destination", f"s3://{BUCKET}/cli", "--rpc-cookie-file", str(tmp_path / "none")], "--rpc-cookie"),
        ]
        for flags, named in bad:
            assert cli.main(base + flags) == 2
            assert named in capsys.readouterr().err
        store = Store(s3_filesystem(s3, "us-east-1"), BUCKET, "cli")
        assert objects(store) == {}
        assert cli.main([*base, "--destination", f"s3://{BUCKET}/cli", "--partition-blocks", "100"]) == 0
        assert "exported 2 blocks (1-2)" in capsys.readouterr().out
        # The recorded settings are the export's: another partition width is refused, nothing written.
        before = objects(store)
        assert cli.main([*base, "--destination", f"s3://{BUCKET}/cli", "--partition-blocks", "200"]) == 2
        assert "Fix" in capsys.readouterr().err and objects(store) == before
    con = duck(store, tmp_path)
    # Block 1 pays the founders' reward to t3Vz22vK5z2LcKEdg16Yv4FFneEL1zg9ojd (zebrad's own answer, vendored).
    assert con.execute(
        "select value, script_type, address from transparent_outputs where height = 1 order by output_index"
    ).fetchall() == [(50_000, "p2pk", None), (12_500, "p2sh", "t3Vz22vK5z2LcKEdg16Yv4FFneEL1zg9ojd")]
