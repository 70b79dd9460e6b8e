"""The MARL spec: everything about a team that is not a weight.

A spec is plain data (it round-trips through a teacher file without pickling
code) and is the single place that says how an agent's input vector is built:
own observation ‖ one-hot(last action) ‖ one-hot(agent id), each part present
only when its flag is set — the EPyMARL/PyMARL convention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = ["AgentSpec", "MixerSpec", "EnvSpec", "MarlSpec"]


@dataclass(frozen=True)
class AgentSpec:
    """Per-agent network: fc1 → ReLU → rnn (GRUCell, or Linear+ReLU if `kind == "ff"`) → fc2."""

    kind: str = "rnn"  # "rnn" (GRUCell) or "ff" (feed-forward; hidden state ignored)
    hidden_dim: int = 64


@dataclass(frozen=True)
class MixerSpec:
    """QMIX hypernetwork mixer hyper-parameters (EPyMARL names)."""

    kind: str = "qmix"  # "qmix" (hypernetwork) or "static" (state-independent monotonic)
    embed_dim: int = 32
    hypernet_layers: int = 2
    hypernet_embed: int = 64


@dataclass(frozen=True)
class EnvSpec:
    """An mpe2 scenario and the keyword arguments of its `parallel_env`."""

    id: str = "simple_spread_v3"
    kwargs: dict[str, Any] = field(default_factory=dict)


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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MarlSpec":
        """Build from plain data; raises KeyError/TypeError/ValueError on malformed input."""
        d = dict(d)
        agent = AgentSpec(**d.pop("agent", {}))
        mixer = MixerSpec(**d.pop("mixer", {}))
        env_d = dict(d.pop("env", {}))
        env = EnvSpec(id=str(env_d.get("id", "simple_spread_v3")), kwargs=dict(env_d.get("kwargs", {})))
        spec = cls(agent=agent, mixer=mixer, env=env, **d)
        for name in ("n_agents", "obs_dim", "state_dim", "n_actions"):
            value = getattr(spec, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"spec.{name} must be a positive integer, got {value!r}")
        if agent.kind not in ("rnn", "ff"):
            raise ValueError(f"spec.agent.kind must be 'rnn' or 'ff', got {agent.kind!r}")
        if mixer.kind not in ("qmix", "static"):
            raise ValueError(f"spec.mixer.kind must be 'qmix' or 'static', got {mixer.kind!r}")
        if mixer.hypernet_layers not in (1, 2):
            raise ValueError(f"spec.mixer.hypernet_layers must be 1 or 2, got {mixer.hypernet_layers!r}")
        return spec
