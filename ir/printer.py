"""Stable text form of a Program: node by node, with shapes and costs.

The pass-by-pass regression tests diff this text, so it must not depend on
the run or the machine: node names come from tracing (deterministic), numbers
are integers, and nothing prints addresses, times or float noise.
"""

from __future__ import annotations

import torch
from torch import fx, nn

from kdcc.ir.annotate import annotate, node_shape
from kdcc.ir.program import Program
from kdcc.ir.team import team_example_inputs

__all__ = ["program_text", "example_inputs", "annotate_program", "team_ops"]


def example_inputs(program: Program, graph: str) -> tuple[torch.Tensor, ...]:
    """Inputs of one team step for each graph: agents batched, one mixer call."""
    spec = program.spec
    team_in = team_example_inputs(spec)
    if graph == "team":
        return team_in
    if graph == "agent":
        return torch.zeros(spec.n_agents, spec.input_dim), torch.zeros(spec.n_agents, spec.agent.hidden_dim)
    return torch.zeros(1, spec.n_agents), torch.zeros(1, spec.state_dim)


def annotate_program(program: Program) -> Program:
    for name, gm in program.graphs().items():
        if any("cost" not in n.meta for n in gm.graph.nodes):
            annotate(gm, *example_inputs(program, name))
    return program


def team_ops(program: Program) -> list:
    """(node, OpCost) of one team step of `program` as it will run (see `Program.costed`)."""
    from kdcc.ir.annotate import graph_costs

    costed = annotate_program(program.costed())
    return [op for gm in costed.graphs().values() for op in graph_costs(gm)]


def _fmt_shape(node: fx.Node) -> str:
    shape = node_shape(node)
    if shape is None:
        return "-"
    dtype = str(node.meta["tensor_meta"].dtype).replace("torch.", "").replace("float32", "f32").replace("int64", "i64")
    return f"{dtype}[{','.join(map(str, shape))}]"


def _fmt_arg(a) -> str:
    if isinstance(a, fx.Node):
        return f"%{a.name}"
    if isinstance(a, (list, tuple)):
        return "(" + ", ".join(_fmt_arg(x) for x in a) + ")"
    if isinstance(a, float):
        return f"{a:.6g}"
    return repr(a) if not callable(a) else getattr(a, "__name__", str(a))


def _describe_module(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return f"Linear({m.in_features}→{m.out_features})"
    if isinstance(m, nn.GRUCell):
        return f"GRUCell({m.input_size}→{m.hidden_size})"
    return type(m).__name__


def _op(node: fx.Node, modules: dict[str, nn.Module]) -> str:
    args = ", ".join([_fmt_arg(a) for a in node.args] + [f"{k}={_fmt_arg(v)}" for k, v in node.kwargs.items()])
    if node.op == "call_module":
        return f"{node.target}:{_describe_module(modules[node.target])}({args})"
    if node.op == "call_function":
        return f"{getattr(node.target, '__name__', str(node.target))}({args})"
    if node.op == "call_method":
        return f".{node.target}({args})"
    if node.op == "get_attr":
        return f"const {node.target}"
    if node.op == "output":
        return f"return {args}"
    return "input"


def graph_text(name: str, gm: fx.GraphModule) -> list[str]:
    modules = dict(gm.named_modules())
    costs = [n.meta["cost"] for n in gm.graph.nodes]
    params = sum(p.numel() for p in gm.parameters()) + sum(b.numel() for b in gm.buffers())
    lines = [f"graph {name}: {sum(c.flops for c in costs):,} FLOPs, {params:,} params+buffers, "
             f"{sum(c.bytes for c in costs):,} bytes moved"]
    for n in gm.graph.nodes:
        c = n.meta["cost"]
        cost = "" if c.kind == "free" else f"  {c.kind} flops={c.flops:,} bytes={c.bytes:,}"
        lines.append(f"  %{n.name:<22} = {_op(n, modules):<58} {_fmt_shape(n)}{cost}".rstrip())
    return lines


def program_text(program: Program) -> str:
    annotate_program(program)
    s = program.spec
    head = (f"program n_agents={s.n_agents} obs={s.obs_dim} state={s.state_dim} actions={s.n_actions} "
            f"agent={s.agent.kind}/{s.agent.hidden_dim} mixer={s.mixer.kind}/{s.mixer.embed_dim}"
            f"/{s.mixer.hypernet_layers}x{s.mixer.hypernet_embed} env={s.env.id}")
    if s.heterogeneous:
        head += f" obs_sizes={list(map(s.obs_size, range(s.n_agents)))} action_sizes=" \
                f"{list(map(s.action_size, range(s.n_agents)))}"
    if s.agent.split:
        head += f" widths={list(s.agent.widths)}"
    lines = [head]
    for name, gm in program.graphs().items():
        lines.extend(graph_text(name, gm))
    return "\n".join(lines) + "\n"
