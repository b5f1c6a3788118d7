"""Arrow type promotion shared by file reading and joins."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.types as pat


def common_type(a: pa.DataType, b: pa.DataType) -> pa.DataType | None:
    """A type both columns fit in without loss of meaning (compared or concatenated), or None."""
    if a.equals(b):
        return a
    if pat.is_null(a):
        return b
    if pat.is_null(b):
        return a
    if pat.is_integer(a) and pat.is_integer(b):
        return pa.int64()
    if (pat.is_integer(a) or pat.is_floating(a)) and (pat.is_integer(b) or pat.is_floating(b)):
        return pa.float64()
    if (pat.is_string(a) or pat.is_large_string(a)) and (pat.is_string(b) or pat.is_large_string(b)):
        return pa.large_string()
    if pat.is_timestamp(a) and pat.is_timestamp(b) and a.tz == b.tz:
        return pa.timestamp("ns", a.tz)
    return None
