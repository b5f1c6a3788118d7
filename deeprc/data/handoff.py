"""Hand a rank's partition to training: a torch Dataset/DataLoader and a tf.data Dataset.

Numeric columns without nulls become numpy views on the Arrow buffers (no copy); torch tensors are
made with `torch.from_numpy` on those views, so the only copy is the one the batch collation makes.
"""

from __future__ import annotations

import warnings
from typing import Any, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.types as pat

from deeprc.errors import config_error


def column_arrays(table: Any, cols: Sequence[str], source: str = "<table>") -> dict[str, np.ndarray]:
    """numpy arrays of the named columns: zero-copy views where Arrow allows (one chunk, no nulls)."""
    local = table.to_arrow() if hasattr(table, "to_arrow") else table
    source = getattr(table, "source", source)
    out = {}
    for col in cols:
        if col not in local.column_names:
            raise config_error(source, col, f"column '{col}' is not in the table (its columns: "
                               f"{', '.join(local.column_names)})", "pass feature/target columns that exist")
        data = local.column(col)
        ty = data.type
        if not (pat.is_integer(ty) or pat.is_floating(ty) or pat.is_boolean(ty)):
            raise config_error(source, col, f"training hand-off needs numeric columns but '{col}' is {ty}",
                               "encode it as numbers first (with_column) or leave it out")
        if data.null_count:
            raise config_error(source, col, f"{data.null_count} missing values in '{col}'",
                               "handle them first with deeprc.data.timeseries.fill_missing")
        if data.num_chunks == 1 and not pat.is_boolean(ty):
            out[col] = data.chunk(0).to_numpy(zero_copy_only=True)
        else:
            out[col] = data.to_numpy()
    return out


def _matrix(arrays: dict[str, np.ndarray], cols: Sequence[str], dtype: Any) -> np.ndarray:
    """Columns as one (rows, len(cols)) array; a single column stays a zero-copy 1-D view reshaped."""
    if len(cols) == 1:
        a = arrays[cols[0]]
        return (a if a.dtype == dtype else a.astype(dtype)).reshape(-1, 1)
    return np.column_stack([arrays[c].astype(dtype, copy=False) for c in cols])


class ArrowTorchDataset:
    """A map-style torch Dataset over a partition: item i -> (features[i], targets[i]) as tensors."""

    def __init__(self, table: Any, features: Sequence[str], targets: Sequence[str], dtype: str = "float32") -> None:
        import torch

        features, targets = list(features), list(targets)
        arrays = column_arrays(table, features + targets)
        np_dtype = np.dtype(dtype)
        with warnings.catch_warnings():  # Arrow memory is read-only; the tensors are only read
            warnings.simplefilter("ignore", UserWarning)
            self.features = torch.from_numpy(_matrix(arrays, features, np_dtype))
            self.targets = torch.from_numpy(_matrix(arrays, targets, np_dtype))

    def __len__(self) -> int:
        return int(self.features.shape[0])

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        return self.features[i], self.targets[i]


def torch_dataset(table: Any, features: Sequence[str], targets: Sequence[str], dtype: str = "float32") -> Any:
    """A torch `Dataset` (subclass instance) over this rank's partition."""
    import torch.utils.data as tud

    class _Dataset(ArrowTorchDataset, tud.Dataset):
        pass

    return _Dataset(table, features, targets, dtype)


def torch_dataloader(table: Any, features: Sequence[str], targets: Sequence[str], batch_size: int = 64,
                     shuffle: bool = False, seed: int = 0, dtype: str = "float32", drop_last: bool = False) -> Any:
    """A DataLoader over this rank's partition (each rank trains on its own rows, as DDP expects)."""
    import torch
    from torch.utils.data import DataLoader

    generator = torch.Generator().manual_seed(seed)
    return DataLoader(torch_dataset(table, features, targets, dtype), batch_size=batch_size, shuffle=shuffle,
                      generator=generator, drop_last=drop_last)


def tf_dataset(table: Any, features: Sequence[str], targets: Sequence[str], batch_size: int = 64,
               shuffle: bool = False, seed: int = 0, dtype: str = "float32") -> Any:
    """A batched `tf.data.Dataset` of (features, targets) over this rank's partition."""
    import tensorflow as tf

    features, targets = list(features), list(targets)
    arrays = column_arrays(table, features + targets)
    np_dtype = np.dtype(dtype)
    x, y = _matrix(arrays, features, np_dtype), _matrix(arrays, targets, np_dtype)
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        ds = ds.shuffle(buffer_size=max(1, len(x)), seed=seed, reshuffle_each_iteration=True)
    return ds.batch(batch_size)


def to_arrow_table(x: Any) -> pa.Table:
    """A DTable's partition or a pa.Table, as a pa.Table."""
    return x.to_arrow() if hasattr(x, "to_arrow") else x
