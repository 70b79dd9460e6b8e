"""Train an example value-based teacher (QMIX, VDN or IQL) on a cooperative MPE scenario on the CPU.

As in PyMARL/EPyMARL: a GRU agent shared by all agents (input = obs ‖
last-action one-hot ‖ agent-id one-hot), replay of whole episodes, a target
network refreshed every `--target-update` episodes, double-Q targets and
linearly annealed ε-greedy exploration. The algorithms differ only in what the
TD target is about (`--algorithm`): QMIX regresses Q_tot from a 2-layer
hypernetwork mixer, VDN the sum of the agents' chosen Q, IQL each agent's own
chosen Q towards the team reward plus its own bootstrap (EPyMARL's q_learner
with `mixer: null`). Several environments step in lockstep so the policy runs
batched. Default scenario simple_spread_v3, N=3.

    python examples/train_teacher.py --minutes 30 -o examples/spread_teacher.pt

    python examples/train_teacher.py --algorithm vdn --hidden 64 --max-steps 300000 --minutes 20 \
        -o examples/vdn_spread_teacher.pt

    python examples/train_teacher.py --algorithm iql --hidden 64 --standardise-rewards --max-steps 300000 \
        --minutes 20 -o examples/iql_spread_teacher.pt

    python examples/train_teacher.py --env simple_speaker_listener_v4 --hidden 128 --minutes 15 \
        -o examples/speaker_listener_teacher.pt

writes the teacher (format v1, `spec.algorithm` set for VDN and IQL), `<out>_curve.csv` and
`<out>_curve.png`. `--max-steps` bounds a run reproducibly (same seed, same weights); `--minutes`
caps its wall-clock time. Agents with fewer actions than the widest (speaker–listener) act,
explore and bootstrap only over the actions they have (the env's `avail` mask).
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from kdcc.inputs.teacher import save_teacher
from kdcc.ir.spec import AgentSpec, EnvSpec, MarlSpec, MixerSpec
from kdcc.marl.worlds import make_env, with_agent_sizes
from kdcc.marl.qmix import build_agent, build_inputs, build_mixer

MIXERS = {"qmix": "qmix", "vdn": "vdn", "iql": "none"}  # algorithm -> spec.mixer.kind
ALGORITHMS = {"qmix": "QMIX", "vdn": "VDN (sum mixer)", "iql": "IQL (no mixer, per-agent TD)"}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default="examples/spread_teacher.pt")
    p.add_argument("--env", default="simple_spread_v3", help="mpe2 scenario (kdcc.marl.worlds.mpe.SCENARIOS)")
    p.add_argument("--algorithm", choices=sorted(MIXERS), default="qmix",
                   help="qmix: hypernetwork mixer; vdn: Q_tot = sum of chosen Q; iql: no mixer, per-agent TD")
    p.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    p.add_argument("--max-steps", type=int, default=2_000_000, help="env-step budget")
    p.add_argument("--envs", type=int, default=8, help="environments stepped in lockstep")
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--agent", choices=("rnn", "ff"), default="rnn",
                   help="agent network: rnn (fc1, GRU, fc2) or ff (fc1, fc, fc2: EPyMARL's use_rnn: False)")
    p.add_argument("--embed", type=int, default=64, help="mixing embed dim")
    p.add_argument("--hypernet-embed", type=int, default=256)
    p.add_argument("--buffer", type=int, default=5000, help="episodes kept for replay")
    p.add_argument("--batch", type=int, default=32, help="episodes per update")
    p.add_argument("--updates-per-round", type=int, default=3)
    p.add_argument("--lr", type=float, default=5e-4)
    p.add_argument("--gamma", type=float, default=0.99)
    p.add_argument("--eps-anneal", type=int, default=100_000, help="env steps from ε=1 to ε=0.05")
    p.add_argument("--target-update", type=int, default=200, help="episodes between target refreshes")
    p.add_argument("--eval-every", type=int, default=25_000, help="env steps between greedy evaluations")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--standardise-rewards", action="store_true",
                   help="TD targets from (r - mean) / std of every reward seen so far (EPyMARL's option)")
    p.add_argument("--terminal-at-limit", action="store_true",
                   help="treat the time limit as terminal (no bootstrap from the last state)")
    p.add_argument("--seed", type=int, default=1)
    return p.parse_args(argv)


class RewardStats:
    """Running mean and std of all rewards, for `--standardise-rewards`: a shift and a positive scale leave the
    greedy policy as it was, and without a mixer (IQL) each agent's Q otherwise carries the team's whole
    value level (tens), in which its action gaps (~0.1) drown."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, 0.0, 0.0

    def add(self, rewards: np.ndarray):
        n, mean = rewards.size, float(rewards.mean())
        delta, total = mean - self.mean, self.n + n
        self.m2 += float(((rewards - mean) ** 2).sum()) + delta ** 2 * self.n * n / total
        self.mean, self.n = self.mean + delta * n / total, total

    def standardise(self, rewards: torch.Tensor) -> torch.Tensor:
        return (rewards - self.mean) / max((self.m2 / self.n) ** 0.5, 1e-8)


class Replay:
    """Whole episodes of fixed length T, stored as arrays.

    MPE episodes end only at the time limit, which the agents cannot observe, so
    the last step bootstraps like any other (as EPyMARL does for time limits).
    """

    def __init__(self, cap, T, n, obs_dim, state_dim):
        self.cap, self.size, self.pos = cap, 0, 0
        self.obs = np.zeros((cap, T + 1, n, obs_dim), np.float32)
        self.state = np.zeros((cap, T + 1, state_dim), np.float32)
        self.actions = np.zeros((cap, T, n), np.int64)
        self.reward = np.zeros((cap, T), np.float32)

    def add(self, obs, state, actions, reward):
        for k in range(obs.shape[0]):
            i = self.pos
            self.obs[i], self.state[i], self.actions[i] = obs[k], state[k], actions[k]
            self.reward[i] = reward[k]
            self.pos = (self.pos + 1) % self.cap
            self.size = min(self.size + 1, self.cap)

    def sample(self, rng, batch):
        idx = rng.integers(0, self.size, size=batch)
        return (torch.from_numpy(self.obs[idx]), torch.from_numpy(self.state[idx]),
                torch.from_numpy(self.actions[idx]), torch.from_numpy(self.reward[idx]))


def unroll(spec, agent, obs, actions):
    """Q-values for every step of a batch of episodes: obs [B, T+1, n, o] -> [B, T+1, n, A]."""
    B, T1, n, _ = obs.shape
    last = torch.full((B, T1, n), -1, dtype=torch.long)
    last[:, 1:] = actions[:, : T1 - 1]
    h = agent.init_hidden(B * n)
    qs = []
    for t in range(T1):
        x = build_inputs(spec, obs[:, t], last[:, t]).reshape(B * n, -1)
        q, h = agent(x, h)
        qs.append(q.view(B, n, -1))
    return torch.stack(qs, dim=1)


def td_values(algorithm, mixer, chosen, states):
    """What the TD loss regresses, [B, T, k]: Q_tot (k = 1) for QMIX and VDN, each agent's chosen Q
    (k = n_agents) for IQL, whose targets are the shared team reward plus the agent's own bootstrap."""
    if algorithm == "iql":
        return chosen
    B, T, n = chosen.shape
    return mixer(chosen.reshape(-1, n), states.reshape(B * T, -1)).view(B, T, 1)


def unavail_bias(env) -> torch.Tensor:
    """[n, A]: 0 where an agent has the action, -1e9 where it has not."""
    return (1.0 - torch.from_numpy(env.avail)) * -1e9


def run_episodes(spec, envs, agent, seeds, eps, rng):
    """Step len(envs) episodes in lockstep; returns arrays for replay and team returns."""
    K, n, T = len(envs), spec.n_agents, envs[0].max_steps
    obs = np.zeros((K, T + 1, n, spec.obs_dim), np.float32)
    state = np.zeros((K, T + 1, spec.state_dim), np.float32)
    actions = np.zeros((K, T, n), np.int64)
    reward = np.zeros((K, T), np.float32)
    for k, env in enumerate(envs):
        obs[k, 0], state[k, 0] = env.reset(seed=int(seeds[k]))
    h = agent.init_hidden(K * n)
    last = torch.full((K, n), -1, dtype=torch.long)
    with torch.no_grad():
        for t in range(T):
            x = build_inputs(spec, torch.from_numpy(obs[:, t]), last).reshape(K * n, -1)
            q, h = agent(x, h)
            greedy = (q.view(K, n, -1) + unavail_bias(envs[0])).argmax(-1).numpy()
            explore = rng.random((K, n)) < eps
            sizes = np.asarray(envs[0].action_sizes)
            random = (rng.random((K, n)) * sizes).astype(np.int64)  # uniform over each agent's own actions
            act = np.where(explore, random, greedy)
            for k, env in enumerate(envs):
                r = env.step(act[k])
                obs[k, t + 1], state[k, t + 1], reward[k, t] = r.obs, r.state, r.reward
            actions[:, t] = act
            last = torch.from_numpy(act)
    return obs, state, actions, reward, reward.sum(axis=1)


def main(argv=None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    defaults = {"simple_spread_v3": {"N": 3, "max_cycles": 25, "local_ratio": 0.5}}
    env_spec = EnvSpec(args.env, defaults.get(args.env, {"max_cycles": 25}))
    envs = [make_env(env_spec) for _ in range(args.envs)]
    e0 = envs[0]
    mixer_spec = (MixerSpec("qmix", args.embed, 2, args.hypernet_embed) if args.algorithm == "qmix"
                  else MixerSpec(MIXERS[args.algorithm]))
    spec = with_agent_sizes(MarlSpec(
        n_agents=e0.n_agents, obs_dim=e0.obs_dim, state_dim=e0.state_dim, n_actions=e0.n_actions,
        agent=AgentSpec(args.agent, args.hidden), mixer=mixer_spec, env=env_spec, algorithm=args.algorithm))
    agent, mixer = build_agent(spec), build_mixer(spec)
    t_agent, t_mixer = build_agent(spec), build_mixer(spec)
    t_agent.load_state_dict(agent.state_dict())
    t_mixer.load_state_dict(mixer.state_dict())
    params = list(agent.parameters()) + list(mixer.parameters())
    opt = torch.optim.Adam(params, lr=args.lr)
    T = e0.max_steps
    replay = Replay(args.buffer, T, spec.n_agents, spec.obs_dim, spec.state_dim)
    reward_stats = RewardStats()

    out = Path(args.out)
    curve_path = out.with_name(out.stem + "_curve.csv")
    rows, best = [], (-np.inf, None)
    steps = episodes = last_target = 0
    next_eval, start = 0, time.time()
    eval_seeds = np.arange(10_000, 10_000 + args.eval_episodes)
    loss_v = float("nan")
    mask = unavail_bias(e0)
    while steps < args.max_steps and time.time() - start < args.minutes * 60:
        eps = max(0.05, 1.0 - 0.95 * steps / args.eps_anneal)
        seeds = rng.integers(0, 2**31 - 1, size=args.envs)
        o, s, a, r, ret = run_episodes(spec, envs, agent, seeds, eps, rng)
        replay.add(o, s, a, r)
        reward_stats.add(r)
        steps += args.envs * T
        episodes += args.envs
        train_ret = float(ret.mean())
        if replay.size >= args.batch:
            for _ in range(args.updates_per_round):
                ob, st, ac, rw = replay.sample(rng, args.batch)
                q = unroll(spec, agent, ob, ac)
                with torch.no_grad():
                    tq = unroll(spec, t_agent, ob, ac)
                    best_next = (q[:, 1:].detach() + mask).argmax(-1, keepdim=True)  # double Q: online argmax
                    tq_next = tq[:, 1:].gather(-1, best_next).squeeze(-1)
                    target = td_values(args.algorithm, t_mixer, tq_next, st[:, 1:])
                    not_last = torch.ones_like(rw)
                    if args.terminal_at_limit:
                        not_last[:, -1] = 0.0
                    if args.standardise_rewards:
                        rw = reward_stats.standardise(rw)
                    y = rw.unsqueeze(-1) + args.gamma * not_last.unsqueeze(-1) * target
                chosen = q[:, :-1].gather(-1, ac.unsqueeze(-1)).squeeze(-1)
                loss = F.mse_loss(td_values(args.algorithm, mixer, chosen, st[:, :-1]), y)
                opt.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 10.0)
                opt.step()
                loss_v = float(loss.detach())
        if episodes - last_target >= args.target_update:
            t_agent.load_state_dict(agent.state_dict())
            t_mixer.load_state_dict(mixer.state_dict())
            last_target = episodes
        if steps >= next_eval:
            next_eval += args.eval_every
            evals = []
            for i in range(0, len(eval_seeds), args.envs):
                chunk = eval_seeds[i:i + args.envs]
                *_, eret = run_episodes(spec, envs[: len(chunk)], agent, chunk, 0.0, rng)
                evals.extend(eret.tolist())
            eval_ret = float(np.mean(evals))
            wall = time.time() - start
            rows.append({"env_steps": steps, "episodes": episodes, "wall_s": round(wall, 1), "epsilon": round(eps, 3),
                         "train_return": round(train_ret, 3), "eval_return": round(eval_ret, 3),
                         "loss": round(loss_v, 5)})
            print(f"steps {steps:>8} eps {eps:.2f} train {train_ret:8.2f} eval {eval_ret:8.2f} "
                  f"loss {loss_v:.4f} {wall/60:5.1f} min", flush=True)
            if eval_ret > best[0]:
                best = (eval_ret, ({k: v.clone() for k, v in agent.state_dict().items()},
                                   {k: v.clone() for k, v in mixer.state_dict().items()}, steps))
    agent.load_state_dict(best[1][0])
    mixer.load_state_dict(best[1][1])
    provenance = {
        "trainer": "examples/train_teacher.py",
        "algorithm": f"{ALGORITHMS[args.algorithm]} (double-Q, episode replay, target network, eps-greedy)",
        "command": "python " + " ".join(["examples/train_teacher.py", *(argv if argv is not None else sys.argv[1:])]),
        "env_steps": steps, "episodes": episodes, "best_at_env_steps": best[1][2],
        "best_eval_return": round(best[0], 3), "wall_seconds": round(time.time() - start, 1),
        "seed": args.seed, "torch": torch.__version__, "standardised_rewards": args.standardise_rewards,
    }
    save_teacher(out, spec, agent, mixer, provenance)
    with open(curve_path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    plot_curve(rows, out.with_name(out.stem + "_curve.png"), f"{args.algorithm.upper()} teacher on {spec.env.id}")
    print(f"wrote {out} (best eval return {best[0]:.2f} at {best[1][2]} env steps)")
    return 0


def plot_curve(rows, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    x = [r["env_steps"] for r in rows]
    ax.plot(x, [r["train_return"] for r in rows], label="train (ε-greedy)", alpha=0.6)
    ax.plot(x, [r["eval_return"] for r in rows], label="greedy eval")
    ax.set_xlabel("environment steps")
    ax.set_ylabel("team return per episode")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
