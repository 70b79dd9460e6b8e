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
    for name, _ in list(gm.named_parameters(recurse=False)) + list(gm.named_buffers(recurse=False)):
        if name not in used:
            delattr(gm, name)
    gm.recompile()
