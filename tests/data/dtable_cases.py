"""Hypothesis-generated DTable cases (serialised for the MPI runner) and their DuckDB references."""

from __future__ import annotations

import functools
import math
from typing import Any

import duckdb
import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deeprc.data.ipc import to_bytes

SCHEMA = pa.schema([("k", pa.int64()), ("g", pa.string()), ("v", pa.float64()), ("i", pa.int32()), ("s", pa.string())])
RIGHT = pa.schema([("k", pa.int64()), ("g", pa.string()), ("v", pa.float64()), ("r", pa.int64())])


def _rows(schema: pa.Schema, max_rows: int) -> st.SearchStrategy:
    keys = st.one_of(st.none(), st.integers(0, 4), st.just(0))   # small domain + extra weight on 0: skew
    groups = st.one_of(st.none(), st.sampled_from(["a", "b", "é", "longer string"]))
    floats = st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False))
    ints = st.one_of(st.none(), st.integers(-1000, 1000))
    text = st.one_of(st.none(), st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=5))
    by_name = {"k": keys, "g": groups, "v": floats, "i": ints, "s": text, "r": ints}
    row = st.tuples(*[by_name[f.name] for f in schema])
    # draw the length first so that long inputs are as common as short ones
    return st.integers(0, max_rows).flatmap(lambda n: st.lists(row, min_size=n, max_size=n))


def _table(schema: pa.Schema, rows: list[tuple]) -> pa.Table:
    return pa.table({f.name: pa.array([r[j] for r in rows], f.type) for j, f in enumerate(schema)}, schema=schema)


@st.composite
def _input(draw: Any, schema: pa.Schema = SCHEMA, max_rows: int = 30) -> tuple[bytes, list[int]]:
    rows = draw(_rows(schema, max_rows))
    # rank assignment: often all rows on one rank (empty partitions elsewhere), else spread
    assign = draw(st.one_of(st.just([0] * len(rows)), st.lists(st.integers(0, 5), min_size=len(rows), max_size=len(rows))))
    return to_bytes(_table(schema, rows)), assign


KEYSETS = [["k"], ["g"], ["k", "g"]]


OPS = ["shuffle", "join", "sort", "groupby", "distinct", "filter", "select", "with_column", "concat",
       "num_rows", "rebalance"]


@st.composite
def case_strategy(draw: Any, op: str) -> dict:
    tables = [draw(_input())]
    params: dict[str, Any] = {}
    if op == "shuffle":
        params["keys"] = draw(st.sampled_from(KEYSETS))
    elif op == "join":
        tables.append(draw(_input(RIGHT)))
        params["on"] = draw(st.sampled_from(KEYSETS))
        params["how"] = draw(st.sampled_from(["inner", "left", "right", "outer"]))
    elif op == "sort":
        params["by"] = draw(st.sampled_from([["k"], ["s"], ["v"], ["k", "g"], ["g", "v", "i"]]))
        params["ascending"] = draw(st.one_of(st.booleans(), st.lists(st.booleans(), min_size=len(params["by"]),
                                                                       max_size=len(params["by"]))))
    elif op == "groupby":
        params["keys"] = draw(st.sampled_from(KEYSETS))
        params["spec"] = draw(st.sampled_from([{"v": ["count", "sum", "mean", "min", "max", "std"]},
                                               {"i": ["count", "sum", "mean", "std"], "s": ["min", "max", "count"]},
                                               {"v": "std", "i": ["min", "max"]}]))
    elif op == "distinct":
        params["cols"] = draw(st.sampled_from([None, ["k"], ["g", "k"], ["s"]]))
    elif op == "filter":
        params["col"] = draw(st.sampled_from(["v", "i", "k"]))
        params["threshold"] = draw(st.integers(-10, 3))
    elif op == "select":
        params["cols"] = draw(st.sampled_from([["s", "k"], ["v"]]))
    elif op == "with_column":
        params["col"] = draw(st.sampled_from(["v", "i"]))
    elif op == "concat":
        tables.append(draw(_input()))
    return {"op": op, "tables": [t[0] for t in tables], "assign": [t[1] for t in tables], "params": params}


# operators whose code path depends on the local kernel or the exchange rounds (the only ones the
# extra kernel configurations run, to keep the number of cases per launch down)
KERNEL_OPS = {"join", "sort", "shuffle", "groupby", "distinct", "rebalance", "lags", "fill"}

SERIES = pa.schema([("sid", pa.string()), ("t", pa.int64()), ("x", pa.float64()), ("y", pa.int64())])
TS_OPS = ["lags", "rolling", "fill", "normalize"]


@st.composite
def _series_input(draw: Any, max_rows: int = 40) -> tuple[bytes, list[int]]:
    n = draw(st.integers(0, max_rows))
    sids = draw(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=n, max_size=n))
    xs = draw(st.lists(st.one_of(st.none(), st.floats(-100, 100, allow_nan=False)), min_size=n, max_size=n))
    ys = draw(st.lists(st.one_of(st.none(), st.integers(-50, 50)), min_size=n, max_size=n))
    times = draw(st.permutations(list(range(n))))   # unique times, rows in scrambled order
    assign = draw(st.lists(st.integers(0, 5), min_size=n, max_size=n))
    table = pa.table({"sid": sids, "t": [3 * x for x in times], "x": xs, "y": ys}, schema=SERIES)
    return to_bytes(table), assign


@st.composite
def ts_case_strategy(draw: Any, op: str) -> dict:
    data, assign = draw(_series_input())
    params: dict[str, Any] = {"id": draw(st.sampled_from(["sid", "sid", None])), "time": "t"}
    if op == "lags":
        params.update(cols=["x", "y"], lags=draw(st.sampled_from([[1], [1, 3], [2]])))
    elif op == "rolling":
        params.update(cols=["x"], windows=draw(st.sampled_from([[1], [2], [3, 2]])),
                      stats=draw(st.sampled_from([["mean", "std"], ["min", "max", "sum"]])))
    elif op == "fill":
        params.update(cols=["x"], strategy=draw(st.sampled_from(["drop", "zero", "ffill", "interpolate"])))
    elif op == "normalize":
        params.update(cols=["x", "y"], method=draw(st.sampled_from(["zscore", "minmax"])))
    return {"op": op, "tables": [data], "assign": [assign], "params": params}


def generate_cases(per_op: int) -> list[dict]:
    """`per_op` cases of every operator, the same ones every run (derandomised), numbered."""
    cases: list[dict] = []
    for op in OPS:
        @settings(max_examples=per_op, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(case_strategy(op))
        def collect(case: dict) -> None:
            cases.append(case)

        collect()
    for op in TS_OPS:
        @settings(max_examples=per_op, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(ts_case_strategy(op))
        def collect_ts(case: dict) -> None:
            cases.append(case)

        collect_ts()
    for i, case in enumerate(cases):
        case["id"] = i
    return cases


# --- DuckDB references --------------------------------------------------------------------

def _q(name: str) -> str:
    return '"' + name + '"'


@functools.lru_cache(maxsize=1)
def _connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET threads TO 1")
    return con


def reference(case: dict, inputs: list[pa.Table]) -> pa.Table | int | None:
    """What the case should give, computed by DuckDB on the gathered (whole) input."""
    con = _connection()
    a = inputs[0]
    con.register("a", a)
    if len(inputs) > 1:
        con.register("b", inputs[1])
    p, op = case["params"], case["op"]
    if op in ("shuffle", "rebalance"):
        return a
    if op == "join":
        on = p["on"]
        how = {"inner": "INNER", "left": "LEFT", "right": "RIGHT", "outer": "FULL OUTER"}[p["how"]]
        b = inputs[1]
        cols = [f"COALESCE(a.{_q(k)}, b.{_q(k)}) AS {_q(k)}" for k in on]
        cols += [f"a.{_q(c)} AS {_q(c)}" for c in a.column_names if c not in on]
        cols += [f"b.{_q(c)} AS {_q(c + ('_right' if c in a.column_names else ''))}" for c in b.column_names if c not in on]
        cond = " AND ".join(f"a.{_q(k)} = b.{_q(k)}" for k in on)
        return con.sql(f"SELECT {', '.join(cols)} FROM a {how} JOIN b ON {cond}").arrow().read_all()
    if op == "sort":
        asc = p["ascending"] if isinstance(p["ascending"], list) else [p["ascending"]] * len(p["by"])
        order = ", ".join(f"{_q(c)} {'ASC' if x else 'DESC'} NULLS LAST" for c, x in zip(p["by"], asc))
        return con.sql(f"SELECT * FROM a ORDER BY {order}").arrow().read_all()
    if op == "groupby":
        fn = {"count": "count", "sum": "sum", "mean": "avg", "min": "min", "max": "max", "std": "stddev_samp"}
        sel = [_q(k) for k in p["keys"]]
        for col, aggs in p["spec"].items():
            for agg in [aggs] if isinstance(aggs, str) else aggs:
                sel.append(f"{fn[agg]}({_q(col)}) AS {_q(col + '_' + agg)}")
        keys = ", ".join(_q(k) for k in p["keys"])
        return con.sql(f"SELECT {', '.join(sel)} FROM a GROUP BY {keys}").arrow().read_all()
    if op == "distinct":
        cols = ", ".join(_q(c) for c in (p["cols"] or a.column_names))
        return con.sql(f"SELECT DISTINCT {cols} FROM a").arrow().read_all()
    if op == "filter":
        return con.sql(f"SELECT * FROM a WHERE {_q(p['col'])} > {p['threshold']}").arrow().read_all()
    if op == "select":
        return con.sql(f"SELECT {', '.join(_q(c) for c in p['cols'])} FROM a").arrow().read_all()
    if op == "with_column":
        return con.sql(f"SELECT *, {_q(p['col'])} * 2 + 1 AS w FROM a").arrow().read_all()
    if op == "concat":
        return con.sql("SELECT * FROM a UNION ALL SELECT * FROM b").arrow().read_all()
    if op == "num_rows":
        return a.num_rows
    if op in TS_OPS:
        return _ts_reference(con, case)
    raise ValueError(op)


def _window(p: dict, frame: str) -> str:
    part = f"PARTITION BY {p['id']} " if p["id"] else ""
    return f"({part}ORDER BY t {frame})"


def _ts_reference(con: duckdb.DuckDBPyConnection, case: dict) -> Any:
    p, op = case["params"], case["op"]
    if op == "lags":
        sel = [f"LAG({c}, {k}) OVER {_window(p, '')} AS {c}_lag{k}" for c in p["cols"] for k in p["lags"]]
        return con.sql(f"SELECT *, {', '.join(sel)} FROM a").arrow().read_all()
    if op == "rolling":
        fn = {"mean": "avg", "std": "stddev_samp", "min": "min", "max": "max", "sum": "sum"}
        sel = []
        for c in p["cols"]:
            for w in p["windows"]:
                win = _window(p, f"ROWS BETWEEN {w - 1} PRECEDING AND CURRENT ROW")
                for stat in p["stats"]:
                    sel.append(f"CASE WHEN count({c}) OVER {win} = {w} THEN {fn[stat]}({c}::DOUBLE) OVER {win} END "
                               f"AS {c}_roll{w}_{stat}")
        return con.sql(f"SELECT *, {', '.join(sel)} FROM a").arrow().read_all()
    if op == "fill":
        strategy, rest = p["strategy"], "sid, t, y"
        if strategy == "drop":
            return con.sql("SELECT * FROM a WHERE x IS NOT NULL").arrow().read_all()
        if strategy == "zero":
            return con.sql(f"SELECT {rest}, COALESCE(x, 0) AS x FROM a").arrow().read_all()
        past = _window(p, "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW")
        if strategy == "ffill":
            return con.sql(f"SELECT {rest}, LAST_VALUE(x IGNORE NULLS) OVER {past} AS x FROM a").arrow().read_all()
        future = _window(p, "ROWS BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING")
        return con.sql(f"""
            WITH n AS (SELECT *, CASE WHEN x IS NOT NULL THEN t END AS tx,
                   LAST_VALUE(x IGNORE NULLS) OVER {past} AS px,
                   FIRST_VALUE(x IGNORE NULLS) OVER {future} AS nx FROM a),
            m AS (SELECT *, LAST_VALUE(tx IGNORE NULLS) OVER {past} AS pt,
                   FIRST_VALUE(tx IGNORE NULLS) OVER {future} AS nt FROM n)
            SELECT {rest}, CASE WHEN x IS NOT NULL THEN x
                   WHEN px IS NOT NULL AND nx IS NOT NULL THEN px + (nx - px) * (t - pt) / (nt - pt) END AS x
            FROM m""").arrow().read_all()
    if op == "normalize":
        sel = []
        for c in p["cols"]:
            if p["method"] == "zscore":
                spread = f"(SELECT CASE WHEN stddev_pop({c}) > 0 THEN stddev_pop({c}) ELSE 1 END FROM a)"
                sel.append(f"({c} - (SELECT avg({c}) FROM a)) / {spread} AS {c}")
            else:
                spread = f"(SELECT CASE WHEN max({c}) > min({c}) THEN max({c}) - min({c}) ELSE 1 END FROM a)"
                sel.append(f"({c} - (SELECT min({c}) FROM a)) / {spread} AS {c}")
        return con.sql(f"SELECT sid, t, {', '.join(sel)} FROM a").arrow().read_all()
    raise ValueError(op)


# --- comparison -----------------------------------------------------------------------------

def _sort_key(row: tuple) -> tuple:
    out = []
    for v in row:
        if v is None:
            out.append((0, ""))
        elif isinstance(v, float):
            out.append((1, round(v, 6)))
        elif isinstance(v, (int, bool)):
            out.append((1, float(v)))
        else:
            out.append((2, str(v)))
    return tuple(out)


def _same(x: Any, y: Any) -> bool:
    if x is None or y is None:
        return x is None and y is None
    if isinstance(x, float) or isinstance(y, float):
        return math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9)
    return x == y


def rows_of(table: pa.Table, columns: list[str]) -> list[tuple]:
    data = [table.column(c).to_pylist() for c in columns]
    return list(zip(*data)) if data else []


def assert_same_rows(got: pa.Table, want: pa.Table, context: str, ordered: bool = False) -> None:
    """Row-for-row equality (as multisets unless `ordered`), floats within 1e-9."""
    assert sorted(got.column_names) == sorted(want.column_names), f"{context}: columns {got.column_names} != {want.column_names}"
    cols = want.column_names
    g, w = rows_of(got, cols), rows_of(want, cols)
    assert len(g) == len(w), f"{context}: {len(g)} rows, DuckDB has {len(w)}"
    if not ordered:
        g, w = sorted(g, key=_sort_key), sorted(w, key=_sort_key)
    for a, b in zip(g, w):
        assert all(_same(x, y) for x, y in zip(a, b)), f"{context}: row {a} != DuckDB's {b}"


# --- file cases -----------------------------------------------------------------------------

def io_table(n: int, offset: int = 0) -> pa.Table:
    return pa.table({"k": pa.array([(offset + i) % 7 for i in range(n)], pa.int64()),
                     "v": pa.array([float(offset + i) for i in range(n)]),
                     "s": pa.array([f"row{offset + i}" for i in range(n)])})


def write_io_files(root: Any) -> Any:
    """good/: three Parquet files (several row groups); csv/: two CSV files; bad/: 'v' double vs string."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    for sub in ("good", "csv", "bad"):
        (root / sub).mkdir()
    for j, n in enumerate([25, 0, 40]):
        pq.write_table(io_table(n, 100 * j), root / "good" / f"f{j}.parquet", row_group_size=10)
    for j, n in enumerate([7, 12]):
        pacsv.write_csv(io_table(n, 100 * j), root / "csv" / f"c{j}.csv")
    pq.write_table(io_table(5), root / "bad" / "a.parquet")
    pq.write_table(io_table(5).set_column(1, "v", pa.array(["x"] * 5)), root / "bad" / "b.parquet")
    return root


def io_cases(root: Any) -> list[dict]:
    """Cases the runner executes on files; `expect` is the reference or the error's key phrases."""
    good = str(root / "good")
    return [
        {"op": "io_read", "params": {"paths": good}, "expect": "good"},
        {"op": "io_read", "params": {"paths": str(root / "good" / "f*.parquet")}, "expect": "good"},
        {"op": "io_read", "params": {"paths": str(root / "csv"), "format": "csv"}, "expect": "csv"},
        {"op": "io_write", "params": {"paths": good, "out": str(root / "out")}, "expect": "good"},
        {"op": "io_read", "params": {"paths": str(root / "bad")},
         "expect": ["b.parquet", "'v'", "schema mismatch"]},
        {"op": "io_read", "params": {"paths": [good, str(root / "nope.parquet")]},
         "expect": ["nope.parquet", "does not exist"]},
        {"op": "io_read", "params": {"paths": str(root / "csv" / "missing.csv"), "format": "csv"},
         "expect": ["missing.csv", "does not exist"]},
        {"op": "io_join_missing_key", "params": {"paths": good, "on": ["k", "nope"]},
         "expect": ["f0.parquet", "'nope'", "absent"]},
        {"op": "io_agg_text", "params": {"paths": good, "keys": ["k"], "spec": {"s": ["mean"]}},
         "expect": ["f0.parquet", "'s'", "numeric"]},
    ]
