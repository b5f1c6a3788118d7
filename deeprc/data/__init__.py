"""Distributed Arrow tables on the DeepRC communicator (the Cylon model).

Every rank holds one Arrow partition; operators run local kernels (DuckDB, polars, Arrow/Acero)
and move rows only through the communicator (alltoallv of Arrow IPC buffers)::

    comm = deeprc.comm.init()
    t = DTable.read_parquet("data/", comm)                     # each rank reads its share
    j = t.join(other, on=["site", "day"], how="left")          # hash shuffle + local join
    g = j.groupby("site").agg({"flow": ["mean", "std"]})       # partials + shuffle + exact combine
    s = g.sort("flow_mean", ascending=False)                   # sample sort, ordered across ranks
    s.write_parquet("out/")                                    # out/part-<rank>.parquet

Time-series preparation lives in :mod:`deeprc.data.timeseries`, hand-off to torch / tf.data in
:mod:`deeprc.data.handoff`. ``backend="cylon"`` runs the operators on pycylon where it is built.
"""

from deeprc.data.backends import cylon_available
from deeprc.data.table import DTable, GroupBy

__all__ = ["DTable", "GroupBy", "cylon_available"]
