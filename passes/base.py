"""What a pass is, what it is given, and the registry of passes by name.

A pass is a small named unit `run(program, ctx) -> program` that never mutates
its input (it works on `program.copy()`) and records its decisions with
`program.with_decision(...)` as plain data (numbers, strings, lists, dicts) so
they can be read back and replayed. Its options are the fields of a frozen
config dataclass (`passes.config`) declared when it is registered; the pass
reads them typed with `ctx.config_for(name)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from kdcc.core.errors import KdccError
from kdcc.ir.program import Program
from kdcc.passes.config import NoOptions, build_config, coerce_option, option_specs

__all__ = ["Pass", "PassContext", "Budget", "register", "get_pass", "registered", "check_options", "describe_passes"]


@dataclass(frozen=True)
class Budget:
    """What the student must fit in on the target (None = no limit), per `scope`:

    "robot" (the default): what one robot runs, its own agent step; every role must fit. A fleet
    is budgeted robot by robot: each runs its own agent on its own processor, and the mixer is
    not needed to act. "team": the whole team step (every agent, the mixer approximation), what
    a simulator or a central station runs."""

    flops: float | None = None
    bytes: float | None = None
    latency_us: float | None = None
    energy_uj: float | None = None
    ratio: float | None = None  # this many times fewer FLOPs than the teacher, when no limit above is given
    scope: str = "robot"

    DEFAULT_RATIO = 30.0  # the size budget when nothing is given and no score is asked for (`--keep off`)

    def __post_init__(self):
        if self.scope not in ("robot", "team"):
            raise KdccError(f"budget scope must be robot or team, got {self.scope!r}")

    def is_set(self) -> bool:
        """An absolute limit is given (flops, bytes, latency or energy)."""
        return any(v is not None for v in (self.flops, self.bytes, self.latency_us, self.energy_uj))

    def is_given(self) -> bool:
        """Any limit is given, a ratio included: without one, a compile that asks for a score has no size limit."""
        return self.is_set() or self.ratio is not None

    @property
    def flop_ratio(self) -> float:
        """The ratio a FLOP limit is taken from when no absolute limit is given."""
        return self.DEFAULT_RATIO if self.ratio is None else self.ratio


@dataclass
class PassContext:
    teacher: Any  # kdcc.inputs.teacher.Teacher: the frozen reference
    profile: Any  # kdcc.targets.profile.TargetProfile
    dataset: Any = None  # kdcc.inputs.dataset.Dataset, when a pass needs teacher data
    budget: Budget = field(default_factory=Budget)
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # per-pass options, "pass.option" keys

    def config_for(self, pass_name: str) -> Any:
        """The typed config of a pass: its config class's defaults, overridden by this context's options."""
        return build_config(pass_name, get_pass(pass_name).config, self.options)


@dataclass(frozen=True)
class Pass:
    name: str
    run: Callable[[Program, PassContext], Program]
    summary: str  # one line, shown by `kdcc passes`
    needs_training: bool = False  # needs teacher data (a dataset): compile collects one when so
    config: type = NoOptions  # frozen dataclass of the pass's options (passes.config)


_REGISTRY: dict[str, Pass] = {}


def register(name: str, summary: str, needs_training: bool = False, config: type = NoOptions):
    """Decorator: `@register("fuse-team", "...")` over a `run(program, ctx)` function."""

    def wrap(fn: Callable[[Program, PassContext], Program]) -> Callable[[Program, PassContext], Program]:
        if name in _REGISTRY:
            raise ValueError(f"pass {name!r} registered twice")
        option_specs(config)  # a malformed config class fails here, at import, not in a user's compile
        _REGISTRY[name] = Pass(name, fn, summary, needs_training, config)
        return fn

    return wrap


def get_pass(name: str) -> Pass:
    if name not in _REGISTRY:
        raise KdccError(f"unknown pass {name!r} (known: {', '.join(sorted(_REGISTRY))})")
    return _REGISTRY[name]


def registered() -> dict[str, Pass]:
    return dict(_REGISTRY)


def check_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Every "pass.key" option typed by its pass's config, in the given order; a one-line KdccError names
    an option whose pass, key or value is wrong (a misspelling would otherwise be silently ignored)."""
    out = {}
    for key, value in options.items():
        name, dot, option = key.partition(".")
        if not dot or not option:
            raise KdccError(f"--opt {key}: expected PASS.NAME=VALUE")
        if name not in _REGISTRY:
            raise KdccError(f"--opt {key}: no pass named {name!r} (passes: {', '.join(sorted(_REGISTRY))})")
        out[key] = coerce_option(name, _REGISTRY[name].config, option, value)
    return out


def describe_passes() -> list[dict[str, Any]]:
    """Every registered pass by name: summary, whether it needs training data, its options (plain data)."""
    return [{"name": p.name, "summary": p.summary, "needs_training": p.needs_training,
             "options": option_specs(p.config)} for _, p in sorted(_REGISTRY.items())]
