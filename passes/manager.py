"""The pass manager: runs a pipeline of named passes and records what each did.

For every pass it keeps a `PassRecord`: wall time, the program's stable text,
cost metrics on the target (FLOPs, parameters, bytes, estimated latency and
energy from the cost model), fidelity against the teacher on the fixed probe,
the probe outputs, and the decisions the pass made. Instruments see each
record as it is made (`--dump-ir` writes the text; `--record` a snapshot).
After every pass the program's invariants are checked (`kdcc.ir.invariants`:
graph lint, no dangling nodes, team-step shapes per the spec, decisions as
plain data), so a pass that breaks one is caught where it did. Errors name the
failing pass.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from kdcc.core.errors import KdccError
from kdcc.core.interrupt import check_interrupted
from kdcc.ir.invariants import InvariantError, check_program
from kdcc.ir.printer import program_text, team_ops
from kdcc.ir.program import Program
from kdcc.marl.probe import Probe, fidelity, replay
from kdcc.passes.base import PassContext, get_pass

__all__ = ["PassRecord", "run_pipeline", "program_metrics", "select_passes", "Instrument"]


@dataclass
class PassRecord:
    index: int
    name: str
    wall_s: float
    text: str
    metrics: dict[str, Any]
    fidelity: dict[str, float]
    decisions: dict[str, Any]
    outputs: dict[str, np.ndarray] = field(repr=False, default_factory=dict)
    program: Program | None = field(repr=False, default=None)  # the program after the pass (not saved)


Instrument = Callable[[PassRecord, Program], None]


def program_metrics(program: Program, profile) -> dict[str, Any]:
    """FLOPs, parameters and bytes per team step, and the cost model's latency/energy per device."""
    from kdcc.targets.cost_model import choose_device, estimate

    ops = team_ops(program)
    metrics: dict[str, Any] = {
        "flops": sum(c.flops for _, c in ops),
        "params": program.parameter_count(),
        "param_bytes": 4 * program.parameter_count(),
        "bytes": sum(c.bytes for _, c in ops),
    }
    for device in profile.devices:
        total = estimate(ops, device).total
        metrics[f"latency_us.{device.name}"] = round(total.latency_us, 4)
        metrics[f"energy_uj.{device.name}"] = round(total.energy_uj, 6)
    best, _ = choose_device(ops, profile)
    metrics["device"] = best.name
    metrics["latency_us"] = metrics[f"latency_us.{best.name}"]
    metrics["energy_uj"] = metrics[f"energy_uj.{best.name}"]
    return metrics


def select_passes(pipeline: Sequence[str], only: Sequence[str] | None = None,
                  skip: Sequence[str] = ()) -> list[str]:
    """The pipeline, or `only` (--passes) in the given order, minus `skip`; unknown names are errors."""
    names = list(only) if only else list(pipeline)
    for n in [*names, *skip]:
        get_pass(n)
    return [n for n in names if n not in set(skip)]


def run_pipeline(program: Program, names: Sequence[str], ctx: PassContext, probe: Probe,
                 instruments: Sequence[Instrument] = (),
                 ran: Sequence[tuple[Program, float]] = ()) -> tuple[Program, list[PassRecord]]:
    """`names` in order from `program`, one record each (index 0: the input). `ran`: the outputs and wall times
    of the first passes as they were already run under the same context (a search's trial, in another
    process): recorded and checked, not run again."""
    records = [_record(0, "import", 0.0, program, ctx, probe, {})]
    for inst in instruments:
        inst(records[0], program)
    for i, name in enumerate(names, start=1):
        check_interrupted()
        p = get_pass(name)
        start = time.perf_counter()
        try:
            result = ran[i - 1][0] if i <= len(ran) else p.run(program, ctx)
        except KdccError as e:
            raise KdccError(f"pass {name}: {e}") from None
        wall = ran[i - 1][1] if i <= len(ran) else time.perf_counter() - start
        if not isinstance(result, Program):
            raise TypeError(f"pass {name} returned {type(result).__name__}, not a Program")
        try:
            check_program(result)
        except InvariantError as e:
            raise InvariantError(f"pass {name} broke an IR invariant: {e}") from None
        decisions = result.history[-1] if len(result.history) > len(program.history) else {}
        program = result
        records.append(_record(i, name, wall, program, ctx, probe, decisions))
        for inst in instruments:
            inst(records[-1], program)
    return program, records


def _record(index, name, wall, program, ctx, probe, decisions) -> PassRecord:
    outputs = replay(program.team_module(), program.spec, probe)
    return PassRecord(index, name, wall, program_text(program), program_metrics(program, ctx.profile),
                      fidelity(outputs, probe), dict(decisions), outputs, program)
