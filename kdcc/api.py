"""The public API; the CLI is a thin layer over these functions."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from kdcc.core.errors import KdccError
from kdcc.core.fileio import check_writable
from kdcc.core.progress import note
from kdcc.flow.collect import collect_dataset
from kdcc.flow.compile import CompileOutput, compile_teacher
from kdcc.flow.driver import CompileOptions
from kdcc.inputs.dataset import Dataset, save_dataset
from kdcc.inputs.teacher import Teacher
from kdcc.ir.spec import MarlSpec
from kdcc.marl.worlds import make_env
from kdcc.marl.rollout import Policy, RandomPolicy, TorchPolicy
from kdcc.marl.scoring import play
from kdcc.marl.seeds import COLLECT

__all__ = ["EvalResult", "load_policy", "evaluate", "collect", "profile", "compile_teacher", "CompileOptions",
           "CompileOutput", "load_teacher_like", "certify", "certify_episodes", "sign_bundle", "verify_bundle", "team_check"]


@dataclass
class EvalResult:
    policy: str
    episodes: int
    seed: int
    mean: float
    std: float
    random_mean: float
    random_std: float
    teacher_mean: float | None = None
    normalised: float | None = None

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def load_teacher_like(path: str | Path, config: str | Path | None = None) -> Teacher:
    """Any input that holds a teacher: a v1 teacher file, an EPyMARL/PyMARL model directory (with its
    sacred config.json), or an ONNX teacher (agent.onnx + mixer.onnx + spec.json); see kdcc.inputs.sources."""
    from kdcc.inputs.sources import load_teacher_source

    return load_teacher_source(path, config)


def load_policy(path: str | Path, config: str | Path | None = None, *,
                decentralised: bool = False) -> tuple[MarlSpec, Policy, Teacher | None]:
    """A policy to run in MPE: a teacher, or a compiled bundle directory. `decentralised`: one policy per
    agent, loaded on its own and given only its own observation (a bundle's per-robot libraries)."""
    p = Path(path)
    if p.is_dir() and (p / "profile.json").is_file():
        from kdcc.targets.bundle.agent_policy import open_agent_policies
        from kdcc.targets.bundle.policy import open_bundle_policy

        if config is not None:
            raise KdccError(f"--config {config}: {p} is a compiled bundle, which carries its own spec; --config "
                            "applies to an EPyMARL/PyMARL model directory or an ONNX teacher")
        spec, policy, runs = open_agent_policies(p) if decentralised else open_bundle_policy(p)
        if decentralised or not runs.startswith("compiled host library"):  # "compiled host library (VM-free)"
            note(f"{p}: evaluating {runs}")
        return spec, policy, None
    teacher = load_teacher_like(p, config)
    if decentralised:
        from kdcc.ir.program import from_modules
        from kdcc.marl.agents import DecentralisedPolicy

        program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
        return teacher.spec, DecentralisedPolicy.from_program(program), teacher
    env = make_env(teacher.spec.env)
    return teacher.spec, TorchPolicy.from_modules(teacher.spec, teacher.agent, teacher.mixer, env.avail), teacher


def evaluate(policy_path: str | Path, episodes: int = 100, seed: int = 0,
             teacher_path: str | Path | None = None, config: str | Path | None = None,
             teacher_config: str | Path | None = None, decentralised: bool = False) -> EvalResult:
    """Mean team return of a policy, of a uniform random policy and (if given) the teacher, same seeds.

    `config` is the policy's --config (a model directory's config.json, an ONNX teacher's spec);
    `teacher_config` the same for `teacher_path`; `decentralised`: the policy's agents each loaded on
    their own and given only their own observation (the teacher, if any, is run as a team)."""
    if episodes <= 0:
        raise KdccError(f"--episodes must be positive, got {episodes}")
    spec, policy, _ = load_policy(policy_path, config, decentralised=decentralised)
    env = make_env(spec.env)
    stats = play(policy, env, seed, episodes, f"eval {Path(policy_path).name}")
    rand = play(RandomPolicy(env.avail, seed), env, seed, episodes, "eval random")
    result = EvalResult(str(policy_path), episodes, seed, float(stats.mean()), float(stats.std()),
                        float(rand.mean()), float(rand.std()))
    if teacher_path is not None:
        t_spec, t_policy, _ = load_policy(teacher_path, teacher_config)
        if t_spec.env != spec.env:
            raise KdccError(f"{teacher_path}: teacher was trained on {t_spec.env.id}, the policy on {spec.env.id}")
        teacher_mean = float(play(t_policy, env, seed, episodes, "eval teacher").mean())
        result.teacher_mean = teacher_mean
        gap = teacher_mean - result.random_mean
        result.normalised = (result.mean - result.random_mean) / gap if abs(gap) > 1e-9 else None
    return result


def collect(teacher_path: str | Path, out: str | Path, episodes: int = 200, seed: int = COLLECT.start,
            epsilon: float = 0.1, config: str | Path | None = None) -> Dataset:
    """Roll the teacher out in MPE (ε-random actions for coverage) and record what later passes need; by default
    on the seeds a compile collects on itself (kdcc.marl.scoring.COLLECT), which no score is measured on."""
    if episodes <= 0:
        raise KdccError(f"--episodes must be positive, got {episodes}")
    if not 0.0 <= epsilon <= 1.0:
        raise KdccError(f"--epsilon must be in [0, 1], got {epsilon}")
    check_writable(out)
    teacher = load_teacher_like(teacher_path, config)
    data = collect_dataset(teacher, Path(teacher_path).name, episodes=episodes, seed=seed, epsilon=epsilon)
    save_dataset(out, data)
    return data


def profile(teacher_path: str | Path, target: str, fused: bool = False, config: str | Path | None = None):
    """Per-layer cost of one team step of a teacher on a target (agents batched when `fused`)."""
    from kdcc.inputs.sources import initial_program
    from kdcc.ir.annotate import graph_costs
    from kdcc.ir.printer import annotate_program
    from kdcc.targets.profile import load_profile
    from kdcc.targets.profile_table import profile_rows

    teacher = load_teacher_like(teacher_path, config)
    prof = load_profile(target)
    program = initial_program(teacher)  # an ONNX teacher: a same-shaped program, so the same cost
    if fused:
        from kdcc.passes import PassContext, get_pass

        program = get_pass("fuse-team").run(program, PassContext(teacher=teacher, profile=prof))
    annotate_program(program)
    ops = [(f"{g}.{name}", c) for g, gm in program.graphs().items() for name, c in graph_costs(gm)]
    return teacher, profile_rows(ops, prof)


def _certify_subject(path: str | Path, config: str | Path | None, label: str | None = None):
    """A bundle's roles rebuilt from its ONNX agent steps, or a teacher's role networks."""
    from kdcc.flow.certify import Subject
    from kdcc.ir.program import from_modules
    from kdcc.ir.roles import team_roles
    from kdcc.marl.agents import role_network

    p = Path(path)
    if p.is_dir() and (p / "profile.json").is_file():
        from kdcc.targets.bundle.agent_networks import bundle_agent_networks

        spec, networks = bundle_agent_networks(p)
        return Subject(label or f"student ({p.name})", spec, networks, False)
    from kdcc.inputs.sources import has_torch_weights

    teacher = load_teacher_like(p, config)
    if not has_torch_weights(teacher):
        raise KdccError(f"{p}: an ONNX teacher has no torch weights to bound; certify its converted .pt")
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    networks = {r.name: role_network(program, r) for r in team_roles(teacher.spec)}
    return Subject(label or f"teacher ({p.name})", teacher.spec, networks, True)


def certify(policy_path: str | Path, teacher_path: str | Path | None = None, episodes: int = 4,
            eps_scale: str = "std", method: str = "crown", config: str | Path | None = None,
            teacher_config: str | Path | None = None):
    """Certified ε of every agent step on fixed probe episodes, per role (kdcc.flow.certify): a teacher's, a
    bundle's student's, or (with `teacher_path`) both side by side, the teacher first and giving the scale."""
    from kdcc.flow.certify import certify_subjects

    return certify_subjects(_subjects(policy_path, config, teacher_path, teacher_config), episodes, eps_scale, method)


def certify_episodes(policy_path: str | Path, eps: list[float], teacher_path: str | Path | None = None,
                     episodes: int = 4, perturb: str = "all", eps_scale: str = "std", method: str = "crown",
                     bisect: bool = False, config: str | Path | None = None,
                     teacher_config: str | Path | None = None):
    """Whole-team, whole-episode certificates at each ε (kdcc.marl.episode_certify), the policies as `certify`
    takes them: a teacher's, a bundle's student's, or both side by side, the teacher first."""
    from kdcc.marl.episode_certify import certify_policies

    subjects = _subjects(policy_path, config, teacher_path, teacher_config)
    return certify_policies([(s.label, s.spec, s.networks) for s in subjects], episodes, eps, perturb, eps_scale,
                            method, bisect)


def _subjects(policy_path, config, teacher_path, teacher_config) -> list:
    """The policy to certify, with the teacher first when one is given (its episodes give the scale)."""
    subjects = [_certify_subject(policy_path, config)]
    if teacher_path is not None:
        subjects.insert(0, _certify_subject(teacher_path, teacher_config, f"teacher ({Path(teacher_path).name})"))
    return subjects


def sign_bundle(bundle: str | Path, key: str | Path) -> Path:
    """Sign a compiled bundle in place with an EC private key (kdcc.sig, written atomically); the bundle must match
    its manifest first. Returns the signature's path."""
    from kdcc.targets.bundle.signing import sign_bundle as sign

    _check_is_bundle(bundle)
    return sign(bundle, key)


def verify_bundle(bundle: str | Path, public_key: str | Path | None = None) -> dict:
    """Check a bundle against its manifest and, given `public_key`, its signature. Raises
    `kdcc.targets.bundle.integrity.IntegrityError` when it fails (tampered, unsigned, wrong key) and a plain
    KdccError on bad input (not a bundle, an unreadable or unsupported key), which is checked first."""
    from kdcc.targets.bundle.integrity import SIGNATURE, check_bundle
    from kdcc.targets.bundle.signing import check_public_key, verify_signature

    if public_key is not None:
        check_public_key(public_key)
    _check_is_bundle(bundle)
    checked = check_bundle(bundle)
    if public_key is not None:
        verify_signature(bundle, public_key)
    return {"bundle": str(bundle), "files": checked["files"], "signed": (Path(bundle) / SIGNATURE).is_file(),
            "signature_checked_with": str(public_key) if public_key is not None else None}


def _check_is_bundle(bundle: str | Path) -> None:
    from kdcc.targets.bundle.integrity import MANIFEST

    p = Path(bundle)
    if not p.is_dir() or not ((p / "profile.json").is_file() or (p / MANIFEST).is_file()):
        raise KdccError(f"{p}: not a kdcc bundle (no profile.json or {MANIFEST})")


def team_check(selections: list[str]):
    """Whether the roles selected from profile.json files (`PROFILE[#ROLE[:AGENT],...]`) make the team they were
    trained in: a `kdcc.targets.bundle.team_check.TeamCheck` (ok, reason)."""
    from kdcc.targets.bundle.team_check import load_selection
    from kdcc.targets.bundle.team_check import team_check as check

    return check([load_selection(s) for s in selections])
