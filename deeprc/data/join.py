"""Distributed join: hash-shuffle both sides on the keys, then join each rank's pieces locally."""

from __future__ import annotations

from typing import Any, Sequence

import pyarrow as pa

from deeprc.data.kernels import JOIN_TYPES, local_join
from deeprc.data.shuffle import hash_shuffle_many
from deeprc.data.types import common_type
from deeprc.errors import DeepRCError, config_error



def _cast_keys(table: pa.Table, keys: Sequence[str], types: dict[str, pa.DataType]) -> pa.Table:
    for key in keys:
        if not table.schema.field(key).type.equals(types[key]):
            idx = table.schema.get_field_index(key)
            table = table.set_column(idx, key, table.column(key).cast(types[key]))
    return table


def check_keys(left: pa.Schema, right: pa.Schema, on: Sequence[str], left_src: str, right_src: str) -> dict[str, pa.DataType]:
    """Each key must exist on both sides with comparable types; returns the type each key is joined in."""
    types = {}
    for key in on:
        for schema, src, side in ((left, left_src, "left"), (right, right_src, "right")):
            if key not in schema.names:
                raise config_error(src, key, f"join key '{key}' is absent from the {side} table "
                                   f"(its columns: {', '.join(schema.names)})",
                                   "pass on= with columns present in both tables, or rename with with_column/select")
        common = common_type(left.field(key).type, right.field(key).type)
        if common is None:
            raise config_error(right_src, key, f"join key '{key}' is {left.field(key).type} on the left "
                               f"({left_src}) but {right.field(key).type} on the right",
                               "cast one side so the key columns have the same type")
        types[key] = common
    return types


def distributed_join(comm: Any, left: pa.Table, right: pa.Table, on: Sequence[str], how: str,
                     suffixes: tuple[str, str], left_src: str, right_src: str) -> pa.Table:
    """Join two partitioned tables so that every matching pair meets on one rank."""
    if how not in JOIN_TYPES:
        raise DeepRCError(f"join how='{how}' is not supported. Fix: use one of {', '.join(JOIN_TYPES)}.")
    types = check_keys(left.schema, right.schema, on, left_src, right_src)
    left, right = _cast_keys(left, on, types), _cast_keys(right, on, types)
    left, right = hash_shuffle_many(comm, [left, right], on)
    return local_join(left, right, on, how, suffixes)
