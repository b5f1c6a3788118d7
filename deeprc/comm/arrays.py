"""Numpy/torch/number conversion for host-buffer backends (kept thin: no copy for contiguous numpy)."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from deeprc.comm.base import is_torch_tensor
from deeprc.errors import DeepRCError

# dtypes MPI has no predefined type for: reduce them in a wider type.
_WIDEN = {np.dtype(np.float16): np.dtype(np.float32)}


def to_host(x: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    """A contiguous numpy array for ``x`` and a function turning a result array back into x's type."""
    if type(x) is np.ndarray:
        arr = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        wide = _WIDEN.get(arr.dtype)
        if wide is None:
            return arr, _same
        dtype = arr.dtype
        return arr.astype(wide), lambda out: out.astype(dtype) if out.dtype == wide else out
    if is_torch_tensor(x):
        return _torch_to_host(x)
    if isinstance(x, (bool, int, float, complex, np.generic)):
        kind = type(x)
        arr = np.asarray(x).reshape(1)
        if isinstance(x, np.generic):
            return arr, lambda out: out[0]
        return arr, lambda out: out[0].item() if out.dtype.kind == "f" and kind is int else kind(out[0].item())
    if isinstance(x, np.ndarray):  # subclasses
        return to_host(np.asarray(x))
    raise DeepRCError(
        f"deeprc.comm allreduce: cannot reduce a {type(x).__name__}. Fix: pass a numpy array, "
        f"a torch tensor or a number (use allgather for other Python objects)."
    )


def _same(out: np.ndarray) -> np.ndarray:
    return out


def _torch_to_host(t: Any) -> tuple[np.ndarray, Callable[[np.ndarray], Any]]:
    import torch

    dtype, device = t.dtype, t.device
    src = t.detach()
    if dtype in (torch.bfloat16, torch.float16):
        src = src.float()
    arr = src.cpu().contiguous().numpy()

    def back(out: np.ndarray) -> Any:
        res = torch.from_numpy(out)
        if res.dtype != dtype and res.is_floating_point() and torch.empty((), dtype=dtype).is_floating_point():
            res = res.to(dtype)
        return res.to(device) if device.type != "cpu" else res

    return arr, back


def mean_of(total: np.ndarray, size: int) -> np.ndarray:
    """Divide a sum by the rank count; integer sums become float64."""
    if total.dtype.kind in "fc":
        total /= size
        return total
    return total / size
