"""Pydantic validation errors as DeepRC's one-paragraph errors (file, key path, fix).

Shared by the site schema (deeprc.sites) and the image recipe (deeprc.images.recipe), so every
YAML file DeepRC reads reports a bad key or value the same way.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from deeprc.errors import DeepRCError, config_error


def key_path(loc: tuple[Any, ...]) -> str:
    """`("steps", 0, "args")` -> `steps[0].args`; `("partitions", "gpu", "nodes")` -> `partitions.gpu.nodes`."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class whose fields live at `loc` inside `root` (dict keys and list indices skipped)."""
    tp: Any = root
    for part in loc:
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            field = tp.model_fields.get(str(part))
            if field is None:
                return None
            tp = field.annotation
        else:
            tp = _unwrap(tp, item=True)
            continue
        tp = _unwrap(tp)
    tp = _unwrap(tp)
    return tp if isinstance(tp, type) and issubclass(tp, BaseModel) else None


def _unwrap(tp: Any, item: bool = False) -> Any:
    """Strip Optional/Union layers down to a model class when there is one; `item`: also step into
    a dict's values or a list's items."""
    for _ in range(4):
        origin = typing.get_origin(tp)
        args = typing.get_args(tp)
        if origin in (dict, list) and args:
            if item:
                tp, item = args[-1], False
                continue
            return tp
        if args and origin is not None:
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            if models:
                tp = models[0]
                continue
        return tp
    return tp


def validation_error(exc: ValidationError, path: str | Path, root: type[BaseModel], *, example: str,
                     what: str = "file") -> DeepRCError:
    """One problem of `exc` (validating `root` from `path`) as one DeepRCError: the first unknown key, else the first.

    `example` names a file to copy a missing key from; `what` names the file in the generic fix.
    """
    errors = exc.errors()
    # a misspelt key is also a missing one: the unknown key, with its nearest valid name, says more
    err = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
    loc = tuple(err.get("loc", ()))
    field = key_path(loc)
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        model = model_at(root, loc[:-1])
        valid = sorted(f.alias or name for name, f in model.model_fields.items()) if model else []
        near = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.5)
        fix = f"did you mean '{near[0]}'? " if near else ""
        fix += f"valid keys here: {', '.join(valid)}" if valid else "remove the key"
        return config_error(path, field, "unknown key", fix)
    msg = err.get("msg", "invalid value").removeprefix("Value error, ")
    value = err.get("input")
    if kind == "missing":
        return config_error(path, field, "this required key is missing", f"add '{loc[-1]}' (see {example} for an example)")
    if kind.startswith(("literal_error", "enum")):
        return config_error(path, field, f"{value!r} is not allowed ({msg})", "use one of the listed values")
    if "type" in kind or kind.endswith(("_parsing", "_type")):
        return config_error(path, field, f"wrong type: got {type(value).__name__} {value!r}, {msg.lower()}", "give a value of the expected type")
    if not field:
        return config_error(path, None, msg, f"correct the {what} as the message says")
    return config_error(path, field, f"{msg} (got {value!r})", "correct this value")
