"""What a pass is, what it is given, and the registry of passes by name.

A pass is a small named unit `run(program, ctx) -> program` that never mutates
its input (it works on `program.copy()`) and records its decisions with
`program.with_decision(...)` so they can be read back and replayed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Callable

from kdcc.core.errors import KdccError
from kdcc.ir.program import Program

__all__ = ["Pass", "PassContext", "Budget", "register", "get_pass", "registered"]


@dataclass(frozen=True)
class Budget:
    """What the student must fit in per team step on the target (None = no limit)."""

    flops: float | None = None
    bytes: float | None = None
    latency_us: float | None = None
    energy_uj: float | None = None
    ratio: float = 30.0  # default: this many times fewer FLOPs than the teacher, when no budget is given

    def is_set(self) -> bool:
        return any(v is not None for v in (self.flops, self.bytes, self.latency_us, self.energy_uj))


@dataclass
class PassContext:
    teacher: Any  # kdcc.inputs.teacher.Teacher: the frozen reference
    profile: Any  # kdcc.targets.profile.TargetProfile
    dataset: Any = None  # kdcc.inputs.dataset.Dataset, when a pass needs teacher data
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # per-pass options, "pass.option" keys
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("kdcc"))

    def option(self, pass_name: str, key: str, default: Any) -> Any:
        return self.options.get(f"{pass_name}.{key}", default)


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Program, PassContext], Program]
    summary: str
    needs_training: bool = False


_REGISTRY: dict[str, Pass] = {}


def register(name: str, summary: str, needs_training: bool = False):
    """Decorator: `@register("fuse-team", "...")` over a `run(program, ctx)` function."""

    def wrap(fn: Callable[[Program, PassContext], Program]) -> Callable[[Program, PassContext], Program]:
        if name in _REGISTRY:
            raise ValueError(f"pass {name!r} registered twice")
        _REGISTRY[name] = Pass(name, fn, summary, needs_training)
        return fn

    return wrap


def get_pass(name: str) -> Pass:
    if name not in _REGISTRY:
        raise KdccError(f"unknown pass {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def registered() -> dict[str, Pass]:
    return dict(_REGISTRY)
