"""`kdcc inspect FILE`: what a teacher, dataset, bundle or compile record holds.

    teacher.pt / MODEL_DIR / ONNX_DIR   spec, sizes, parameters, provenance, import notes
    data.npz                            steps, episodes, arrays, team return per episode
    BUNDLE_DIR (profile.json)           target, libraries, cost, fidelity, inputs, files
    RECORD_DIR (manifest.json)          pipeline, budget, inputs, cost and fidelity per pass

Every kind is described as one JSON-able dict (`--json` prints it) and
rendered as a few aligned lines (kdcc.reports.inspection). Nothing heavy is
imported at module level: `kdcc --help` builds this parser.
"""

from __future__ import annotations

import json

__all__ = ["add_parser", "run"]

_EXAMPLES = """examples:
  kdcc inspect examples/spread_teacher.pt
  kdcc inspect results/models/qmix_seed0/2050000 --config results/sacred/qmix/1/config.json
  kdcc inspect data.npz --json
  kdcc inspect build/
"""


def add_parser(sub, common) -> None:
    p = sub.add_parser("inspect", parents=[common], epilog=_EXAMPLES,
                       help="describe a teacher, dataset, bundle or compile record",
                       description="Describe what FILE holds: a teacher (.pt, an EPyMARL/PyMARL model directory, "
                       "an ONNX teacher directory), a `kdcc collect` dataset (.npz), a compiled bundle directory "
                       "or a `kdcc compile --record` directory.")
    p.add_argument("file", help="teacher, model directory, dataset, bundle or record")
    p.add_argument("--config", help="the sacred config.json of a model directory, or an ONNX teacher's spec")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from kdcc.core.errors import KdccError
    from kdcc.reports.inspection import inspect_path, render_inspect
    from kdcc.reports.json_values import jsonable

    try:
        info = inspect_path(args.file, args.config)
        text = json.dumps(jsonable(info), sort_keys=True) if args.json else render_inspect(info)
    except (KeyError, TypeError, ValueError, AttributeError) as e:  # a profile.json or record not as kdcc writes them
        first = str(e).splitlines()[0][:120] if str(e) else type(e).__name__
        raise KdccError(f"{args.file}: holds a kdcc file it cannot describe ({type(e).__name__}: {first})") from None
    print(text)
    return 0
