"""Values as JSON holds them, for every `--json` kdcc prints.

`json.dumps(..., default=str)` would turn a value JSON cannot hold into its
repr ("None", "array([...])") without a word; here numpy values and paths are
converted and anything else is a TypeError, a bug to fix rather than to print.
"""

from __future__ import annotations

import dataclasses
from pathlib import PurePath
from typing import Any, Mapping

__all__ = ["jsonable"]


def jsonable(value: Any) -> Any:
    """`value` as dicts, lists, strings, numbers, booleans and None (numpy values and paths converted)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, PurePath):
        return str(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return jsonable({f.name: getattr(value, f.name) for f in dataclasses.fields(value)})
    if hasattr(value, "tolist"):  # numpy scalars and arrays
        return jsonable(value.tolist())
    raise TypeError(f"not a JSON value: {type(value).__name__}")
