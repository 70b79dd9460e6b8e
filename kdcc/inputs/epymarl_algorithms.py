"""Which algorithm an EPyMARL/PyMARL run trained, and what kdcc does with each file it saved.

    config                                         algorithm  files
    agent_output_type "q", mixer "qmix"            qmix       agent.th, mixer.th (hypernetworks)
    agent_output_type "q", mixer "vdn"             vdn        agent.th, mixer.th (empty: VDNMixer has no weights)
    agent_output_type "q", mixer null              iql        agent.th (q_learner saves no mixer)
    agent_output_type "pi_logits", critic_type
        "cv_critic" (a centralised V(s))           mappo      agent.th (the actor), critic.th
        any other critic ("ac_critic": per agent)  ippo       agent.th (the actor), critic.th

EPyMARL's actor is the same RNNAgent as its Q-learners' agent, its fc2 emitting
logits; greedy evaluation (test_greedy) takes their argmax, as kdcc does.
A config without "mixer" (PyMARL) is QMIX when mixer.th is there, else IQL.
Weighted QMIX (pymarl2/wqmix: `central_mixer`, `central_*.th` beside mixer.th)
acts with its QMIX mixer; the central estimate only weights its training, so
it is left out with a note. The critic is never needed to act; it is read to
check it and then left out (why: `CRITIC_IGNORED`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kdcc.core.errors import KdccError

__all__ = ["detect_algorithm", "part_notes", "CRITIC", "CRITIC_IGNORED", "KNOWN_FILES"]

CRITIC = "critic.th"
KNOWN_FILES = {"agent.th", "mixer.th", "opt.th", "critic.th", "agent_opt.th", "critic_opt.th"}
CRITIC_IGNORED = ("not used: distill imitates the actor on the states it visits itself, labelled by the "
                  "teacher's own actor (DAgger), so there are no off-policy actions for advantage weighting to "
                  "discount, and a robot acts without it")
_CENTRAL_CRITICS = ("cv_critic", "cv_critic_ns")


def detect_algorithm(cfg: dict[str, Any], cfg_path: Path, has_mixer_file: bool) -> str:
    """One of kdcc's algorithms ("qmix", "vdn", "iql", "mappo", "ippo") from a run's config, or a one-line error."""
    output = cfg.get("agent_output_type", "q")
    if output == "pi_logits":
        return "mappo" if cfg.get("critic_type", "cv_critic") in _CENTRAL_CRITICS else "ippo"
    if output != "q":
        raise KdccError(f"{cfg_path}: agent_output_type {output!r}: kdcc reads Q-value agents ('q') and "
                        "actors emitting logits ('pi_logits')")
    if "mixer" not in cfg:
        return "qmix" if has_mixer_file else "iql"
    mixer = cfg["mixer"]
    if mixer is None:
        return "iql"
    if mixer in ("qmix", "vdn"):
        return str(mixer)
    raise KdccError(f"{cfg_path}: mixer {mixer!r}: kdcc reads QMIX, VDN and IQL (mixer null) teachers")


def part_notes(algorithm: str, checkpoint: Path, cfg: dict[str, Any]) -> tuple[dict[str, str], list[str]]:
    """({part: what kdcc does with it}, notes) for a checkpoint of `algorithm`."""
    parts = {"agent": "actor emitting action logits (greedy action = argmax)" if algorithm in ("mappo", "ippo")
             else "agent emitting Q-values (greedy action = argmax)"}
    notes: list[str] = []
    parts["mixer"] = {"qmix": "QMIX hypernetwork mixer", "vdn": "VDN: Q_tot = sum of the chosen Q (no weights)",
                      "iql": "none (independent learners); q_tot reports the sum of the chosen Q",
                      }.get(algorithm, "none (actor-critic); q_tot reports the sum of the chosen logits")
    if algorithm in ("mappo", "ippo"):
        critic = checkpoint / CRITIC
        parts["critic"] = f"{CRITIC} {CRITIC_IGNORED}" if critic.is_file() else f"no {CRITIC} (the actor alone acts)"
        if cfg.get("learner") not in (None, "ppo_learner"):
            notes.append(f"learner {cfg.get('learner')!r}: its actor is read as {algorithm.upper()}'s (same "
                         "network, same greedy action)")
    central = sorted(p.name for p in checkpoint.glob("*.th") if p.name not in KNOWN_FILES)
    if algorithm == "qmix" and (central or cfg.get("central_mixer")):
        what = ", ".join(central) if central else f"central_mixer {cfg.get('central_mixer')!r}"
        notes.append(f"Weighted QMIX: acting uses its QMIX mixer (mixer.th); the central estimate ({what}) only "
                     "weights training and is ignored")
    elif central:
        notes.append(f"ignored files the {algorithm.upper()} teacher does not need: {', '.join(central)}")
    return parts, notes
