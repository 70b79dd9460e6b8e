"""EPyMARL/PyMARL checkpoint directories built from kdcc's own modules, saved the way those codebases save.

`learner.save_models(path)` writes bare state dicts (`th.save(module.state_dict(), ...)`) as
agent.th, mixer.th and opt.th; sacred writes the merged run config as config.json.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from kdcc.ir.spec import MarlSpec
from kdcc.marl.qmix import build_agent, build_mixer

__all__ = ["write_model_dir", "run_config"]


def run_config(spec: MarlSpec, codebase: str, key: str = "pz-mpe-simple-spread-v3", **overrides) -> dict:
    """config.json as sacred writes it for a QMIX run (the keys kdcc reads, plus a few it ignores)."""
    cfg = {"name": "qmix", "seed": 7, "t_max": 2050000, "env": "gymma", "mixer": "qmix", "agent": "rnn",
           "obs_last_action": spec.obs_last_action, "obs_agent_id": spec.obs_agent_id,
           "mixing_embed_dim": spec.mixer.embed_dim, "hypernet_layers": spec.mixer.hypernet_layers,
           "hypernet_embed": spec.mixer.hypernet_embed, "lr": 0.0005, "buffer_size": 5000,
           "env_args": {"key": key, "time_limit": 25, "pretrained_wrapper": None, "seed": 7}}
    if codebase == "pymarl":
        cfg["rnn_hidden_dim"] = spec.agent.hidden_dim
    else:
        cfg.update(hidden_dim=spec.agent.hidden_dim, use_rnn=spec.recurrent, common_reward=True,
                   reward_scalarisation="sum")
    cfg.update(overrides)
    return cfg


def write_model_dir(checkpoint: Path, spec: MarlSpec, codebase: str, *, seed: int = 0, config_at: Path | None = None,
                    **overrides) -> tuple[Path, Path, torch.nn.Module, torch.nn.Module]:
    """Write checkpoint/{agent,mixer,opt}.th and a config.json (default: in the run's sacred dir)."""
    torch.manual_seed(seed)
    agent, mixer = build_agent(spec), build_mixer(spec)
    checkpoint.mkdir(parents=True, exist_ok=True)
    torch.save(agent.state_dict(), checkpoint / "agent.th")
    torch.save(mixer.state_dict(), checkpoint / "mixer.th")
    optimiser = torch.optim.RMSprop([*agent.parameters(), *mixer.parameters()], lr=5e-4)
    torch.save(optimiser.state_dict(), checkpoint / "opt.th")
    config = config_at or checkpoint.parents[2] / "sacred" / "qmix" / "1" / "config.json"  # results/sacred/...
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(json.dumps(run_config(spec, codebase, **overrides), indent=2))
    return checkpoint, config, agent.eval(), mixer.eval()
