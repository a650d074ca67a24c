"""The export job end to end on loopback: a JSON-RPC server answering as zebrad with real blocks (three linked runs of
Zebra's Mainnet vectors, at their real heights), moto's S3 server, and DuckDB reading the Parquet back.

DuckDB reads copies of the objects (its S3 reader is an extension it would download); the copies keep the Hive layout
`<table>/height_range=<first>-<last>/part-<first height of the file>.parquet`."""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow.fs as pafs
import pytest

from tests import zcash_blocks
from tests.conftest import UPSTREAM
from tests.history_export_harness import FakeZebra, moto_s3, raw_block, segment, serve_rpc
from zbi_export import cli
from zbi_export.block_format import display_hex, merkle_root, read_block
from zbi_export.export import MIN_FINALITY_DEPTH, ChainMismatchError, Settings, run
from zbi_export.rpc import NodeRpc
from zbi_export.schema import TABLES, glue_tables
from zbi_export.store import Store, s3_filesystem
from zbi_export.txid import txid

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
    with serve_rpc(node) as url:
        report = run(NodeRpc(url, attempts=1), store, Settings(**options))
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
    tip = max(blocks) + 100
    whole, _ = export(s3, "whole", blocks, tip=tip, partition_blocks=100, file_blocks=4)
    assert {key.rsplit("/", 1)[1] for key in objects(whole) if key.startswith("blocks/")} == {
        "part-0000419196.parquet",  # 419,199 (file 419,196-419,199)
        "part-0000419200.parquet",  # 419,200-419,202 (file 419,200-419,203)
    }
    # A bounded run (--max-blocks 1, as a CronJob might) four times: files are read back and extended; same bytes.
    for _ in range(len(blocks)):
        _, report = export(s3, "stepped", blocks, tip=tip, partition_blocks=100, file_blocks=4, max_blocks=1)
        assert report.blocks == 1
    stepped = Store(whole.fs, BUCKET, "stepped")
    assert objects(stepped) == objects(whole)
    # Fetched and converted one block at a time (less memory): same bytes.
    small, _ = export(s3, "small-batches", blocks, tip=tip, partition_blocks=100, file_blocks=4, batch_blocks=1)
    assert objects(small) == objects(whole)
    # Nothing left: a further run writes nothing.
    again, report = export(s3, "whole", blocks, tip=tip, partition_blocks=100, file_blocks=4)
    assert report.blocks == 0 and objects(again) == objects(whole)
    # Another file width than the recorded one is refused.
    with pytest.raises(ValueError, match="4 per file"):
        export(s3, "whole", blocks, tip=tip + 1, partition_blocks=100, file_blocks=2)


def test_a_run_stopped_after_writing_files_but_before_its_state_redoes_the_batch(s3: str) -> None:
    blocks = segment("nu5")
    tip = max(blocks) + 100
    reference, _ = export(s3, "crash-reference", blocks, tip=tip)
    # A first bounded run leaves the first file (1,687,106-1,687,107) holding 1,687,106 only.
    crashed, _ = export(s3, "crash", blocks, tip=tip, max_blocks=1)
    original = crashed.write_state

    def die_before_recording(state: Any) -> None:
        raise KeyboardInterrupt("the pod was stopped")

    # The next run rewrites that file with 1,687,107 added, then stops before recording it.
    crashed.write_state = die_before_recording  # type: ignore[method-assign]
    with serve_rpc(FakeZebra(blocks, tip)) as url, pytest.raises(KeyboardInterrupt):
        run(NodeRpc(url, attempts=1), crashed, Settings("mainnet", 2, start_height=1_687_106, finality_depth=100))
    crashed.write_state = original  # type: ignore[method-assign]
    assert crashed.read_state().next_height == 1_687_107  # type: ignore[union-attr]
    blocks_file = "blocks/height_range=0001687106-0001687107/part-0001687106.parquet"
    assert len(objects(crashed)[blocks_file]) > 0
    con = duckdb.connect()
    rows = con.execute("select height from read_parquet(?)", [_local(crashed, blocks_file)]).fetchall()
    assert rows == [(1_687_106,), (1_687_107,)]  # 1,687,107 is in the file, not in the state
    # The resumed run must not duplicate 1,687,107's rows: the same objects as an uninterrupted export.
    resumed, _ = export(s3, "crash", blocks, tip=tip, batch_blocks=1)
    assert objects(resumed) == objects(reference)


def _local(store: Store, key: str) -> str:
    path = Path(tempfile.mkdtemp()) / "file.parquet"
    path.write_bytes(objects(store)[key])
    return str(path)


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
    with pytest.raises(ValueError, match="--finality-depth 99"):
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
            (
                ["--destination", f"s3://{BUCKET}/cli", "--partition-blocks", "100", "--file-blocks", "30"],
                "--file-blocks",
            ),
            (["--destination", f"s3://{BUCKET}/cli", "--rpc-cookie-file", str(tmp_path / "none")], "--rpc-cookie"),
        ]
        for flags, named in bad:
            assert cli.main(base + flags) == 2
            assert named in capsys.readouterr().err
        store = Store(s3_filesystem(s3, "us-east-1"), BUCKET, "cli")
        assert objects(store) == {}
        assert cli.main([*base, "--destination", f"s3://{BUCKET}/cli", "--partition-blocks", "100"]) == 0
        assert "exported 2 blocks (1-2)" in capsys.readouterr().out
        # A node on another network than --network is refused, nothing written.
        assert cli.main([*base, "--destination", f"s3://{BUCKET}/cli-testnet", "--network", "testnet"]) == 2
        assert "chain 'main'" in capsys.readouterr().err
        assert objects(Store(store.fs, BUCKET, "cli-testnet")) == {}
        # The recorded settings are the export's: another partition width is refused, nothing written.
        before = objects(store)
        assert cli.main([*base, "--destination", f"s3://{BUCKET}/cli", "--partition-blocks", "200"]) == 2
        assert "Fix" in capsys.readouterr().err and objects(store) == before
    con = duck(store, tmp_path)
    # Block 1 pays the founders' reward to t3Vz22vK5z2LcKEdg16Yv4FFneEL1zg9ojd (zebrad's own answer, vendored).
    assert con.execute(
        "select value, script_type, address from transparent_outputs where height = 1 order by output_index"
    ).fetchall() == [(50_000, "p2pk", None), (12_500, "p2sh", "t3Vz22vK5z2LcKEdg16Yv4FFneEL1zg9ojd")]


def v6_block() -> tuple[bytes, list[bytes]]:
    """A v6 (NU6.3) block derived from real Mainnet block 1,687,107 — no real v6 vector exists: its Orchard
    transaction turned into v6 (header, version group id 0xD884B698 from Zebra v6.3.0
    zebra-chain/src/parameters/transaction.rs) with a copy of its Orchard bundle as the Ironwood bundle, which v6
    appends in the same layout (zebra-chain/src/transaction/serialize.rs); the header's Merkle root recomputed over
    ids where the v6 one is the node's word. Returns the block and the ids a node would list (internal order)."""
    raw = raw_block("block-main-1-687-107.bin.xz")
    block = read_block(raw)
    index, tx = next((i, t) for i, t in enumerate(block.transactions) if t.orchard.actions)
    bundle_start = tx.raw.index(tx.orchard.actions[0].body) - 1  # nActionsOrchard: one byte for two actions
    v6 = (6 | 1 << 31).to_bytes(4, "little") + (0xD884B698).to_bytes(4, "little") + tx.raw[8:] + tx.raw[bundle_start:]
    body = raw[block.header_end :].replace(tx.raw, v6)
    ids = [txid(t) or b"" for t in block.transactions]
    ids[index] = hashlib.sha256(b"the node's id for the v6 transaction").digest()
    header = raw[:36] + merkle_root(ids) + raw[68 : block.header_end]
    return header + body, ids


def test_a_v6_block_exports_ironwood_and_takes_checked_ids_from_the_node(s3: str, tmp_path: Path) -> None:
    raw, ids = v6_block()
    parsed = read_block(raw)
    (v6,) = [t for t in parsed.transactions if t.version == 6]
    assert v6.ironwood.actions == v6.orchard.actions and v6.ironwood.value_balance == v6.orchard.value_balance
    node = FakeZebra({5: raw}, tip=105, txids={5: [i[::-1].hex() for i in ids]})
    store = Store(s3_filesystem(s3, "us-east-1"), BUCKET, "v6")
    with serve_rpc(node) as url:
        run(NodeRpc(url, attempts=1), store, Settings("mainnet", 100, start_height=5, finality_depth=100))
    assert ("getblock", ["5", 1]) in node.requests
    con = duck(store, tmp_path)
    # Two Ironwood actions, each joined to its transaction, which carries the bundle's value balance.
    assert con.execute("select count(*), min(ironwood_value_balance) from ironwood_actions a join transactions t "
                       "using (height, txid)").fetchone() == (2, v6.orchard.value_balance)  # fmt: skip
    assert con.execute("select count(*) from orchard_actions").fetchone() == (2,)
    # The v6 transaction's id is the node's.
    v6_index = parsed.transactions.index(v6)
    assert con.execute("select txid from transactions where version = 6").fetchone() == (ids[v6_index][::-1].hex(),)
    assert con.execute("select ironwood_action_count, ironwood_value_balance from blocks").fetchone() == (
        2,
        v6.orchard.value_balance,
    )
    # A node whose ids do not hash to the header's root, or disagree with a computed id, is not believed.
    for wrong, reason in ((v6_index, "Merkle root"), (0, "differ from the computed")):
        bad = [i[::-1].hex() for i in ids]
        bad[wrong] = "00" * 32
        node = FakeZebra({5: raw}, tip=105, txids={5: bad})
        with serve_rpc(node) as url, pytest.raises(ChainMismatchError, match=reason):
            run(
                NodeRpc(url, attempts=1),
                Store(store.fs, BUCKET, f"v6-bad-{wrong}"),
                Settings("mainnet", 100, start_height=5, finality_depth=100),
            )


def test_the_largest_testnet_block_exports_with_testnet_addresses(s3: str, tmp_path: Path) -> None:
    raw = raw_block("block-test-0-141-042.bin.xz")  # 1.9 MB, v1 and v2 transactions, 20 Sprout JoinSplits
    parsed = read_block(raw)
    node = FakeZebra({141_042: raw}, tip=141_142, network="testnet")
    store = Store(s3_filesystem(s3, "us-east-1"), BUCKET, "testnet")
    with serve_rpc(node) as url:
        run(NodeRpc(url, attempts=1), store, Settings("testnet", 10_000, start_height=141_042, finality_depth=100))
    con = duck(store, tmp_path)
    assert con.execute(
        "select size, transaction_count, joinsplit_count, sprout_value_balance from blocks"
    ).fetchone() == (
        len(raw),
        len(parsed.transactions),
        20,
        sum(t.sprout_value_balance for t in parsed.transactions),
    )
    addresses = [
        r[0] for r in con.execute("select address from transparent_outputs where address is not null").fetchall()
    ]
    assert addresses and all(a.startswith(("tm", "t2")) for a in addresses)
