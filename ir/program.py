"""The Program: what every pass takes and returns.

It holds the agent graph and the mixer graph as `torch.fx.GraphModule`s, the
team graph once the fusion pass has built it, the MARL spec, and the history of
decisions passes made (what was pruned, fused, approximated) so a compile can
be explained and replayed. A Program is treated as immutable: passes copy
what they change (`Program.copy`) and never touch their input.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field, replace
from typing import Any

from torch import fx, nn

from kdcc.ir.spec import MarlSpec

__all__ = ["Program", "trace", "from_modules", "FOLDED_PREFIX"]

# Buffers named so hold weights precomputed by fold-constants (e.g. |W| of a static mixer):
# constants to the graph, but still weights the program stores.
FOLDED_PREFIX = "_folded_"


class _Tracer(fx.Tracer):
    """Keeps GRUCell and Linear as single call_module nodes (one node = one layer to cost and prune)."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return isinstance(m, (nn.Linear, nn.GRUCell)) or super().is_leaf_module(m, qualname)


def trace(module: nn.Module, name: str) -> fx.GraphModule:
    """Trace a module into a GraphModule named `name` (deterministic node names), in inference form."""
    graph = _Tracer().trace(module)
    gm = fx.GraphModule(module, graph, class_name=name)
    gm.eval()
    for p in gm.parameters():
        p.requires_grad_(False)
    return gm


@dataclass(frozen=True)
class Program:
    spec: MarlSpec
    agent: fx.GraphModule
    mixer: fx.GraphModule
    team: fx.GraphModule | None = None
    history: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def graphs(self) -> dict[str, fx.GraphModule]:
        """The graphs a compile currently consists of: the team graph once fused, else agent and mixer."""
        if self.team is not None:
            return {"team": self.team}
        return {"agent": self.agent, "mixer": self.mixer}

    def copy(self, **changes: Any) -> "Program":
        """A deep copy (graphs and weights) with `changes` applied: the way passes produce output."""
        fresh = {
            "agent": copy.deepcopy(self.agent),
            "mixer": copy.deepcopy(self.mixer),
            "team": copy.deepcopy(self.team) if self.team is not None else None,
        }
        fresh.update(changes)
        return replace(self, **fresh)

    def picklable(self) -> "Program":
        """A copy that pickles (to another process or machine): fx cannot pickle a graph whose inputs carry
        string type annotations (a traced module whose source has `from __future__ import annotations`), so
        they are dropped; nothing that computes changes."""
        out = self.copy()
        for gm in (out.agent, out.mixer, out.team):
            if gm is not None and any(isinstance(n.type, str) for n in gm.graph.nodes):
                for n in gm.graph.nodes:
                    n.type = None if isinstance(n.type, str) else n.type
                gm.recompile()
        return out

    def with_decision(self, pass_name: str, **decision: Any) -> "Program":
        return replace(self, history=(*self.history, {"pass": pass_name, **decision}))

    def team_module(self) -> nn.Module:
        """Something that runs one team step, fused or not (same signature as `kdcc.ir.team.TeamStep`)."""
        if self.team is not None:
            return self.team
        from kdcc.ir.team import TeamStep

        return TeamStep(self.spec, self.agent, self.mixer).eval()

    def costed(self) -> "Program":
        """This program as the team step it will run as, so every stage is costed on the same work
        (input construction and greedy selection included), whether fused yet or not."""
        if self.team is not None:
            return self
        from kdcc.ir.team import TeamStep

        return replace(self, team=trace(TeamStep(self.spec, self.agent, self.mixer), "Team"))

    def parameter_count(self) -> int:
        """Weights stored: parameters, and the folded constants that replaced some of them."""
        mods = [self.team] if self.team is not None else [self.agent, self.mixer]
        folded = sum(b.numel() for m in mods for name, b in m.named_buffers()
                     if name.rpartition(".")[2].startswith(FOLDED_PREFIX))
        return sum(p.numel() for m in mods for p in m.parameters()) + folded


def from_modules(spec: MarlSpec, agent: nn.Module, mixer: nn.Module) -> Program:
    """Import eager modules (a teacher's, or a student's) as a Program; the modules are not shared."""
    agent_gm = trace(copy.deepcopy(agent).eval(), "Agent")
    mixer_gm = trace(copy.deepcopy(mixer).eval(), "Mixer")
    return Program(spec, agent_gm, mixer_gm)


