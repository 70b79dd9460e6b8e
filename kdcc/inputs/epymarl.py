"""EPyMARL / PyMARL model directories as teachers.

Both codebases save a checkpoint as a directory of bare state dicts,

    results/models/<run>/<step>/agent.th  mixer.th  opt.th

and sacred writes the run's merged configuration to
`results/sacred/<name>/<run>/config.json`. kdcc's QMIX modules use the same
parameter names, so the state dicts load as they are; what the config does not
hold is recovered from the tensors and the environment:

    hidden size     fc1.weight [H, input]          (checked against rnn_hidden_dim / hidden_dim)
    recurrence      rnn.weight_ih (GRUCell) or rnn.weight (Linear: EPyMARL use_rnn=false)
    n_actions       fc2.weight [A, H]
    embed, state    hyper_b_1.weight [E, S]
    n_agents        hyper_w_1's last layer [E·n, ...] / E
    hypernetwork    hyper_w_1.0/.2 (2 layers, width hypernet_embed) or hyper_w_1 (1 layer)
    obs size        input - A·obs_last_action - n·obs_agent_id
    scenario        env_args.key "pz-mpe-simple-spread-v3" -> mpe2 "simple_spread_v3"; a gymma key
                    ("rware:rware-tiny-2ag-v2", "lbforaging:Foraging-8x8-2p-3f-v3") is the world's
                    id as it is, env_args.time_limit its episode length

and then checked against the mpe2 scenario's own sizes. Anything that had to be
assumed is a note (printed once on stderr, kept in the provenance); anything
that contradicts the tensors is an error naming the file.
"""

from __future__ import annotations

import pickle
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from kdcc.core import progress
from kdcc.core.errors import KdccError
from kdcc.core.fileio import read_json_object
from kdcc.inputs.epymarl_algorithms import CRITIC, detect_algorithm, part_notes
from kdcc.inputs.teacher import Teacher, teacher_from_blob
from kdcc.ir.spec import ALGORITHMS, AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.worlds import KNOWN_WORLDS, env_dims
from kdcc.marl.worlds.gymma import is_gymma_world
from kdcc.marl.worlds.mpe import SCENARIOS

__all__ = ["is_model_dir", "find_checkpoint", "find_config", "model_dir_files", "load_model_dir",
           "env_id_for_key"]

AGENT, MIXER, OPTIMISER = "agent.th", "mixer.th", "opt.th"
_ENV_PREFIXES = ("pz-mpe-", "pz-mpe2-")  # EPyMARL registers PettingZoo envs as pz-<lib>-<name with dashes>
_DEFAULT_MAX_CYCLES = 25  # mpe2's own default, which a larger time_limit cannot extend


def is_model_dir(path: str | Path) -> bool:
    """A checkpoint directory (agent.th inside) or a run directory of numbered checkpoints."""
    p = Path(path)
    return p.is_dir() and ((p / AGENT).is_file() or any((d / AGENT).is_file() for d in _step_dirs(p)))


def _step_dirs(run: Path) -> list[Path]:
    return sorted((d for d in run.iterdir() if d.is_dir() and d.name.isdigit()), key=lambda d: int(d.name))


def find_checkpoint(path: str | Path) -> tuple[Path, list[str]]:
    """The checkpoint directory to load: `path` itself, or its highest-numbered step (EPyMARL's load_step 0)."""
    p = Path(path)
    if (p / AGENT).is_file():
        return p, []
    steps = [d for d in _step_dirs(p) if (d / AGENT).is_file()]
    if not steps:
        raise KdccError(f"{p}: no {AGENT} here or in numbered step directories: not an EPyMARL/PyMARL model dir")
    return steps[-1], [f"loaded the latest checkpoint, step {steps[-1].name} (of {len(steps)})"]


def find_config(checkpoint: Path, config: str | Path | None) -> Path:
    """`--config`, else a config.json beside the checkpoint or in its run directory."""
    if config is not None:
        c = Path(config)
        if not c.is_file():
            raise KdccError(f"{c}: config file not found")
        return c
    for candidate in (checkpoint / "config.json", checkpoint.parent / "config.json"):
        if candidate.is_file():
            return candidate
    raise KdccError(f"{checkpoint}: no config.json beside the checkpoint: pass --config (sacred writes it to "
                    "results/sacred/<name>/<run>/config.json)")


def model_dir_files(path: str | Path, config: str | Path | None = None) -> list[Path]:
    """The files a teacher from this directory is made of (hashed into records, listed in depfiles)."""
    checkpoint, _ = find_checkpoint(path)
    files = [checkpoint / AGENT] + [checkpoint / f for f in (MIXER, CRITIC) if (checkpoint / f).is_file()]
    return files + [find_config(checkpoint, config)]


def env_id_for_key(key: str) -> str:
    """EPyMARL's env_args.key -> an mpe2 scenario kdcc supports, or a one-line error."""
    known = ", ".join(f"pz-mpe-{s.replace('_', '-')}" for s in sorted(SCENARIOS))
    for prefix in _ENV_PREFIXES:
        if key.startswith(prefix):
            env_id = key[len(prefix):].replace("-", "_")
            if env_id in SCENARIOS:
                return env_id
    raise KdccError(f"env_args.key {key!r} is not a world kdcc plays (known: {known}, or a gymma key such as "
                    f"rware:rware-tiny-2ag-v2 or lbforaging:Foraging-8x8-2p-3f-v3; worlds: {KNOWN_WORLDS})")


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise KdccError(f"{path}: missing")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many types on corrupt input; all mean "unreadable"
        if isinstance(e, pickle.UnpicklingError) and ("Unsupported global" in str(e) or "weights_only" in str(e)):
            raise KdccError(f"{path}: refused: the file holds Python objects that would run code on load") from None
        text = str(e).strip().splitlines()[0][:160] if str(e).strip() else type(e).__name__
        raise KdccError(f"{path}: not a readable state dict ({text})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise KdccError(f"{path}: not a state dict of tensors")
    return state


def _read_config(path: Path) -> dict[str, Any]:
    return read_json_object(path, "JSON config")


def _shape(state: dict, key: str, where: Path) -> tuple[int, ...]:
    if key not in state:
        raise KdccError(f"{where}: no tensor {key!r} (keys: {', '.join(sorted(state)[:6])})")
    return tuple(state[key].shape)


def _agent_arch(state: dict, path: Path) -> tuple[int, int, int, bool]:
    """(input width, hidden size, n_actions, recurrent) from agent.th."""
    if any(k.startswith("agents.") for k in state):
        raise KdccError(f"{path}: non-shared agents (EPyMARL rnn_ns) are not supported: kdcc compiles one "
                        "agent network shared by the team")
    hidden, width = _shape(state, "fc1.weight", path)
    n_actions = _shape(state, "fc2.weight", path)[0]
    recurrent = "rnn.weight_ih" in state
    if not recurrent and "rnn.weight" not in state:
        raise KdccError(f"{path}: no rnn.weight_ih (GRUCell) or rnn.weight (Linear): not an RNNAgent state dict")
    return width, hidden, n_actions, recurrent


def _mixer_arch(state: dict, path: Path) -> dict[str, int]:
    """embed_dim, state_dim, n_agents, hypernet_layers, hypernet_embed from mixer.th."""
    if not state:
        raise KdccError(f"{path}: empty (a VDN mixer has no weights) but the config says mixer 'qmix'")
    embed, state_dim = _shape(state, "hyper_b_1.weight", path)
    if "hyper_w_1.0.weight" in state:
        layers, hyper_embed = 2, _shape(state, "hyper_w_1.0.weight", path)[0]
        out = _shape(state, "hyper_w_1.2.weight", path)[0]
    else:
        layers, hyper_embed = 1, 64
        out = _shape(state, "hyper_w_1.weight", path)[0]
    if out % embed:
        raise KdccError(f"{path}: hyper_w_1 produces {out} weights, not a multiple of the embed size {embed}")
    return {"embed_dim": embed, "state_dim": state_dim, "n_agents": out // embed, "hypernet_layers": layers,
            "hypernet_embed": hyper_embed}


def _flag(cfg: dict, key: str, default: bool, notes: list[str]) -> bool:
    if key not in cfg:
        notes.append(f"config has no {key!r}: assumed {default} (the PyMARL/EPyMARL default)")
        return default
    return bool(cfg[key])


def _check(cfg_path: Path, what: str, configured: Any, recovered: Any, source: str) -> None:
    if configured is not None and configured != recovered:
        raise KdccError(f"{cfg_path}: {what} is {configured!r} but {source} says {recovered!r}")


def _count(value: Any, what: str, cfg_path: Path, limit: int) -> int:
    """A config count (an episode length, a number of agents or landmarks) as an int in [0, limit]."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value) or not 0 <= value <= limit:
        raise KdccError(f"{cfg_path}: {what} must be a whole number from 0 to {limit}, got {value!r}")
    return int(value)


def _env_spec(cfg: dict, cfg_path: Path, n_agents: int | None, notes: list[str], width: int) -> EnvSpec:
    """The scenario and its keyword arguments from env_args; `width` (agent.th's input width) bounds every
    count but the episode length: each agent and landmark adds to every agent's input, so a count beyond
    it cannot be the checkpoint's, and building that scenario would cost what the config claims."""
    env_args = cfg.get("env_args") or {}
    if not isinstance(env_args, dict):
        raise KdccError(f"{cfg_path}: env_args must be a JSON object, got {type(env_args).__name__}")
    key = env_args.get("key")
    if not key:
        raise KdccError(f"{cfg_path}: env_args.key is missing (env {cfg.get('env')!r}): kdcc runs the mpe2 "
                        "scenarios EPyMARL names pz-mpe-<scenario>")
    if env_args.get("pretrained_wrapper"):
        raise KdccError(f"{cfg_path}: env_args.pretrained_wrapper {env_args['pretrained_wrapper']!r} "
                        "(pretrained opponents) is not supported in kdcc's cooperative scenarios")
    if is_gymma_world(str(key)):  # RWARE, LBF: EPyMARL's gymma wrapper, its key kept as the world's id
        limit = env_args.get("time_limit")
        if limit is None:
            notes.append(f"config has no env_args.time_limit: episodes last as long as {key} lets them")
            return EnvSpec(str(key), {})
        return EnvSpec(str(key), {"time_limit": _count(limit, "env_args.time_limit", cfg_path, 10**9)})
    env_id = env_id_for_key(str(key))
    ignored = {"key", "time_limit", "pretrained_wrapper", "seed", "common_reward", "reward_scalarisation",
               "max_episode_steps"}
    kwargs = {k: v for k, v in env_args.items() if k not in ignored}
    if kwargs.pop("continuous_actions", False):
        raise KdccError(f"{cfg_path}: env_args.continuous_actions is true: QMIX teachers act on discrete actions")
    for k, v in kwargs.items():
        if k != "max_cycles" and isinstance(v, (int, float)) and not isinstance(v, bool):
            kwargs[k] = _count(v, f"env_args.{k}", cfg_path, width)
    cycles = _count(kwargs.get("max_cycles", _DEFAULT_MAX_CYCLES), "env_args.max_cycles", cfg_path, 10**9)
    limit = env_args.get("time_limit")
    if limit is not None:
        limit = _count(limit, "env_args.time_limit", cfg_path, 10**9)
    if limit is None:
        notes.append(f"config has no env_args.time_limit: episodes last max_cycles={cycles}")
    elif int(limit) != cycles:
        notes.append(f"env_args.time_limit={limit} but the PettingZoo env truncates at max_cycles={cycles}: "
                     f"episodes last {min(int(limit), cycles)} steps")
    kwargs["max_cycles"] = min(int(limit), cycles) if limit is not None else cycles
    if env_id == "simple_spread_v3" and "N" not in kwargs and n_agents is not None:
        kwargs = {"N": n_agents, **kwargs}
    return EnvSpec(env_id, kwargs)


def _reward_notes(cfg: dict) -> list[str]:
    notes = []
    if cfg.get("common_reward") is False:
        notes.append("the run trained on individual rewards (common_reward=false); kdcc eval reports the "
                     "team return, summed over agents and steps")
    elif cfg.get("reward_scalarisation") == "mean":
        notes.append("the run scalarised rewards by their mean; kdcc eval sums over agents, so its team "
                     "return is n_agents × the returns EPyMARL logged")
    return notes


def _qmix_sizes(cfg: dict, cfg_path: Path, mixer_sd: dict, mixer_path: Path) -> tuple[int, int, MixerSpec]:
    """(n_agents, state_dim, mixer spec) from a QMIX mixer.th, checked against the config."""
    mix = _mixer_arch(mixer_sd, mixer_path)
    _check(cfg_path, "mixing_embed_dim", cfg.get("mixing_embed_dim"), mix["embed_dim"], f"{MIXER} (hyper_b_1)")
    _check(cfg_path, "hypernet_layers", cfg.get("hypernet_layers"), mix["hypernet_layers"], f"{MIXER} (hyper_w_1)")
    if mix["hypernet_layers"] == 2:
        _check(cfg_path, "hypernet_embed", cfg.get("hypernet_embed"), mix["hypernet_embed"], f"{MIXER} (hyper_w_1.0)")
    return mix["n_agents"], mix["state_dim"], MixerSpec("qmix", mix["embed_dim"], mix["hypernet_layers"],
                                                        mix["hypernet_embed"])


def _spec_from(cfg: dict, cfg_path: Path, algorithm: str, agent_sd: dict, mixer_sd: dict | None,
               files: tuple[Path, Path], notes: list[str]) -> MarlSpec:
    """The spec of a checkpoint of `algorithm`: sizes from the tensors (the mixer's, for QMIX; the scenario's
    otherwise: a sum or no mixer says nothing of the state), checked against the config and mpe2."""
    agent_path, mixer_path = files
    if cfg.get("agent", "rnn") != "rnn":
        raise KdccError(f"{cfg_path}: agent {cfg.get('agent')!r}: kdcc reads the shared 'rnn' agent")
    width, hidden, n_actions, recurrent = _agent_arch(agent_sd, agent_path)
    hidden_key = "hidden_dim" if "hidden_dim" in cfg else "rnn_hidden_dim"  # EPyMARL's name, PyMARL's name
    _check(cfg_path, hidden_key, cfg.get(hidden_key), hidden, f"{AGENT} (fc1)")
    if "use_rnn" in cfg:
        _check(cfg_path, "use_rnn", bool(cfg["use_rnn"]), recurrent, f"{AGENT} (rnn layer)")
    if algorithm == "vdn" and mixer_sd:
        raise KdccError(f"{mixer_path}: holds weights, but VDN's mixer is a parameter-free sum")
    if algorithm == "qmix":
        n, state_dim, mixer = _qmix_sizes(cfg, cfg_path, mixer_sd or {}, mixer_path)
        env = _env_spec(cfg, cfg_path, n, notes, width)
    else:
        env = _env_spec(cfg, cfg_path, None, notes, width)  # no mixer to count the agents: the scenario's own count
        n, state_dim, mixer = env_dims(env)["n_agents"], env_dims(env)["state_dim"], MixerSpec(ALGORITHMS[algorithm][0])
        if env.id == "simple_spread_v3" and "N" not in env.kwargs:
            env = replace(env, kwargs={"N": n, **env.kwargs})
    last_action = _flag(cfg, "obs_last_action", True, notes)
    agent_id = _flag(cfg, "obs_agent_id", True, notes)
    obs_dim = width - (n_actions if last_action else 0) - (n if agent_id else 0)
    if obs_dim <= 0:
        raise KdccError(f"{agent_path}: input width {width} is too small for the flags obs_last_action="
                        f"{last_action}, obs_agent_id={agent_id} with {n} agents and {n_actions} actions")
    dims = env_dims(env)
    recovered = {"n_agents": n, "obs_dim": obs_dim, "state_dim": state_dim, "n_actions": n_actions}
    wrong = [f"{k} {v} (the checkpoint) vs {dims[k]} (mpe2 {env.id})" for k, v in recovered.items() if dims[k] != v]
    if wrong and dims["state_dim"] != state_dim and state_dim == n * dims["obs_dim"]:
        # EPyMARL's mixer state is the agents' padded observations concatenated (its gymma wrapper);
        # for agents of different sizes that is not mpe2's env.state(): build the state its way
        env = replace(env, state="padded-obs")
        notes.append(f"state_dim {state_dim} = {n} × the padded observation ({dims['obs_dim']}): the "
                     "mixer's state is built as EPyMARL builds it, the agents' padded observations concatenated")
        dims = env_dims(env)
        wrong = [f"{k} {v} (the checkpoint) vs {dims[k]} (mpe2 {env.id})" for k, v in recovered.items()
                 if dims[k] != v]
    if wrong:
        raise KdccError(f"{cfg_path}: the checkpoint does not fit {env.id}{dict(env.kwargs)}: {'; '.join(wrong)}")
    return MarlSpec(agent=AgentSpec("rnn" if recurrent else "ff", hidden), mixer=mixer, env=env,
                    obs_last_action=last_action, obs_agent_id=agent_id, algorithm=algorithm, **recovered)


def _report(name: str, notes: list[str]) -> None:
    """What the import had to assume, one note each (a compile loads its teacher once)."""
    for note in notes:
        progress.note(f"{name}: {note}")


def load_model_dir(path: str | Path, config: str | Path | None = None, *, quiet: bool = False) -> Teacher:
    """An EPyMARL/PyMARL checkpoint directory (+ its sacred config.json) as a kdcc Teacher."""
    checkpoint, notes = find_checkpoint(path)
    cfg_path = find_config(checkpoint, config)
    cfg = _read_config(cfg_path)
    agent_sd = _read_state(checkpoint / AGENT)
    algorithm = detect_algorithm(cfg, cfg_path, (checkpoint / MIXER).is_file())
    if algorithm == "qmix" and not (checkpoint / MIXER).is_file():
        raise KdccError(f"{checkpoint}: no {MIXER}, but the config says mixer 'qmix'")
    mixer_sd = _read_state(checkpoint / MIXER) if algorithm in ("qmix", "vdn") and (checkpoint / MIXER).is_file() else {}
    if (checkpoint / CRITIC).is_file():
        _read_state(checkpoint / CRITIC)  # readable, so the note below is about a real critic
    try:
        spec = _spec_from(cfg, cfg_path, algorithm, agent_sd, mixer_sd, (checkpoint / AGENT, checkpoint / MIXER),
                          notes)
    except (TypeError, ValueError, AttributeError) as e:  # a config value of a type mpe2 does not take
        raise KdccError(f"{cfg_path}: the config does not make a scenario ({str(e).splitlines()[0][:120]})") from None
    parts, part_note = part_notes(algorithm, checkpoint, cfg)
    notes += part_note
    notes += _reward_notes(cfg)
    if not cfg.get("test_greedy", True):
        notes.append("the run tested with ε-greedy actions (test_greedy=false); kdcc evaluates greedily")
    codebase = "epymarl" if "use_rnn" in cfg or "hidden_dim" in cfg else "pymarl"
    provenance = {"source": codebase, "checkpoint": str(checkpoint), "config": str(cfg_path),
                  "step": int(checkpoint.name) if checkpoint.name.isdigit() else None,
                  "run": {k: cfg[k] for k in ("name", "label", "seed", "t_max", "env") if k in cfg},
                  "env_args": cfg.get("env_args") or {}, "algorithm": algorithm, "parts": parts,
                  "import_notes": list(notes)}
    blob = {"spec": spec.to_dict(), "agent": agent_sd, "mixer": mixer_sd if algorithm == "qmix" else {},
            "provenance": provenance}
    teacher = teacher_from_blob(str(checkpoint), blob)
    if not quiet:
        _report(str(path), notes)
    return teacher
