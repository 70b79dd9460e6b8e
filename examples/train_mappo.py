"""Train an example MAPPO teacher on simple_spread_v3 (N=3) on the CPU, in a few minutes.

MAPPO as EPyMARL runs it (`mappo.yaml`): an actor shared by all agents whose
fc2 emits action logits (input = obs ‖ agent-id one-hot, no last action), a
centralised critic V(state), PPO's clipped objective with an entropy bonus,
GAE advantages and several epochs per batch of on-policy episodes. The actor
is kdcc's agent network (`kdcc.marl.qmix.RNNAgent`), feed-forward here to keep
the run short. Greedy evaluation (argmax of the logits) is what kdcc deploys.

    python examples/train_mappo.py --minutes 5 -o examples/mappo_spread_teacher.pt

writes the teacher (format v1, `spec.algorithm = "mappo"`, no mixer; the critic
is not stored: a robot acts without it) and `<out>_curve.csv`.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from kdcc.inputs.teacher import save_teacher
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.worlds import make_env
from kdcc.marl.qmix import build_agent, build_inputs, build_mixer


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default="examples/mappo_spread_teacher.pt")
    p.add_argument("--minutes", type=float, default=5.0, help="wall-clock training budget")
    p.add_argument("--envs", type=int, default=16, help="episodes per PPO batch, stepped in lockstep")
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--lam", type=float, default=0.95, help="GAE lambda")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--clip", type=float, default=0.2)
    p.add_argument("--entropy", type=float, default=0.01)
    p.add_argument("--reward-scale", type=float, default=0.1)
    p.add_argument("--eval-every", type=int, default=20, help="PPO iterations between greedy evaluations")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


def rollout(spec, envs, actor, seeds, rng, greedy: bool):
    """len(envs) episodes in lockstep: obs, state, actions, log-probs, team rewards, and the team returns."""
    K, n, T = len(envs), spec.n_agents, envs[0].max_steps
    obs = np.zeros((K, T, n, spec.obs_dim), np.float32)
    state = np.zeros((K, T + 1, spec.state_dim), np.float32)
    actions = np.zeros((K, T, n), np.int64)
    logp = np.zeros((K, T, n), np.float32)
    reward = np.zeros((K, T), np.float32)
    cur = [env.reset(seed=int(s)) for env, s in zip(envs, seeds)]
    h = actor.init_hidden(K * n)
    none = torch.full((K, n), -1, dtype=torch.long)
    with torch.no_grad():
        for t in range(T):
            obs[:, t] = np.stack([c[0] for c in cur])
            state[:, t] = np.stack([c[1] for c in cur])
            logits, h = actor(build_inputs(spec, torch.from_numpy(obs[:, t]), none).reshape(K * n, -1), h)
            dist = torch.distributions.Categorical(logits=logits.view(K, n, -1))
            act = dist.probs.argmax(-1) if greedy else dist.sample()
            actions[:, t], logp[:, t] = act.numpy(), dist.log_prob(act).numpy()
            for k, env in enumerate(envs):
                r = env.step(actions[k, t])
                cur[k], reward[k, t] = (r.obs, r.state), r.reward
    state[:, T] = np.stack([c[1] for c in cur])
    return obs, state, actions, logp, reward, reward.sum(1)


def gae(values: torch.Tensor, rewards: torch.Tensor, gamma: float, lam: float) -> torch.Tensor:
    """values [K, T+1] (the last bootstraps the time limit), rewards [K, T] -> advantages [K, T]."""
    adv, last = torch.zeros_like(rewards), torch.zeros(rewards.shape[0])
    for t in reversed(range(rewards.shape[1])):
        delta = rewards[:, t] + gamma * values[:, t + 1] - values[:, t]
        last = delta + gamma * lam * last
        adv[:, t] = last
    return adv


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    env_spec = EnvSpec("simple_spread_v3", {"N": 3, "max_cycles": 25})
    envs = [make_env(env_spec) for _ in range(args.envs)]
    e = envs[0]
    spec = MarlSpec(n_agents=e.n_agents, obs_dim=e.obs_dim, state_dim=e.state_dim, n_actions=e.n_actions,
                    agent=AgentSpec("ff", args.hidden), mixer=MixerSpec("none"), env=env_spec,
                    obs_last_action=False, obs_agent_id=True, algorithm="mappo")
    actor = build_agent(spec)
    critic = nn.Sequential(nn.Linear(spec.state_dim, args.hidden), nn.ReLU(), nn.Linear(args.hidden, args.hidden),
                           nn.ReLU(), nn.Linear(args.hidden, 1))
    opt = torch.optim.Adam([*actor.parameters(), *critic.parameters()], lr=args.lr)
    K, n, T = args.envs, spec.n_agents, e.max_steps
    eval_envs = [make_env(env_spec) for _ in range(args.eval_episodes)]
    rows, start, it = [], time.time(), 0
    while time.time() - start < 60 * args.minutes:
        obs, state, actions, logp_old, reward, returns = rollout(
            spec, envs, actor, rng.integers(1_000, 10**9, K), rng, greedy=False)
        obs_t, act_t = torch.from_numpy(obs), torch.from_numpy(actions)
        logp_old, state_t = torch.from_numpy(logp_old), torch.from_numpy(state)
        with torch.no_grad():
            values = critic(state_t).squeeze(-1)
            adv = gae(values, torch.from_numpy(reward) * args.reward_scale, args.gamma, args.lam)
            target = adv + values[:, :-1]
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        x = build_inputs(spec, obs_t.reshape(K * T, n, -1), torch.full((K * T, n), -1)).reshape(K * T * n, -1)
        for _ in range(args.epochs):
            logits, _ = actor(x, actor.init_hidden(K * T * n))
            dist = torch.distributions.Categorical(logits=logits.view(K, T, n, -1))
            ratio = torch.exp(dist.log_prob(act_t) - logp_old)
            a = adv.unsqueeze(-1)
            policy_loss = -torch.min(ratio * a, ratio.clamp(1 - args.clip, 1 + args.clip) * a).mean()
            value_loss = F.mse_loss(critic(state_t[:, :-1]).squeeze(-1), target)
            loss = policy_loss + 0.5 * value_loss - args.entropy * dist.entropy().mean()
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_([*actor.parameters(), *critic.parameters()], 10.0)
            opt.step()
        it += 1
        if it % args.eval_every == 0 or it == 1:
            *_, eval_returns = rollout(spec, eval_envs, actor, np.arange(args.eval_episodes) + 10**6, rng, greedy=True)
            rows.append({"env_steps": it * K * T, "episodes": it * K, "wall_s": round(time.time() - start, 1),
                         "train_return": round(float(returns.mean()), 3),
                         "eval_return": round(float(eval_returns.mean()), 3), "loss": round(float(loss), 5)})
            print(rows[-1], flush=True)
    out = Path(args.out)
    actor.eval()
    save_teacher(out, spec, actor, build_mixer(spec),
                 {"trainer": "examples/train_mappo.py", "algorithm": "mappo", "seed": args.seed,
                  "env_steps": it * K * T, "minutes": args.minutes, "final_eval_return": rows[-1]["eval_return"]})
    with open(out.with_name(out.stem + "_curve.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
