"""`kdcc compile --json`: the compile's outcome as one JSON object, every value a JSON value.

No `default=str`: a missing output directory is `null`, not the string "None",
and a value JSON cannot hold fails loudly instead of turning into its repr.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path, PurePath
from typing import Any, Mapping, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.pass_table import pass_table

__all__ = ["compile_json", "jsonable"]


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


def compile_json(out: str | Path | None, records: Sequence[PassRecord], bundle: Any = None,
                 pareto: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The bundle directory (None without `-o`), each pass's metrics, the pass table, the bundle, the sweep."""
    return jsonable({
        "out": None if out is None else str(out),
        "passes": [{"name": r.name, "wall_s": r.wall_s, "metrics": r.metrics, "fidelity": r.fidelity}
                   for r in records],
        "pass_table": pass_table(records).to_json(),
        "bundle": bundle,
        "pareto": pareto,
    })
