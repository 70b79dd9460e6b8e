"""`kdcc compile --json`: the compile's outcome as one JSON object, every value a JSON value.

No `default=str`: a missing output directory is `null`, not the string "None",
and a value JSON cannot hold fails loudly instead of turning into its repr.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.json_values import jsonable
from kdcc.reports.pass_table import pass_table

__all__ = ["compile_json"]


def compile_json(out: str | Path | None, records: Sequence[PassRecord], bundle: Any = None,
                 pareto: Mapping[str, Any] | None = None, keep: Mapping[str, Any] | None = None,
                 certified: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The bundle directory (None without `-o`), each pass's metrics, the pass table, the bundle, the sweep, and
    the certify stage's ε of teacher and student (`null` when it did not run: no `-o`, or --certify-episodes 0)."""
    return jsonable({
        "out": None if out is None else str(out),
        "passes": [{"name": r.name, "wall_s": r.wall_s, "metrics": r.metrics, "fidelity": r.fidelity}
                   for r in records],
        "pass_table": pass_table(records).to_json(),
        "bundle": bundle,
        "pareto": pareto,
        "certified": certified,
        **({"keep": keep} if keep is not None else {}),  # --keep's search: only when it ran
    })
