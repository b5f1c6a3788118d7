"""The `cylon` backend: DTable operators mapped onto pycylon's DataFrame on a CylonEnv.

The CylonEnv is built from the same communicator (its mpi4py communicator when it has one), so a
pipeline stage keeps one set of ranks whichever engine runs. pycylon is not on PyPI: sites that
build Cylon get this path; everywhere else `backend="cylon"` raises a clear error.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import pyarrow as pa

from deeprc.errors import DeepRCError

_HOW = {"inner": "inner", "left": "left", "right": "right", "outer": "outer"}


def _import_pycylon() -> Any:
    try:
        import pycylon
    except ImportError as exc:
        raise DeepRCError(
            "dataframe backend 'cylon' was requested but pycylon cannot be imported here "
            f"({exc}). Fix: use backend='native' (or 'auto'), or run inside an image/site that "
            "builds Cylon from source (pycylon is not on PyPI; the PyPI package 'cylon' is unrelated)."
        ) from exc
    return pycylon


class CylonBackend:
    """Runs shuffle/join/sort/groupby/distinct through pycylon's distributed DataFrame ops."""

    name = "cylon"

    def __init__(self, comm: Any) -> None:
        self.pycylon = _import_pycylon()
        from deeprc.comm import cylon_env

        self.env = cylon_env(comm)

    def _df(self, table: pa.Table) -> Any:
        return self.pycylon.DataFrame(table)

    def _arrow(self, df: Any) -> pa.Table:
        return df.to_arrow()

    def shuffle(self, table: pa.Table, keys: Sequence[str]) -> pa.Table:
        ctable = self.pycylon.Table.from_arrow(self.env.context, table)
        return ctable.shuffle(list(keys)).to_arrow()

    def join(self, left: pa.Table, right: pa.Table, on: Sequence[str], how: str,
             suffixes: tuple[str, str]) -> pa.Table:
        df = self._df(left).merge(self._df(right), on=list(on), how=_HOW[how], suffixes=suffixes, env=self.env)
        return self._arrow(df)

    def sort(self, table: pa.Table, by: Sequence[str], ascending: Sequence[bool]) -> pa.Table:
        return self._arrow(self._df(table).sort_values(by=list(by), ascending=list(ascending), env=self.env))

    def groupby(self, table: pa.Table, keys: Sequence[str], spec: Mapping[str, Any]) -> pa.Table:
        agg = {col: ([a] if isinstance(a, str) else list(a)) for col, a in spec.items()}
        return self._arrow(self._df(table).groupby(list(keys), env=self.env).agg(agg))

    def distinct(self, table: pa.Table, cols: Sequence[str]) -> pa.Table:
        return self._arrow(self._df(table.select(list(cols))).drop_duplicates(env=self.env))
