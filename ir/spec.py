"""The MARL spec: everything about a team that is not a weight.

A spec is plain data (it round-trips through a teacher file without pickling
code) and is the single place that says how an agent's input vector is built:
own observation ‖ one-hot(last action) ‖ one-hot(agent id), each part present
only when its flag is set — the EPyMARL/PyMARL convention.

Heterogeneous teams (speaker–listener: agents with different observation and
action sizes) keep the padded layout at the interface — observations
[n, obs_dim], Q-values [n, n_actions], hidden [n, hidden_dim] — and say each
agent's own sizes in `obs_sizes` / `action_sizes`. A student may then give
every agent a network of its own (`AgentSpec.widths`), reading only that
agent's real inputs, with a width the cost model picked for it.

`algorithm` says what the teacher was trained as and so what its agents output:
value-based ("qmix", "vdn", "iql") agents output Q-values, actor-critic ones
("mappo", "ippo": their actors) action logits. Both act greedily (argmax), so
the team step and the bundle's interface are the same for all; only what the
`q` and `q_tot` outputs mean differs (`MarlSpec.policy`, `MixerSpec.kind`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["AgentSpec", "MixerSpec", "EnvSpec", "MarlSpec", "STATE_LAYOUTS", "ALGORITHMS", "MIXER_KINDS",
           "check_claimed_sizes"]


@dataclass(frozen=True)
class AgentSpec:
    """Per-agent network: fc1 → ReLU → rnn (GRUCell, or Linear+ReLU if `kind == "ff"`) → fc2.

    `widths` empty: one network shared by all agents (parameter sharing, as
    QMIX teachers are trained). Non-empty: one network per agent, agent i of
    width widths[i]; `hidden_dim` is then max(widths), the padded hidden-state width.
    """

    kind: str = "rnn"  # "rnn" (GRUCell) or "ff" (feed-forward; hidden state ignored)
    hidden_dim: int = 64
    widths: tuple[int, ...] = ()

    @property
    def split(self) -> bool:
        return bool(self.widths)


# How Q_tot is made: "qmix" (hypernetwork), "static" (state-independent monotonic) and "hyper" (QMIX's
# form from one small shared state embedding of width hypernet_embed): the compiler's approximations of "qmix", "vdn" (Σ of the chosen Q, no weights), "none" (no mixer was trained:
# IQL and actor-critic teachers; the team step still reports Σ of the chosen outputs as q_tot).
MIXER_KINDS = ("qmix", "static", "hyper", "vdn", "none")
# algorithm -> the mixer kinds its teacher and students may have
ALGORITHMS = {"qmix": ("qmix", "static", "hyper"), "vdn": ("vdn",), "iql": ("none",), "mappo": ("none",),
              "ippo": ("none",)}


@dataclass(frozen=True)
class MixerSpec:
    """Mixer hyper-parameters (EPyMARL names); only "qmix", "static" and "hyper" use the embed size;
    "hyper" reads hypernet_embed as the width of its one state embedding."""

    kind: str = "qmix"  # one of MIXER_KINDS
    embed_dim: int = 32
    hypernet_layers: int = 2
    hypernet_embed: int = 64


STATE_LAYOUTS = ("env", "padded-obs")


@dataclass(frozen=True)
class EnvSpec:
    """An mpe2 scenario, the keyword arguments of its `parallel_env`, and how the mixer's state is built:
    "env" = mpe2's `env.state()`; "padded-obs" = the agents' zero-padded observations concatenated
    (what EPyMARL's PettingZoo wrapper gives its mixer; differs from "env" when agents differ)."""

    id: str = "simple_spread_v3"
    kwargs: dict[str, Any] = field(default_factory=dict)
    state: str = "env"


@dataclass(frozen=True)
class MarlSpec:
    n_agents: int
    obs_dim: int
    state_dim: int
    n_actions: int
    agent: AgentSpec = AgentSpec()
    mixer: MixerSpec = MixerSpec()
    env: EnvSpec = EnvSpec()
    obs_last_action: bool = True
    obs_agent_id: bool = True
    obs_sizes: tuple[int, ...] = ()  # per agent; empty = every agent has obs_dim
    action_sizes: tuple[int, ...] = ()  # per agent; empty = every agent has n_actions
    algorithm: str = "qmix"  # one of ALGORITHMS

    @property
    def policy(self) -> str:
        """What the agents output: "q" (Q-values, value-based teachers) or "logits" (actor-critic actors)."""
        return "logits" if self.algorithm in ("mappo", "ippo") else "q"

    @property
    def sums(self) -> bool:
        """Is Q_tot a plain sum of the chosen outputs (VDN, or no mixer at all)?"""
        return self.mixer.kind in ("vdn", "none")

    def obs_size(self, i: int) -> int:
        return self.obs_sizes[i] if self.obs_sizes else self.obs_dim

    def action_size(self, i: int) -> int:
        return self.action_sizes[i] if self.action_sizes else self.n_actions

    @property
    def heterogeneous(self) -> bool:
        """Do agents differ in observation or action size?"""
        n = range(self.n_agents)
        return any(self.obs_size(i) != self.obs_dim or self.action_size(i) != self.n_actions for i in n)

    def agent_input_cols(self, i: int) -> list[int]:
        """Columns of the padded input vector that carry agent i's real inputs (its obs, its actions' one-hot);
        the agent-id one-hot is left out: a network of one agent's own has it as a constant."""
        cols = list(range(self.obs_size(i)))
        if self.obs_last_action:
            cols += range(self.obs_dim, self.obs_dim + self.action_size(i))
        return cols

    def avail(self) -> list[list[float]]:
        """[n][n_actions]: 1 where the agent has the action."""
        return [[1.0 if a < self.action_size(i) else 0.0 for a in range(self.n_actions)] for i in range(self.n_agents)]

    @property
    def input_dim(self) -> int:
        """Width of one agent's input vector."""
        return (
            self.obs_dim
            + (self.n_actions if self.obs_last_action else 0)
            + (self.n_agents if self.obs_agent_id else 0)
        )

    @property
    def recurrent(self) -> bool:
        return self.agent.kind == "rnn"

    def with_agent(self, **changes: Any) -> "MarlSpec":
        return replace(self, agent=replace(self.agent, **changes))

    def with_mixer(self, **changes: Any) -> "MarlSpec":
        return replace(self, mixer=replace(self.mixer, **changes))

    def to_dict(self) -> dict[str, Any]:
        """Plain data; the per-agent fields appear only when set, so homogeneous specs keep their v1 form."""
        d = asdict(self)
        for key in ("obs_sizes", "action_sizes"):
            if d[key]:
                d[key] = list(d[key])
            else:
                del d[key]
        if d["algorithm"] == "qmix":
            del d["algorithm"]
        if d["env"]["state"] == "env":
            del d["env"]["state"]
        if d["agent"]["widths"]:
            d["agent"]["widths"] = list(d["agent"]["widths"])
        else:
            del d["agent"]["widths"]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MarlSpec":
        """Build from plain data; raises KeyError/TypeError/ValueError on malformed input."""
        d = dict(d)
        agent_d = dict(d.pop("agent", {}))
        agent_d["widths"] = tuple(agent_d.get("widths", ()))
        agent = AgentSpec(**agent_d)
        for key in ("obs_sizes", "action_sizes"):
            d[key] = tuple(d.get(key, ()))
        mixer = MixerSpec(**d.pop("mixer", {}))
        env_d = dict(d.pop("env", {}))
        env = EnvSpec(id=str(env_d.get("id", "simple_spread_v3")), kwargs=dict(env_d.get("kwargs", {})),
                      state=str(env_d.get("state", "env")))
        if env.state not in STATE_LAYOUTS:
            raise ValueError(f"spec.env.state must be one of {', '.join(STATE_LAYOUTS)}, got {env.state!r}")
        spec = cls(agent=agent, mixer=mixer, env=env, **d)
        for name in ("n_agents", "obs_dim", "state_dim", "n_actions"):
            value = getattr(spec, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"spec.{name} must be a positive integer, got {value!r}")
        for name, value in (("agent.hidden_dim", agent.hidden_dim), ("mixer.embed_dim", mixer.embed_dim),
                            ("mixer.hypernet_embed", mixer.hypernet_embed)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"spec.{name} must be a positive integer, got {value!r}")
        for name, values in (("obs_sizes", spec.obs_sizes), ("action_sizes", spec.action_sizes),
                             ("agent.widths", agent.widths)):
            if values and (len(values) != spec.n_agents or
                           any(not isinstance(v, int) or isinstance(v, bool) or v <= 0 for v in values)):
                raise ValueError(f"spec.{name} must be {spec.n_agents} positive integers, got {list(values)!r}")
        if any(o > spec.obs_dim for o in spec.obs_sizes) or any(a > spec.n_actions for a in spec.action_sizes):
            raise ValueError("spec.obs_sizes / spec.action_sizes must not exceed obs_dim / n_actions")
        if agent.widths and max(agent.widths) != agent.hidden_dim:
            raise ValueError(f"spec.agent.hidden_dim must be max(spec.agent.widths), got {agent.hidden_dim}")
        if agent.kind not in ("rnn", "ff"):
            raise ValueError(f"spec.agent.kind must be 'rnn' or 'ff', got {agent.kind!r}")
        if mixer.kind not in MIXER_KINDS:
            raise ValueError(f"spec.mixer.kind must be one of {', '.join(MIXER_KINDS)}, got {mixer.kind!r}")
        if spec.algorithm not in ALGORITHMS:
            raise ValueError(f"spec.algorithm must be one of {', '.join(ALGORITHMS)}, got {spec.algorithm!r}")
        if mixer.kind not in ALGORITHMS[spec.algorithm]:
            raise ValueError(f"spec.mixer.kind {mixer.kind!r} does not fit algorithm {spec.algorithm!r} "
                             f"(expected {' or '.join(ALGORITHMS[spec.algorithm])})")
        if mixer.hypernet_layers not in (1, 2):
            raise ValueError(f"spec.mixer.hypernet_layers must be 1 or 2, got {mixer.hypernet_layers!r}")
        return spec


# Below this a spec's buffers are never refused: tiny test teachers have files smaller than their batches.
_SIZE_FLOOR = 1 << 20


def check_claimed_sizes(spec: MarlSpec, data_bytes: int, where: str) -> None:
    """Refuse a spec whose one team step's buffers (observations, hidden state, Q-values, state; float32)
    exceed the bytes of the model that would fill them: a spec is only a claim, and a runner allocates
    what it says before the model can disagree. A real model's weights hold at least one hidden × input
    matrix, so its file outweighs a step's buffers; 1 MiB is always allowed."""
    from kdcc.core.errors import KdccError

    floats = spec.n_agents * (spec.obs_dim + spec.agent.hidden_dim + spec.n_actions + spec.input_dim) + spec.state_dim
    if 4 * floats > max(data_bytes, _SIZE_FLOOR):
        raise KdccError(f"{where}: the spec claims {4 * floats:,} bytes per team step, more than the "
                        f"{data_bytes:,} bytes of model it comes with")
