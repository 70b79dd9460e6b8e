"""The pass manager: order, --passes/--skip, input left alone, complete records, --dump-ir, named errors."""

from __future__ import annotations

import pytest
import torch

from kdcc.core.errors import KdccError
from kdcc.flow.instruments import DumpIR
from kdcc.ir.invariants import InvariantError
from kdcc.ir.printer import program_text
from kdcc.ir.program import Program, from_modules
from kdcc.marl.probe import make_probe
from kdcc.passes import base, register
from kdcc.passes.manager import run_pipeline, select_passes

# The "exact" pipeline: clean-up and fusion, no training.
EXACT = ["normalize-eval", "eliminate-dead-code", "fuse-team", "fold-constants", "eliminate-dead-code"]
FAILING = "test-manager-failing"
NOT_A_PROGRAM = "test-manager-not-a-program"
DANGLING = "test-manager-dangling"
NOT_DATA = "test-manager-not-data"
BROKEN = (FAILING, NOT_A_PROGRAM, DANGLING, NOT_DATA)


def _register_broken(mp: pytest.MonkeyPatch) -> None:
    """Passes that go wrong, in a copy of the registry that `mp` puts back when it is undone."""
    mp.setattr(base, "_REGISTRY", dict(base._REGISTRY))

    @register(FAILING, "test only: refuses its input")
    def failing(program: Program, ctx) -> Program:
        raise KdccError("cannot handle this program")

    @register(NOT_A_PROGRAM, "test only: returns the wrong type")
    def not_a_program(program: Program, ctx):
        return "oops"

    @register(DANGLING, "test only: leaves a node nothing uses")
    def dangling(program: Program, ctx) -> Program:
        out = program.copy()
        graph = out.agent.graph
        first = next(iter(graph.nodes))
        with graph.inserting_after(first):
            graph.call_function(torch.relu, (first,))
        out.agent.recompile()
        return out.with_decision(DANGLING)

    @register(NOT_DATA, "test only: records a tensor as a decision")
    def not_data(program: Program, ctx) -> Program:
        return program.with_decision(NOT_DATA, weights=torch.zeros(2))


@pytest.fixture
def broken_passes(monkeypatch):
    """The broken passes, registered for one test only."""
    _register_broken(monkeypatch)


@pytest.fixture(scope="module")
def probe(teacher):
    return make_probe(teacher, episodes=1)


@pytest.fixture(scope="module")
def exact_run(teacher, ctx, probe):
    """The exact pipeline on the tiny teacher, with the input's text and weights before the run."""
    program = from_modules(teacher.spec, teacher.agent, teacher.mixer)
    text = program_text(program)
    weights = {g: {k: v.clone() for k, v in gm.state_dict().items()} for g, gm in program.graphs().items()}
    out, records = run_pipeline(program, EXACT, ctx, probe)
    return program, text, weights, out, records


def test_records_in_pipeline_order(exact_run):
    _, _, _, out, records = exact_run
    assert [r.name for r in records] == ["import", *EXACT]
    assert [r.index for r in records] == list(range(len(EXACT) + 1))
    assert [h["pass"] for h in out.history] == EXACT
    assert records[3].decisions["pass"] == "fuse-team" and records[0].decisions == {}


def test_input_program_not_mutated(exact_run):
    program, text, weights, out, _ = exact_run
    assert program.team is None and program.history == () and out.team is not None
    assert program_text(program) == text
    for g, gm in program.graphs().items():
        state = gm.state_dict()
        assert state.keys() == weights[g].keys()
        assert all(torch.equal(state[k], v) for k, v in weights[g].items())


def test_records_complete(exact_run):
    _, _, _, out, records = exact_run
    for r in records:
        assert r.wall_s >= 0.0
        assert r.text.startswith("program n_agents=3 ")
        assert {"flops", "params", "param_bytes", "bytes", "latency_us", "energy_uj", "device"} <= r.metrics.keys()
        assert {"latency_us.cpu", "latency_us.gpu", "energy_uj.cpu", "energy_uj.gpu"} <= r.metrics.keys()
        assert r.metrics["device"] in ("cpu", "gpu")
        assert r.metrics["latency_us"] == r.metrics[f"latency_us.{r.metrics['device']}"] > 0
        assert r.metrics["param_bytes"] == 4 * r.metrics["params"]
        assert r.fidelity.keys() == {"max_abs_dq", "action_agreement", "max_abs_dq_tot", "mean_abs_dq_tot"}
        # Every pass of the exact pipeline is exact.
        assert r.fidelity["max_abs_dq"] <= 1e-5 and r.fidelity["max_abs_dq_tot"] <= 1e-5
        assert r.fidelity["action_agreement"] == 1.0
        assert {"actions", "q", "q_tot"} <= r.outputs.keys()
    assert records[-1].text == program_text(out)
    assert "graph team:" in records[-1].text and "graph agent:" in records[0].text
    assert len({r.metrics["params"] for r in records}) == 1  # nothing is pruned


def test_select_passes_skip_and_only():
    assert select_passes(EXACT, skip=["fold-constants"]) == [
        "normalize-eval", "eliminate-dead-code", "fuse-team", "eliminate-dead-code"]
    assert select_passes(EXACT, skip=["eliminate-dead-code", "normalize-eval"]) == ["fuse-team", "fold-constants"]
    assert select_passes(EXACT, only=["fuse-team", "normalize-eval"]) == ["fuse-team", "normalize-eval"]
    assert select_passes(EXACT, only=["fuse-team", "normalize-eval"], skip=["fuse-team"]) == ["normalize-eval"]
    assert select_passes(EXACT) == EXACT


@pytest.mark.parametrize("only, skip", [(["fuse-team", "fuse-teams"], []), (None, ["fuse-teams"])])
def test_select_passes_unknown_name_lists_known(only, skip):
    with pytest.raises(KdccError) as info:
        select_passes(EXACT, only=only, skip=skip)
    message = str(info.value)
    assert "\n" not in message and "'fuse-teams'" in message
    assert all(name in message for name in ("normalize-eval", "eliminate-dead-code", "fuse-team", "fold-constants"))


def test_selected_passes_run_in_the_given_order(program, ctx, probe):
    names = select_passes(EXACT, only=["fuse-team", "normalize-eval"])
    _, records = run_pipeline(program, names, ctx, probe)
    assert [r.name for r in records] == ["import", "fuse-team", "normalize-eval"]


def test_dump_ir_writes_one_file_per_pass(program, ctx, probe, tmp_path):
    names = ["normalize-eval", "fuse-team", "eliminate-dead-code"]
    _, records = run_pipeline(program, names, ctx, probe, [DumpIR(tmp_path / "ir")])
    files = sorted(p.name for p in (tmp_path / "ir").iterdir())
    assert files == ["00_import.txt", "01_normalize-eval.txt", "02_fuse-team.txt", "03_eliminate-dead-code.txt"]
    for r, name in zip(records, files):
        assert (tmp_path / "ir" / name).read_text() == r.text


def test_instruments_see_every_record_in_order(program, ctx, probe):
    seen = []
    run_pipeline(program, ["fuse-team"], ctx, probe, [lambda r, p: seen.append((r.index, r.name, p.team is None))])
    assert seen == [(0, "import", True), (1, "fuse-team", False)]


def test_error_in_a_pass_names_the_pass(program, ctx, probe, broken_passes):
    with pytest.raises(KdccError, match=f"^pass {FAILING}: cannot handle this program$"):
        run_pipeline(program, ["normalize-eval", FAILING, "fuse-team"], ctx, probe)
    with pytest.raises(TypeError, match=f"pass {NOT_A_PROGRAM} returned str"):
        run_pipeline(program, [NOT_A_PROGRAM], ctx, probe)


def test_a_pass_that_breaks_an_invariant_is_named(program, ctx, probe, broken_passes):
    with pytest.raises(InvariantError, match=f"^pass {DANGLING} broke an IR invariant: graph agent has nodes "
                       "nothing uses: relu_[0-9]+$"):
        run_pipeline(program, ["normalize-eval", DANGLING, "fuse-team"], ctx, probe)
    with pytest.raises(InvariantError, match=f"^pass {NOT_DATA} broke an IR invariant: decision of {NOT_DATA}, "
                       "weights: Tensor is not plain data"):
        run_pipeline(program, [NOT_DATA], ctx, probe)


def test_broken_passes_are_registered_only_while_patched():
    """Self-contained (no other test's state): registering in the scratch registry leaves the real one as it was."""
    before = base.registered()
    with pytest.MonkeyPatch.context() as mp:
        _register_broken(mp)
        assert set(BROKEN) <= base.registered().keys()
    assert base.registered() == before and not set(BROKEN) & before.keys()
