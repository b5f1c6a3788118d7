"""Distributed Arrow tables on the DeepRC communicator (the Cylon model), with time-series prep
(`deeprc.data.timeseries`) and hand-off to torch / tf.data (`deeprc.data.handoff`)."""

from deeprc.data.backends import cylon_available
from deeprc.data.table import DTable, GroupBy

__all__ = ["DTable", "GroupBy", "cylon_available"]
