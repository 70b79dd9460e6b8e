"""What every Program must satisfy between passes; the pass manager checks it after each one.

A pass that leaves a malformed graph, a computation nothing reads, a team step
whose outputs no longer fit the MARL spec, or a decision that is not plain
data would otherwise surface passes later, in the backend or in a report, far
from its cause. The checks, cheap enough to run after every pass (one team
step on the fixed example input of `team_example_inputs`):

* every graph passes `torch.fx.Graph.lint()` (well-formed, targets exist);
* no dangling node: every node has a user, except placeholders (an input a
  network may ignore, e.g. a feed-forward agent's hidden state), the output,
  and `getitem`s: tracing leaves one for every value unpacked or sliced, used
  or not (a feed-forward agent of its own still slices its hidden state),
  they cost nothing, and eliminate-dead-code drops them;
* one team step runs, and maps (obs, last_actions, hidden, state) to actions [n] (int64),
  q [n, A], new hidden [n, H] and q_tot [1], with n, A, H from the spec;
* the decisions in the history are plain data (None, bool, int, float, str,
  lists and string-keyed dicts of them), so records can be saved and replayed.
"""

from __future__ import annotations

import operator
from typing import Any

import torch

from kdcc.ir.program import Program
from kdcc.ir.team import team_example_inputs

__all__ = ["InvariantError", "check_program"]


class InvariantError(RuntimeError):
    """A Program breaks an invariant: a bug in the pass that produced it, not in the user's input."""


def check_program(program: Program) -> None:
    """Raise InvariantError (one line: which graph or output, and what is wrong) if `program` breaks one."""
    for name, gm in program.graphs().items():
        try:
            gm.graph.lint()
        except Exception as e:  # lint raises RuntimeError or AssertionError, whichever it found
            raise InvariantError(f"graph {name} fails lint: {e}") from None
        dangling = [n.name for n in gm.graph.nodes if not n.users and n.op not in ("placeholder", "output")
                    and n.target is not operator.getitem]
        if dangling:
            raise InvariantError(f"graph {name} has nodes nothing uses: {', '.join(dangling)}")
    _check_team_shapes(program)
    for decision in program.history:
        _check_plain(decision, f"decision of {decision.get('pass', '?')}")


def _check_team_shapes(program: Program) -> None:
    spec = program.spec
    n, a, h = spec.n_agents, spec.n_actions, spec.agent.hidden_dim
    try:
        with torch.no_grad():
            outputs = program.team_module()(*team_example_inputs(spec))
    except Exception as e:  # whatever a malformed graph raises: named, on one line
        reason = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise InvariantError(f"team step fails on the spec's example input: {type(e).__name__}: {reason}") from None
    expected = {"actions": (n,), "q": (n, a), "new_hidden": (n, h), "q_tot": (1,)}
    if not isinstance(outputs, tuple) or len(outputs) != len(expected):
        raise InvariantError(f"team step returns {type(outputs).__name__}, not the tuple ({', '.join(expected)})")
    for (name, shape), out in zip(expected.items(), outputs):
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != shape:
            got = list(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise InvariantError(f"team step output {name} is {got}, the spec says {list(shape)}")
    if outputs[0].dtype != torch.int64:
        raise InvariantError(f"team step output actions is {outputs[0].dtype}, not torch.int64")


def _check_plain(value: Any, where: str) -> None:
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if isinstance(value, list):
        for item in value:
            _check_plain(item, where)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvariantError(f"{where}: key {key!r} is not a string")
            _check_plain(item, f"{where}, {key}")
        return
    raise InvariantError(f"{where}: {type(value).__name__} is not plain data (numbers, strings, lists, dicts)")
