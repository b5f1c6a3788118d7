"""Single-process checks of the shuffle's pieces: cutting by destination (every path) and the message format."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from deeprc.data.ipc import from_bytes
from deeprc.data.shuffle import _pack, _unpack, split_by_destination


def _tables(n: int) -> dict[str, pa.Table]:
    rng = np.random.default_rng(n)
    nums = pa.table({"i": pa.array(rng.integers(-5, 5, n), pa.int16()), "f": pa.array(rng.random(n), pa.float32()),
                     "b": pa.array(rng.random(n) < 0.5), "u": pa.array(rng.integers(0, 9, n), pa.uint64())})
    nulls = pa.array([None if v % 3 == 0 else int(v) for v in rng.integers(0, 9, n)], pa.int64())
    numeric = nums.append_column("n", nulls).replace_schema_metadata({b"origin": b"test"})
    mixed = numeric.append_column("s", pa.array([None if v == 0 else "x" * int(v) for v in rng.integers(0, 4, n)]))
    return {"numeric": pa.concat_tables([numeric.slice(0, n // 2), numeric.slice(n // 2)]), "mixed": mixed}


@pytest.mark.parametrize("kind", ["numeric", "mixed"])
@pytest.mark.parametrize("nparts", [1, 2, 3, 4, 5, 7])
@pytest.mark.parametrize("n", [0, 1, 257])
def test_split_by_destination_keeps_order_schema_and_every_row(kind, nparts, n):
    """Polars filters (numeric, <= 4 parts), Arrow filters (strings) and argsort + take (> 4 parts) agree."""
    table = _tables(n)[kind]
    dest = np.random.default_rng(nparts).integers(0, nparts, n).astype(np.uint16)
    if n > 10:
        dest[dest == nparts - 1] = 0  # an empty piece
    pieces = split_by_destination(table, dest, nparts)
    assert len(pieces) == nparts
    for d, piece in enumerate(pieces):
        assert piece.schema.equals(table.schema, check_metadata=True)
        assert piece.to_pylist() == table.filter(pa.array(dest == d)).to_pylist()


def test_pack_round_trip_of_several_tables_with_an_empty_one():
    tables = [_tables(50)["mixed"], _tables(0)["numeric"], _tables(7)["numeric"]]
    parts = _unpack(memoryview(_pack(tables)))
    assert len(parts) == 3
    for part, table in zip(parts, tables):
        got = from_bytes(part)
        assert got.equals(table) and got.schema.equals(table.schema, check_metadata=True)
