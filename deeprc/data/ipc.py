"""Arrow tables to and from IPC stream bytes, the unit every exchange between ranks carries."""

from __future__ import annotations

import pyarrow as pa


def to_bytes(table: pa.Table) -> bytes:
    """Serialise a table (schema included, so empty tables travel too) as one IPC stream."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_bytes(data: bytes | bytearray | memoryview) -> pa.Table:
    """Read one IPC stream back; the table's buffers point into `data` (no copy)."""
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
