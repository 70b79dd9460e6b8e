"""Small helpers for rewriting fx graphs that several passes share."""

from __future__ import annotations

import torch
from torch import fx

__all__ = ["attribute", "drop_unused_attributes"]


def attribute(gm: fx.GraphModule, target: str) -> torch.Tensor:
    """The tensor a get_attr target ("a.b.c") names."""
    obj = gm
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def drop_unused_attributes(gm: fx.GraphModule) -> None:
    """Delete submodules, parameters and buffers no node refers to, then recompile."""
    gm.delete_all_unused_submodules()
    used = {n.target for n in gm.graph.nodes if n.op == "get_attr"}
    called = {n.target for n in gm.graph.nodes if n.op == "call_module"}
    for name, _ in [*gm.named_parameters(), *gm.named_buffers()]:
        owner, _, leaf = name.rpartition(".")
        if name in used or any(owner == c or owner.startswith(c + ".") for c in called):
            continue
        delattr(gm.get_submodule(owner) if owner else gm, leaf)
    gm.recompile()
