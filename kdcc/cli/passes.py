"""`kdcc passes`: every registered pass, what it does, whether it needs training data, and its options.

The options listed are exactly what `kdcc compile --opt PASS.NAME=VALUE` accepts:
each pass's config dataclass, with type, default and a one-line doc.
"""

from __future__ import annotations

import json

__all__ = ["add_parser", "run", "render_passes"]

_EXAMPLES = """examples:
  kdcc passes
  kdcc passes --json
  kdcc compile examples/spread_teacher.pt --opt distill.steps=2000 --opt prune.split=false -o build/
"""


def add_parser(sub, common) -> None:
    p = sub.add_parser("passes", parents=[common], epilog=_EXAMPLES,
                       help="list the graph passes and the options each takes (--opt PASS.NAME=VALUE)",
                       description="Every registered pass with its one-line summary, whether it needs "
                       "teacher data (compile collects a dataset when one does), and each option `kdcc compile "
                       "--opt PASS.NAME=VALUE` accepts for it, with type, default and doc.")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.passes import describe_passes

    passes = describe_passes()
    print(json.dumps({"passes": passes}, sort_keys=True) if args.json else render_passes(passes))
    return 0


def render_passes(passes: list[dict]) -> str:
    """Aligned text: a line per pass, then an indented line per option."""
    width = max(len(p["name"]) for p in passes)
    pad = max((len(p["name"]) + 1 + len(o["name"]) for p in passes for o in p["options"]), default=0)
    lines = []
    for p in passes:
        data = "  [needs training data]" if p["needs_training"] else ""
        lines.append(f"{p['name']:<{width}}  {p['summary']}{data}")
        for o in p["options"]:
            default = json.dumps(o["default"])  # as --opt takes it: true, 8, 0.01
            lines.append(f"    {p['name'] + '.' + o['name']:<{pad}}  {o['type']:<5}  default {default:<6}  {o['doc']}")
    return "\n".join(lines)
