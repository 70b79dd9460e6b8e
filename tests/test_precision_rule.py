"""`--precision auto`'s rule on constructed points, and the cost model at each precision."""

from __future__ import annotations

import pytest

from kdcc.core.errors import KdccError
from kdcc.flow.precision import AUTO_AGREEMENT, SCORE_TOLERANCE, acceptable, choose_precision
from kdcc.ir.opcost import OpCost
from kdcc.targets.cost_model import at_precision, estimate
from kdcc.targets.profile import load_profile


def _point(precision, latency, agreement=1.0, delta=0.0, se=0.01, measured=None):
    return {"precision": precision, "action_agreement": agreement, "delta": delta, "delta_se": se,
            "latency_us": {"cpu": latency}, "host_step_us": measured}


def test_auto_takes_the_cheapest_precision_that_keeps_fidelity():
    fp32, fp16, int8 = _point("fp32", 10.0), _point("fp16", 8.0), _point("int8", 5.0)
    assert choose_precision([fp32, fp16, int8], "cpu")["precision"] == "int8"
    # int8 loses more score than the tolerance (and than its SE): the next cheapest keeps it
    lossy = _point("int8", 5.0, delta=-(SCORE_TOLERANCE + 0.03), se=0.01)
    assert not acceptable(lossy)
    assert choose_precision([fp32, fp16, lossy], "cpu")["precision"] == "fp16"
    # within one SE of fp32 when the SE is wider than the tolerance
    assert acceptable(_point("int8", 5.0, delta=-0.04, se=0.05))
    # too few actions agree, whatever the score
    assert not acceptable(_point("int8", 5.0, agreement=AUTO_AGREEMENT - 0.01))
    # no score (a teacher no better than random): agreement alone decides
    assert acceptable(_point("int8", 5.0, delta=None, se=None))
    # ties in latency go to the higher precision; fp32 is always acceptable
    assert choose_precision([fp32, _point("fp16", 10.0)], "cpu")["precision"] == "fp32"
    assert choose_precision([fp32, lossy], "cpu")["precision"] == "fp32"
    with pytest.raises(KdccError):
        choose_precision([lossy], "cpu")
    # where the library runs here, measured latency decides, not the estimate
    here = [_point("fp32", 10.0, measured=6.0), _point("fp16", 8.0, measured=9.0), _point("int8", 5.0, measured=7.0)]
    assert choose_precision(here, "cpu")["precision"] == "int8"
    assert choose_precision(here, "cpu", measured=True)["precision"] == "fp32"


def test_lower_precisions_move_fewer_bytes_and_run_at_their_peak():
    ops = [("fc", OpCost("gemm", flops=2 * 64 * 256, param_bytes=4 * 64 * 256, act_bytes=4 * (64 + 256)))]
    assert [op.param_bytes for _, op in at_precision(ops, "fp16")] == [2 * 64 * 256]
    assert [op.param_bytes for _, op in at_precision(ops, "int8")] == [64 * 256]
    cpu = load_profile("orin").device("cpu")
    latency = {p: estimate(at_precision(ops, p), cpu, p).total.latency_us for p in ("fp32", "fp16", "int8")}
    assert latency["int8"] < latency["fp16"] < latency["fp32"]
    with pytest.raises(KdccError):
        at_precision(ops, "bf16")
