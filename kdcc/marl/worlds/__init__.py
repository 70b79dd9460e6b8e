"""The worlds kdcc plays, behind one interface (kdcc.marl.worlds.base): a world is data in the spec, not a module.

The teacher's spec names its world in `env.id` and its arguments in `env.kwargs`:

    simple_spread_v3, simple_reference_v3, simple_speaker_listener_v4     mpe2 scenarios
    rware:rware-tiny-2ag-v2, lbforaging:Foraging-8x8-2p-3f-v3, …          EPyMARL gymma keys (RWARE, LBF)
    vmas:navigation, vmas:balance, …                                      VMAS tasks (discrete actions)
    pettingzoo:PACKAGE.MODULE:FUNCTION                                    any PettingZoo parallel env

`make_env(spec.env)` is the one door: collect, eval, the scorer, `--keep`,
certify, the fleet simulator and `--decentralised` go through it and see only
the protocol.
"""

from __future__ import annotations

from dataclasses import replace

from kdcc.core.errors import KdccError
from kdcc.ir.spec import EnvSpec, MarlSpec
from kdcc.marl.worlds.base import StepResult, World
from kdcc.marl.worlds.gymma import GYMMA_MODULES, is_gymma_world
from kdcc.marl.worlds.mpe import SCENARIOS, is_parallel_world
from kdcc.marl.worlds.vmas import is_vmas_world

__all__ = ["World", "StepResult", "make_env", "env_dims", "with_agent_sizes", "check_world", "KNOWN_WORLDS"]

KNOWN_WORLDS = (f"mpe2 scenarios ({', '.join(sorted(SCENARIOS))}), "
                f"{', '.join(f'{m}:ENV-ID' for m in GYMMA_MODULES)} (EPyMARL gymma keys), vmas:TASK, "
                f"pettingzoo:MODULE:FUNCTION")


def check_world(env_id: str) -> None:
    """A KdccError naming what is known when `env_id` names no world kdcc can play."""
    if not (is_parallel_world(env_id) or is_gymma_world(env_id) or is_vmas_world(env_id)):
        raise KdccError(f"unknown environment {env_id!r} (known: {KNOWN_WORLDS})")


def make_env(env_spec: EnvSpec) -> World:
    check_world(env_spec.id)
    if is_gymma_world(env_spec.id):
        from kdcc.marl.worlds.gymma import GymmaTeam

        return GymmaTeam(env_spec)
    if is_vmas_world(env_spec.id):
        from kdcc.marl.worlds.vmas import VmasTeam

        return VmasTeam(env_spec)
    from kdcc.marl.worlds.mpe import TeamEnv

    return TeamEnv(env_spec)


def env_dims(env_spec: EnvSpec) -> dict[str, int]:
    """n_agents, obs_dim, state_dim, n_actions of a world (used to fill in specs)."""
    env = make_env(env_spec)
    return {"n_agents": env.n_agents, "obs_dim": env.obs_dim, "state_dim": env.state_dim,
            "n_actions": env.n_actions}


def with_agent_sizes(spec: MarlSpec) -> MarlSpec:
    """`spec` with its agents' own observation and action sizes filled in from the world, where they
    differ (speaker–listener); a homogeneous team's spec comes back as it is. Sizes a spec already
    states must be the world's (KdccError otherwise)."""
    env = make_env(spec.env)
    if spec.obs_sizes or spec.action_sizes:
        for name, stated, real in (("obs_sizes", spec.obs_sizes, env.obs_sizes),
                                   ("action_sizes", spec.action_sizes, env.action_sizes)):
            if stated and list(stated) != list(real):
                raise KdccError(f"spec.{name} {list(stated)} but {spec.env.id} has {list(real)}")
        return spec
    if len(set(env.obs_sizes)) == 1 and len(set(env.action_sizes)) == 1:
        return spec
    if env.n_agents != spec.n_agents or env.obs_dim > spec.obs_dim or env.n_actions > spec.n_actions:
        return spec  # a mismatch the loaders report with the file's name
    return replace(spec, obs_sizes=tuple(env.obs_sizes), action_sizes=tuple(env.action_sizes))
