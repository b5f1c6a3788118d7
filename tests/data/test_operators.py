"""Every DTable operator on 1, 2 and 3 real MPI ranks, row for row against DuckDB on the whole input."""

from __future__ import annotations

import functools
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from dtable_cases import KERNEL_OPS, OPS, TS_OPS, assert_same_rows, rows_of

from deeprc.data.ipc import from_bytes
from deeprc.data.sort import compare_rows



def _check_case(case: dict, result: dict, ranks: int, want: object) -> None:
    context = f"case {case['id']} ({case['op']} {case['params']}) on {ranks} ranks"
    assert result["error"] is None, f"{context}: {result['error']}"
    if case["op"] == "num_rows":
        assert result["value"] == want, context
        return
    parts = [from_bytes(b) for b in result["parts"]]
    assert len(parts) == ranks, context
    got = pa.concat_tables(parts)
    assert isinstance(want, pa.Table)
    assert_same_rows(got, want, context)
    op, p = case["op"], case["params"]
    if op == "sort":
        # gathered in rank order, the key columns must come out exactly in DuckDB's order
        assert rows_of(got, p["by"]) == rows_of(want, p["by"]), f"{context}: not globally ordered"
    if op in ("shuffle", "distinct") or (op == "groupby"):
        keys = p.get("keys") or p.get("cols") or got.column_names
        owner: dict = {}
        for rank, part in enumerate(parts):
            for row in rows_of(part, keys):
                assert owner.setdefault(row, rank) == rank, f"{context}: key {row} on ranks {owner[row]} and {rank}"
    if op == "rebalance":
        sizes = [p_.num_rows for p_ in parts]
        assert max(sizes) - min(sizes) <= 1, f"{context}: unbalanced {sizes}"


CONFIGS = [(1, "auto"), (2, "auto"), (3, "auto"), (2, "arrow"), (2, "polars")]
CONFIG_IDS = ["1rank", "2ranks", "3ranks", "2ranks-arrow", "2ranks-polars-chunked"]


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("op", OPS + TS_OPS)
def test_operator_matches_duckdb(op: str, config: tuple, dtable_cases: list[dict], dtable_results: dict,
                                 dtable_references: dict) -> None:
    ranks = config[0]
    if config[1] != "auto" and op not in KERNEL_OPS:
        pytest.skip(f"{op} does not depend on the local kernel: checked in the default configurations")
    cases = [c for c in dtable_cases if c["op"] == op]
    assert cases, f"hypothesis generated no {op} case: raise CASES_PER_OP"
    for case in cases:
        _check_case(case, dtable_results[config][case["id"]], ranks, dtable_references[case["id"]])


def test_cases_cover_the_hard_shapes(dtable_cases: list[dict]) -> None:
    """The generated inputs include nulls, duplicate keys, empty partitions and non-ASCII strings."""
    dtable_cases = [c for c in dtable_cases if c["op"] in OPS]
    tables = [from_bytes(b) for c in dtable_cases for b in c["tables"]]
    assert any(t.column("k").null_count for t in tables)
    assert any(t.num_rows > len(set(t.column("k").to_pylist())) for t in tables)
    assert any(t.num_rows and set(a) == {0} for c in dtable_cases for t, a in zip(map(from_bytes, c["tables"]), c["assign"]))
    assert any(t.num_rows == 0 for t in tables)
    assert any(any(s and not s.isascii() for s in t.column("g").to_pylist() if s) for t in tables)


def test_compare_rows_matches_arrow_order() -> None:
    """The splitter comparison agrees with Arrow's own sort (nulls last in both directions)."""
    t = pa.table({"a": [3, None, 1, 2, 2], "b": ["x", "y", None, "a", "b"]})
    for asc in ([True, True], [False, True], [True, False], [False, False]):
        arrow = t.sort_by([(c, "ascending" if x else "descending") for c, x in zip("ab", asc)])
        rows = rows_of(t, ["a", "b"])
        mine = sorted(rows, key=functools.cmp_to_key(lambda x, y: compare_rows(x, y, asc)))
        assert mine == rows_of(arrow, ["a", "b"]), asc


def _read_folder(folder: Path, fmt: str) -> pa.Table:
    files = sorted(folder.glob("*." + fmt))
    if fmt == "csv":
        return pa.concat_tables([pacsv.read_csv(f) for f in files])
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
def test_files_and_errors_on_real_ranks(config: tuple, dtable_cases: list[dict], dtable_results: dict,
                                         io_folder: Path) -> None:
    """Reading shares, Parquet parts per rank, and the same clear error on every rank for bad input."""
    ranks = config[0]
    if config[1] != "auto":
        pytest.skip("file reading does not depend on the local kernel: checked in the default configurations")
    for case in [c for c in dtable_cases if c["op"].startswith("io_")]:
        result = dtable_results[config][case["id"]]
        context = f"{case['op']} {case['params']} on {ranks} ranks"
        if isinstance(case["expect"], list):
            assert result["error"] and result["error"].startswith("DeepRCError"), f"{context}: {result}"
            for phrase in case["expect"]:
                assert phrase in result["error"], f"{context}: {phrase!r} not in {result['error']}"
            continue
        assert result["error"] is None, f"{context}: {result['error']}"
        parts = [from_bytes(b) for b in result["parts"]]
        want = _read_folder(io_folder / case["expect"], "csv" if case["expect"] == "csv" else "parquet")
        assert_same_rows(pa.concat_tables(parts), want, context)
        if ranks > 1 and case["expect"] in ("good", "csv"):
            assert all(p.num_rows for p in parts), f"{context}: a rank got no rows: {[p.num_rows for p in parts]}"
        if case["op"] == "io_write":
            out = io_folder / f"out-{ranks}-{config[1]}"
            assert sorted(x.name for x in out.iterdir()) == [f"part-{r}.parquet" for r in range(ranks)]
