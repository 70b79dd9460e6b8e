"""The --keep decision rule: paired score against the teacher, cheapest point that keeps it, honest refusal."""

import pytest

from kdcc.core.errors import KdccError
from kdcc.marl.keep import choose, keeps
from kdcc.marl.scoring import paired_score

TEACHER = [-50.0, -60.0, -55.0, -70.0, -52.0, -58.0]
RANDOM = -80.0


def _point(flops, shift, noise=(0.5, -0.5, 0.3, -0.3, 0.2, -0.2)):
    return {"flops": flops, **paired_score([t + shift + e for t, e in zip(TEACHER, noise)], TEACHER, RANDOM)}


def test_paired_score_is_normalised_and_pairs_the_seeds():
    p = paired_score(TEACHER, TEACHER, RANDOM)
    assert p["score"] == pytest.approx(1.0) and p["se"] == 0.0
    shared = paired_score([t - 2.0 for t in TEACHER], TEACHER, RANDOM)  # seed-to-seed spread cancels
    assert shared["se"] == 0.0 and shared["score"] == pytest.approx(1 - 2 / (sum(TEACHER) / 6 - RANDOM))


def test_the_cheaper_of_two_points_that_keep_the_score_is_chosen():
    cheap, dear = _point(10_000, -1.0), _point(40_000, 0.0)
    assert keeps(cheap, 0.9) and keeps(dear, 0.9)
    assert choose([dear, cheap], 0.9) is cheap


def test_with_z_1_a_point_above_the_bar_by_its_estimate_but_not_by_one_se_is_not_kept():
    noisy = _point(5_000, -2.0, noise=(6.0, -6.0, 5.0, -5.0, 4.0, -4.0))
    assert noisy["score"] > 0.9 and keeps(noisy, 0.9) and not keeps(noisy, 0.9, z=1.0)
    assert choose([noisy, _point(40_000, 0.0)], 0.9)["flops"] == 5_000  # the default: the estimate
    assert choose([noisy, _point(40_000, 0.0)], 0.9, z=1.0)["flops"] == 40_000


def test_refuses_honestly_when_no_point_keeps_the_score():
    with pytest.raises(KdccError, match=r"--keep 0.99: no student keeps score − 0·SE ≥ 0.99 .*best: 0\.778 .* at "
                                        r"flops 20,000"):
        choose([_point(10_000, -6.0), _point(20_000, -5.0)], 0.99)
