"""What a teacher, dataset, bundle or compile record holds (`kdcc inspect`).

    teacher.pt / MODEL_DIR / ONNX_DIR   spec, sizes, parameters, provenance, import notes
    data.npz                            steps, episodes, arrays, team return per episode
    BUNDLE_DIR (profile.json)           target, libraries, cost, fidelity, inputs, files
    RECORD_DIR (manifest.json)          pipeline, budget, inputs, cost and fidelity per pass

Every kind is described as one JSON-able dict and rendered as a few aligned
lines. What each kind needs (torch, numpy) is imported when it is inspected.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["inspect_path", "render_inspect"]


def _files(paths: list[Path]) -> list[dict[str, Any]]:
    from kdcc.core.fileio import sha256_file

    return [{"name": p.name, "bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in paths if p.is_file()]


_SUM_MIXERS = {"vdn": "VDN: Q_tot = sum of the chosen Q (no weights; kept as a sum)",
               "iql": "none (IQL); q_tot reports the sum of the chosen Q",
               "mappo": "none (actor-critic); q_tot reports the sum of the chosen logits",
               "ippo": "none (actor-critic); q_tot reports the sum of the chosen logits"}


def _spec_summary(spec) -> dict[str, Any]:
    kind = "GRU" if spec.recurrent else "feed-forward"
    if spec.agent.split:
        agent = f"one {kind} network per agent, widths {', '.join(map(str, spec.agent.widths))}"
    else:
        agent = f"{kind} agent, hidden {spec.agent.hidden_dim}" + (", shared by all agents" if spec.n_agents > 1 else "")
    m = spec.mixer
    if m.kind == "static":
        mixer = f"static monotonic mixer, embed {m.embed_dim}"
    elif m.kind == "hyper":
        mixer = f"small hypernetwork mixer, embed {m.embed_dim}, one state embedding of width {m.hypernet_embed}"
    elif spec.sums:
        mixer = _SUM_MIXERS[spec.algorithm]
    else:
        hyper = f"{m.hypernet_layers}-layer hypernetworks" + (f" of width {m.hypernet_embed}"
                                                              if m.hypernet_layers == 2 else "")
        mixer = f"QMIX mixer, embed {m.embed_dim}, {hyper}"
    parts = ["obs"] + (["last action"] if spec.obs_last_action else []) + (["agent id"] if spec.obs_agent_id else [])
    if spec.agent.split:  # each network reads its own agent's columns; the id is folded into its biases
        parts = ["own obs"] + (["own last action"] if spec.obs_last_action else [])
    algorithm = {"algorithm": f"{spec.algorithm.upper()} ({'actor emitting action logits' if spec.policy == 'logits' else 'Q-values'}; greedy = argmax)"}
    return {**algorithm, "env": spec.env.id, "env_kwargs": dict(spec.env.kwargs), "n_agents": spec.n_agents,
            "obs_dim": spec.obs_dim, "state_dim": spec.state_dim, "n_actions": spec.n_actions,
            "input_dim": spec.input_dim, "agent_input": " ‖ ".join(parts), "agent": agent, "mixer": mixer,
            **({"input_dims": [len(spec.agent_input_cols(i)) for i in range(spec.n_agents)]} if spec.agent.split else {}),
            **({"obs_sizes": [spec.obs_size(i) for i in range(spec.n_agents)],
                "action_sizes": [spec.action_size(i) for i in range(spec.n_agents)]} if spec.heterogeneous else {})}


def _teacher(path: Path, config: str | None, kind: str) -> dict[str, Any]:
    from kdcc.inputs.sources import has_torch_weights, load_teacher_source, teacher_files
    from kdcc.marl.qmix import build_agent, build_mixer

    if kind == "model-dir":
        from kdcc.inputs.epymarl import load_model_dir

        teacher = load_model_dir(path, config, quiet=True)  # its notes go into the description instead
    else:
        teacher = load_teacher_source(path, config)
    spec = teacher.spec
    agent, mixer = (teacher.agent, teacher.mixer) if has_torch_weights(teacher) else (build_agent(spec),
                                                                                      build_mixer(spec))
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    provenance = dict(teacher.provenance)
    parts = provenance.pop("parts", None)
    if parts is None and spec.policy == "logits":
        parts = {"critic": "not in this file (the actor alone acts; distill does not use a critic)"}
    return {"kind": "teacher", "format": {"pt": "kdcc teacher file v1", "model-dir": "EPyMARL/PyMARL model directory",
                                          "onnx": "ONNX teacher (ONNX Runtime)"}[kind],
            "path": str(path), "spec": spec.to_dict(), "summary": _spec_summary(spec),
            **({"parts": parts} if parts else {}),
            "params": {"agent": count(agent), "mixer": count(mixer), "total": count(agent) + count(mixer)},
            "import_notes": provenance.pop("import_notes", []), "provenance": provenance,
            "files": _files(teacher_files(path, config))}


def _dataset(path: Path) -> dict[str, Any]:
    import numpy as np

    from kdcc.inputs.dataset import load_dataset

    data = load_dataset(path)
    a = data.arrays
    ends = np.flatnonzero(a["episode_end"])
    returns = np.array([seg.sum() for seg in np.split(a["rewards"], ends + 1)[: len(ends)]])
    meta = {k: v for k, v in data.meta.items() if k != "spec"}
    return {"kind": "dataset", "path": str(path), "steps": len(data), "episodes": data.episodes,
            "meta": meta, "summary": _spec_summary(data.spec), "spec": data.spec.to_dict(),
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in a.items()},
            "team_return": {"mean": float(returns.mean()), "std": float(returns.std()),
                            "min": float(returns.min()), "max": float(returns.max())},
            "files": _files([path])}


def _read_json(path: Path) -> dict[str, Any]:
    from kdcc.core.fileio import read_json_object

    return read_json_object(path)


def _bundle(root: Path) -> dict[str, Any]:
    from kdcc.ir.spec import MarlSpec

    doc = _read_json(root / "profile.json")
    spec = MarlSpec.from_dict(doc["spec"]) if isinstance(doc.get("spec"), dict) else None
    sizes = {p.name: sum(f.stat().st_size for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
             for p in sorted(root.iterdir())}
    return {"kind": "bundle", "path": str(root), "format": f"{doc.get('format')} v{doc.get('version')}",
            "kdcc_version": doc.get("kdcc_version"), "target": doc.get("target", {}),
            "libraries": doc.get("libraries", []), "pipeline": doc.get("pipeline", []),
            "cost": doc.get("cost", {}), "fidelity": doc.get("fidelity", {}), "inputs": doc.get("inputs", {}),
            "verification": doc.get("verification", {}),
            "summary": _spec_summary(spec) if spec else {}, "sizes": sizes,
            "reports": [n for n in ("report.md", "report.html") if (root / n).is_file()],
            "record": (root / "record" / "manifest.json").is_file(),
            "roles": [_role(r) for r in doc.get("robots", []) if isinstance(r, dict)], "trust": _trust(root),
            "schedule_fallbacks": _schedule_fallbacks(doc)}


def _schedule_fallbacks(doc: dict[str, Any]) -> list[str]:
    """Each kernel that fell back to TVM's default schedule, far slower than kdcc's, as `library: kernel (why)`:
    profile.json's `schedule.fallbacks` of the team step's libraries and of each role's."""
    libraries = list(doc.get("libraries", []))
    libraries += [lib for r in doc.get("robots", []) if isinstance(r, dict) for lib in r.get("libraries", {}).values()]
    return [f"{lib['path']}: {f['kernel']} ({f['reason']})"
            for lib in libraries if "schedule" in lib for f in lib["schedule"].get("fallbacks", [])]


def _role(robot: dict[str, Any]) -> dict[str, Any]:
    """A role's profile (profile.json v2 `robots` entry) in a few words: contract, team, envelope per device."""
    obs, actions, team = robot.get("observation", {}), robot.get("actions") or {}, robot.get("trained_for", {})
    if "inputs" in obs:
        reads = ", ".join(f"{i['name']} [{i['size']}]" for i in obs["inputs"])
    elif obs:
        reads = f"own observation, size {_sizes(obs['size'])} (padded to {obs['padded_to']}), {obs['dtype']}"
    else:
        reads = f"own observation, size {robot.get('obs_dim')}"
    needs = robot.get("needs_from_others")
    envelope = {device: {"latency_us": e.get("latency_us"), "energy_uj": e.get("energy_uj"), **e.get("memory", {})}
                for device, e in robot.get("envelope", {}).get("per_step", {}).items()}
    return {"role": robot.get("role"), "agents": robot.get("agents", []), "reads": reads,
            "actions": _sizes(actions["count"]) if actions else None,
            "needs_from_others": "nothing (decentralised)" if needs == [] else needs,
            "trained_for": (f"{team['n_agents']} agents ({', '.join(team['composition'])}) in {team['env']['id']}"
                            if team else None), "envelope_estimated": envelope,
            "certified_eps": _eps(robot["certified_eps"]) if "certified_eps" in robot else None}


def _eps(c: dict[str, Any]) -> str:
    """The role's certified ε distribution in one line, the student's then the teacher's."""
    student, teacher = c["student"], c["teacher"]
    return (f"median {student['median']:.3g}, p10 {student['p10']:.3g} (teacher {teacher['median']:.3g}, "
            f"{teacher['p10']:.3g}); {c['method'].upper()}, {c['episodes']} episode(s), scale {c['eps_scale']}")


def _sizes(per_agent: dict[str, int]) -> str:
    values = sorted(set(per_agent.values()))
    return str(values[0]) if len(values) == 1 else ", ".join(f"agent {a}: {n}" for a, n in per_agent.items())


def _trust(root: Path) -> dict[str, Any]:
    """Whether the files match manifest.json (or why not), and whether kdcc.sig is there (its key is not known here)."""
    from kdcc.core.errors import KdccError
    from kdcc.targets.bundle.integrity import SIGNATURE, check_bundle

    try:
        integrity = f"matches manifest.json ({check_bundle(root)['files']} files)"
    except KdccError as e:
        integrity = str(e).removeprefix(f"{root}: ")
    signed = (root / SIGNATURE).is_file()
    return {"integrity": integrity, "signature": f"{SIGNATURE} (check it: kdcc verify BUNDLE --key PUB.pem)"
            if signed else "not signed"}


def _record(root: Path) -> dict[str, Any]:
    manifest = _read_json(root / "manifest.json")
    passes = []
    for i, name in enumerate(manifest.get("passes", [])):
        metrics_file = root / f"{i:02d}_{name}" / "metrics.json"
        doc = _read_json(metrics_file) if metrics_file.is_file() else {}
        m, f = doc.get("metrics", {}), doc.get("fidelity", {})
        passes.append({"index": i, "name": name, "flops": m.get("flops"), "params": m.get("params"),
                       "latency_us": m.get("latency_us"), "device": m.get("device"),
                       "action_agreement": f.get("action_agreement"), "max_abs_dq": f.get("max_abs_dq")})
    return {"kind": "record", "path": str(root),
            **{k: manifest.get(k) for k in ("target", "pipeline", "seed", "budget", "options", "inputs",
                                            "versions")}, "passes": passes}


def inspect_path(path: str | Path, config: str | None = None) -> dict[str, Any]:
    """Describe `path` as a dict; raises KdccError (one line) when it is none of the known kinds."""
    from kdcc.core.errors import KdccError
    from kdcc.inputs.sources import teacher_kind

    p = Path(path)
    if not p.exists():
        raise KdccError(f"{p}: no such file or directory")
    if p.is_dir() and (p / "profile.json").is_file():
        return _bundle(p)
    if p.is_dir() and (p / "manifest.json").is_file():
        return _record(p)
    if p.is_file() and p.suffix == ".npz":
        return _dataset(p)
    kind = teacher_kind(p)
    if p.is_dir() and kind == "pt":
        raise KdccError(f"{p}: not a bundle (profile.json), record (manifest.json), EPyMARL/PyMARL model "
                        "directory (agent.th) or ONNX teacher (agent.onnx)")
    return _teacher(p, config, kind)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, dict):
        nested = lambda v: f"{{{_fmt(v)}}}" if isinstance(v, dict) else _fmt(v)  # noqa: E731
        return ", ".join(f"{k}={nested(v)}" for k, v in value.items()) or "-"
    if isinstance(value, list):
        return ", ".join(_fmt(v) for v in value) or "-"
    return str(value)


def _lines(pairs: list[tuple[str, Any]]) -> list[str]:
    width = max(len(k) for k, _ in pairs)
    return [f"{k:<{width}}  {_fmt(v)}" for k, v in pairs]


def _role_lines(r: dict[str, Any]) -> list[str]:
    lines = [f"role {r['role']}" + (f" (agents {_fmt(r['agents'])})" if r["agents"] else ""),
             f"  reads              {r['reads']}"]
    if r["actions"] is not None:
        lines.append(f"  actions            {r['actions']}")
    lines.append(f"  needs from others  {_fmt(r['needs_from_others'])}")
    if r["trained_for"]:
        lines.append(f"  trained for        {r['trained_for']}")
    if r["certified_eps"]:
        lines.append(f"  certified ε        {r['certified_eps']}")
    for device, e in r["envelope_estimated"].items():
        step = (f"per step (estimated) {e['latency_us']:.2f} µs, {e['energy_uj']:.3g} µJ, {e['model_bytes']:,} B "
                "moved; " if e.get("latency_us") is not None else "not costed; ")
        vm_free = f" (VM-free {e['vm_free_library_bytes']:,} B)" if e.get("vm_free_library_bytes") else ""
        lines.append(f"  {device:<18} {step}library {e['library_bytes']:,} B{vm_free}")
    return lines


def render_inspect(info: dict[str, Any]) -> str:
    kind, s = info["kind"], info.get("summary", {})
    head = [("kind", kind), ("path", info["path"])]
    team = [("algorithm", s["algorithm"]), ("environment", f"{s['env']} {_fmt(s['env_kwargs'])}"), ("agents", s["n_agents"]),
            ("obs / state / actions", f"{s['obs_dim']} / {s['state_dim']} / {s['n_actions']}"
             + (f" (per agent: obs {s['obs_sizes']}, actions {s['action_sizes']})" if "obs_sizes" in s else "")),
            ("agent input", f"{s['agent_input']} ({s.get('input_dims', s['input_dim'])})"), ("agent", s["agent"]),
            ("mixer", s["mixer"])] if s else []
    if kind == "teacher":
        parts = [(f"{part} (kdcc)", what) for part, what in info.get("parts", {}).items()]
        pairs = head + [("format", info["format"])] + team + parts + [("parameters", info["params"]),
                                                                      ("provenance", info["provenance"])]
        out = _lines(pairs)
        out += [f"note: {n}" for n in info["import_notes"]]
    elif kind == "dataset":
        r = info["team_return"]
        pairs = head + [("steps", info["steps"]), ("episodes", info["episodes"]), ("collection", info["meta"])]
        pairs += team + [("team return", f"{r['mean']:.2f} ± {r['std']:.2f} (min {r['min']:.2f}, "
                                         f"max {r['max']:.2f})")]
        out = _lines(pairs)
        out += [f"  {k:<13} {v['dtype']:<8} {v['shape']}" for k, v in info["arrays"].items()]
    elif kind == "bundle":
        c, f = info["cost"], info["fidelity"]
        pairs = head + [("format", info["format"]), ("target", info["target"].get("name")),
                        ("libraries", [f"{lib['device']} ({lib['kind']}, {lib['arch']}): {lib['path']}"
                                       for lib in info["libraries"]])] + team
        if c:
            pairs.append(("cost per step", f"{c.get('flops', 0):,} FLOPs, {c.get('param_bytes', 0):,} B params, "
                                           f"{c.get('latency_us', 0):.2f} µs on {c.get('device')}"))
        if f:
            pairs.append(("fidelity", f"agreement {f.get('action_agreement', 0):.3f}, "
                                      f"max|ΔQ| {f.get('max_abs_dq', 0):.3g}"))
        if info["schedule_fallbacks"]:
            pairs.append(("schedule fallbacks", info["schedule_fallbacks"]))
        pairs += [("pipeline", info["pipeline"]), ("reports", info["reports"]),
                  ("sizes (bytes)", info["sizes"]), ("integrity", info["trust"]["integrity"]),
                  ("signature", info["trust"]["signature"])]
        out = _lines(pairs) + [line for r in info["roles"] for line in _role_lines(r)]
    else:
        pairs = head + [("target", info["target"]), ("pipeline", info["pipeline"]), ("seed", info["seed"]),
                        ("budget", info["budget"])]
        out = _lines(pairs)
        out += [f"  [{p['index']:02d}] {p['name']:<22} {_fmt(p['flops']):>11} FLOPs  "
                f"{_fmt(p['latency_us']):>8} µs  agree {_fmt(p['action_agreement'])}" for p in info["passes"]]
    return "\n".join(out)
