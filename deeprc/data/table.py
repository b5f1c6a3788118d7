"""`DTable`: one Arrow partition per rank on a DeepRC communicator, with distributed operators."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

import deeprc.data.io as _io
from deeprc.data._comm import allreduce_int, collective, resolve_comm
from deeprc.data.backends import resolve_backend
from deeprc.data.groupby import check_columns, distributed_groupby, normalise_spec
from deeprc.data.ipc import from_bytes, to_bytes
from deeprc.data.join import check_keys, distributed_join
from deeprc.data.shuffle import hash_shuffle
from deeprc.data.sort import distributed_sort
from deeprc.errors import DeepRCError, config_error


def _as_list(value: str | Sequence[str]) -> list[str]:
    return [value] if isinstance(value, str) else list(value)


class DTable:
    """A distributed table: this rank's `pa.Table` plus the communicator that joins the ranks.

    Every method that moves rows between ranks is collective: all ranks must call it, in the same order.
    """

    def __init__(self, table: pa.Table, comm: Any = None, *, source: str = "<table>", backend: str = "auto") -> None:
        self.comm = resolve_comm(comm)
        self._table = table
        self.source = source
        self.backend = resolve_backend(backend, self.comm)

    # construction -------------------------------------------------------------------------
    @classmethod
    def from_arrow(cls, table: pa.Table, comm: Any = None, *, source: str = "<arrow table>",
                   backend: str = "auto", check_schema: bool = True) -> "DTable":
        """Wrap this rank's partition; with `check_schema` every rank must hold the same column names."""
        comm = resolve_comm(comm)
        if check_schema and comm.size > 1:
            schemas = comm.allgather(table.schema.serialize().to_pybytes())

            def check() -> None:
                names = [pa.ipc.read_schema(pa.py_buffer(s)).names for s in schemas]
                for rank, theirs in enumerate(names):
                    if theirs != names[0]:
                        raise config_error(source, None, f"rank {rank}'s partition has columns {theirs} "
                                           f"but rank 0's has {names[0]}",
                                           "give every rank's partition the same columns in the same order")

            collective(comm, check)
            table = _unify_partition_types(comm, table, [pa.ipc.read_schema(pa.py_buffer(s)) for s in schemas])
        return cls(table, comm, source=source, backend=backend)

    @classmethod
    def read_parquet(cls, paths: str | os.PathLike | Sequence[str | os.PathLike], comm: Any = None, *,
                     columns: Sequence[str] | None = None, backend: str = "auto") -> "DTable":
        """Read Parquet files, globs or folders; each rank reads its share of the row groups."""
        comm = resolve_comm(comm)
        table, source = _io.read_parquet(paths, comm, columns)
        return cls(table, comm, source=source, backend=backend)

    @classmethod
    def read_csv(cls, paths: str | os.PathLike | Sequence[str | os.PathLike], comm: Any = None, *,
                 column_types: Mapping[str, pa.DataType] | None = None, delimiter: str | None = None,
                 backend: str = "auto", balance: bool = True) -> "DTable":
        """Read CSV files, globs or folders; each rank parses whole files (its share of them).

        With fewer files than ranks and `balance`, the rows are then spread evenly over the ranks.
        """
        comm = resolve_comm(comm)
        table, source, nfiles = _io.read_csv(paths, comm, dict(column_types or {}), delimiter)
        out = cls(table, comm, source=source, backend=backend)
        return out.rebalance() if balance and nfiles < comm.size else out

    @staticmethod
    def concat(tables: Sequence["DTable"]) -> "DTable":
        """Stack the partitions of several tables rank by rank (columns matched by name, types promoted)."""
        if not tables:
            raise DeepRCError("DTable.concat needs at least one table. Fix: pass a non-empty list.")
        first = tables[0]
        try:
            local = pa.concat_tables([t._table for t in tables], promote_options="default")
        except (pa.ArrowInvalid, pa.ArrowTypeError) as exc:
            raise DeepRCError(f"DTable.concat of {', '.join(t.source for t in tables)} failed: {exc}. "
                              "Fix: give the tables the same column names and compatible types.") from exc
        return first._derive(local, source="concat(" + ", ".join(t.source for t in tables) + ")")

    def _derive(self, table: pa.Table, source: str | None = None) -> "DTable":
        out = DTable.__new__(DTable)
        out.comm, out._table, out.source, out.backend = self.comm, table, source or self.source, self.backend
        return out

    # inspection ---------------------------------------------------------------------------
    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    @property
    def column_names(self) -> list[str]:
        return self._table.column_names

    @property
    def local_rows(self) -> int:
        """Rows in this rank's partition."""
        return self._table.num_rows

    @property
    def num_rows(self) -> int:
        """Rows across all ranks (collective)."""
        return allreduce_int(self.comm, self._table.num_rows)

    def to_arrow(self) -> pa.Table:
        """This rank's partition."""
        return self._table

    def gather(self, root: int = 0) -> pa.Table | None:
        """All partitions concatenated in rank order on `root`; None elsewhere (collective)."""
        parts = self.gather_partitions(root)
        return None if parts is None else pa.concat_tables(parts)

    def gather_partitions(self, root: int = 0) -> list[pa.Table] | None:
        """Every rank's partition, as a list in rank order, on `root`; None elsewhere (collective)."""
        if self.comm.size == 1:
            return [self._table]
        received = self.comm.gather(to_bytes(self._table), root=root)
        if self.comm.rank != root:
            return None
        return [from_bytes(b).cast(self.schema) for b in received]

    def write_parquet(self, folder: str | os.PathLike) -> Path:
        """Write this rank's partition to FOLDER/part-<rank>.parquet; returns when every rank has written."""
        return collective(self.comm, lambda: _io.write_parquet(self._table, folder, self.comm.rank, self.comm.size))

    def __repr__(self) -> str:
        return (f"DTable(rank {self.comm.rank}/{self.comm.size}, local_rows={self.local_rows}, "
                f"columns={self.column_names}, backend={self.backend.name})")

    # local operators ----------------------------------------------------------------------
    def _check_columns(self, cols: Sequence[str], what: str) -> None:
        for col in cols:
            if col not in self._table.column_names:
                raise config_error(self.source, col, f"{what}: column '{col}' is not in the table "
                                   f"(its columns: {', '.join(self.column_names)})", "use an existing column name")

    def select(self, cols: str | Sequence[str]) -> "DTable":
        """Keep these columns, in this order."""
        cols = _as_list(cols)
        self._check_columns(cols, "select")
        return self._derive(self._table.select(cols))

    def filter(self, expr: pc.Expression) -> "DTable":
        """Keep the rows where the Arrow compute expression is true (e.g. `pc.field("x") > 0`)."""
        try:
            return self._derive(self._table.filter(expr))
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, KeyError) as exc:
            raise config_error(self.source, None, f"filter {expr} cannot run on this table ({exc})",
                               f"use columns and types that exist: {self.schema}") from exc

    def with_column(self, name: str, value: pc.Expression | Callable[[pa.Table], Any]) -> "DTable":
        """Add (or replace) column `name`, from an Arrow expression or a function of the local table."""
        table = self._table
        try:
            if isinstance(value, pc.Expression):
                column = ds.dataset(table).to_table(columns={name: value}).column(0) if table.num_rows else \
                    pa.array([], ds.dataset(table.slice(0, 0)).to_table(columns={name: value}).schema.field(0).type)
            else:
                column = value(table)
                if not isinstance(column, (pa.Array, pa.ChunkedArray)):
                    column = pa.array(np.asarray(column) if not isinstance(column, list) else column)
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise config_error(self.source, name, f"with_column cannot compute '{name}' ({exc})",
                               "use existing columns and matching types in the expression") from exc
        if len(column) != table.num_rows:
            raise config_error(self.source, name, f"with_column got {len(column)} values for {table.num_rows} rows",
                               "return one value per row of the local partition")
        if name in table.column_names:
            table = table.set_column(table.schema.get_field_index(name), name, column)
        else:
            table = table.append_column(name, column)
        return self._derive(table)

    # distributed operators ----------------------------------------------------------------
    def shuffle(self, keys: str | Sequence[str]) -> "DTable":
        """Hash-repartition so rows with equal keys share a rank (collective)."""
        keys = _as_list(keys)
        self._check_columns(keys, "shuffle")
        if self.backend.name == "cylon":
            return self._derive(self.backend.shuffle(self._table, keys))
        return self._derive(hash_shuffle(self.comm, self._table, keys))

    def join(self, other: "DTable", on: str | Sequence[str], how: str = "inner",
             suffixes: tuple[str, str] = ("", "_right")) -> "DTable":
        """Join with `other` on key columns (inner, left, right, outer); clashing columns get suffixes."""
        on = _as_list(on)
        if self.backend.name == "cylon":
            check_keys(self.schema, other.schema, on, self.source, other.source)
            return self._derive(self.backend.join(self._table, other._table, on, how, suffixes))
        out = distributed_join(self.comm, self._table, other._table, on, how, suffixes, self.source, other.source)
        return self._derive(out, source=f"join({self.source}, {other.source})")

    def sort(self, by: str | Sequence[str], ascending: bool | Sequence[bool] = True) -> "DTable":
        """Sort globally: every row on rank r sorts before every row on rank r+1 (nulls last)."""
        by = _as_list(by)
        self._check_columns(by, "sort")
        asc = [ascending] * len(by) if isinstance(ascending, bool) else list(ascending)
        if len(asc) != len(by):
            raise DeepRCError(f"sort got {len(by)} columns but {len(asc)} ascending flags. "
                              "Fix: pass one flag per column or a single bool.")
        if self.backend.name == "cylon":
            return self._derive(self.backend.sort(self._table, by, asc))
        return self._derive(distributed_sort(self.comm, self._table, by, asc))

    def groupby(self, keys: str | Sequence[str]) -> "GroupBy":
        """Group by key columns; finish with `.agg({"col": ["sum", "std", ...]})`."""
        return GroupBy(self, _as_list(keys))

    def distinct(self, cols: str | Sequence[str] | None = None) -> "DTable":
        """Distinct rows over `cols` (all columns when None); returns those columns only."""
        cols = self.column_names if cols is None else _as_list(cols)
        self._check_columns(cols, "distinct")
        if self.backend.name == "cylon":
            return self._derive(self.backend.distinct(self._table, cols))

        def dedupe(t: pa.Table) -> pa.Table:
            return t.group_by(cols, use_threads=False).aggregate([]).select(cols) if t.num_rows else t.select(cols)

        local = dedupe(self._table)
        if self.comm.size > 1:
            local = dedupe(hash_shuffle(self.comm, local, cols))
        return self._derive(local)

    def rebalance(self) -> "DTable":
        """Even out the rows per rank, keeping the global row order (collective)."""
        if self.comm.size == 1:
            return self
        counts = [int(c) for c in self.comm.allgather(self._table.num_rows)]
        total, start = sum(counts), sum(counts[: self.comm.rank])
        pieces = []
        for r in range(self.comm.size):
            lo, hi = total * r // self.comm.size, total * (r + 1) // self.comm.size
            a, b = max(lo, start), min(hi, start + self._table.num_rows)
            pieces.append(self._table.slice(a - start, max(0, b - a)) if b > a else self._table.slice(0, 0))
        from deeprc.data.shuffle import exchange

        return self._derive(exchange(self.comm, pieces, self.schema))


class GroupBy:
    """`t.groupby(keys)`: call `.agg(spec)` to get the aggregated `DTable`."""

    def __init__(self, table: DTable, keys: list[str]) -> None:
        self.table, self.keys = table, keys

    def agg(self, spec: Mapping[str, str | Sequence[str]]) -> DTable:
        """Aggregate: {"col": ["count", "sum", "mean", "min", "max", "std"]}; output columns `col_agg`."""
        t = self.table
        if t.backend.name == "cylon":
            check_columns(t.schema, self.keys, normalise_spec(spec), t.source)
            return t._derive(t.backend.groupby(t._table, self.keys, spec))
        return t._derive(distributed_groupby(t.comm, t._table, self.keys, spec, t.source))


def _unify_partition_types(comm: Any, table: pa.Table, schemas: list[pa.Schema]) -> pa.Table:
    """Cast this rank's partition to the type every rank agrees on (e.g. an empty rank's null columns)."""
    from deeprc.data.io import unify_file_schemas

    target = collective(comm, lambda: unify_file_schemas([(f"rank {r}'s partition", s) for r, s in enumerate(schemas)]))
    return table if table.schema.equals(target) else table.cast(target)
