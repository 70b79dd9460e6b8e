"""What each pass decided, as bullets a reader can follow.

A pass records its decisions as a JSON-like dict (kept verbatim in record/ for
`kdcc check` and for replay); the report shows them as `key: value` bullets,
nested dicts as nested bullets, lists joined with commas and numbers with
thousands separators, never as Python reprs. Bulky or replay-only entries (the
kept unit indices, the loss curve, which report.html plots, the training
options) are left out.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from kdcc.passes.manager import PassRecord
from kdcc.reports.document import Item, Items, bold, text

__all__ = ["decision_items", "format_value"]

_HIDDEN = frozenset({"pass", "kept_fc1", "kept_rnn", "curve", "options"})


def format_value(value: Any) -> str:
    """One value as a reader wants it: 7,063 not 7063.0, 'yes' not True, 'a, b' not ['a', 'b']."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return f"{int(value):,}"
        return f"{value:,.1f}" if abs(value) >= 1000 else f"{value:.4g}"
    if isinstance(value, Mapping):
        return "; ".join(f"{_key(k)}: {format_value(v)}" for k, v in value.items()) or "none"
    if isinstance(value, (list, tuple)):
        return ", ".join(format_value(v) for v in value) or "none"
    return "none" if value is None else str(value)


def _key(key: Any) -> str:
    return str(key).replace("_", " ")


def _item(key: Any, value: Any) -> Item:
    if isinstance(value, Mapping) and value:
        return Item(text(f"{_key(key)}:"), tuple(_item(k, v) for k, v in value.items()))
    return Item(text(f"{_key(key)}: {format_value(value)}"))


def decision_items(records: Sequence[PassRecord]) -> Items:
    """One bullet per pass after the import, its decisions nested under it."""
    items = []
    for r in records[1:]:
        shown = {k: v for k, v in r.decisions.items() if k not in _HIDDEN}
        children = tuple(_item(k, v) for k, v in shown.items())
        items.append(Item(text(bold(r.name)) + (() if children else text(": no decisions")), children))
    return Items(tuple(items))
