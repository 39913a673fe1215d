"""The loop's paired comparison of two students graded on the same held-out problems."""

from __future__ import annotations

import random

from benchmarks.loop import Paired, pair


def test_pair_counts_the_discordant_problems():
    first = {"a": True, "b": True, "c": False, "d": False, "only-first": True}
    second = {"a": True, "b": False, "c": True, "d": False, "only-second": True}
    p = pair(first, second)
    assert (p.n, p.first, p.second, p.b, p.c) == (4, 2, 2, 1, 1)  # problems both answered
    assert p.difference == 0 and p.p_value() == 1.0


def test_the_interval_holds_the_difference_and_narrows_with_agreement():
    # the same margins (30 vs 20 of 100), discordance from most to least
    loose = Paired(100, 30, 20, 30, 20)
    tight = Paired(100, 30, 20, 10, 0)
    for p in (loose, tight):
        low, high = p.interval()
        assert -1 <= low < p.difference < high <= 1
    assert tight.interval()[0] > 0 > loose.interval()[0]  # agreeing students: a real gain
    assert tight.p_value() < 0.01 < loose.p_value()
    assert str(tight).endswith(", p<0.01)") and str(loose).endswith(f", p={loose.p_value():.2f})")


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng, n, hits, trials = random.Random(0), 200, 0, 400
    for _ in range(trials):  # each problem: both pass 0.2, first only 0.15, second only 0.05
        draws = [rng.random() for _ in range(n)]
        b = sum(0.2 <= x < 0.35 for x in draws)
        c = sum(0.35 <= x < 0.4 for x in draws)
        both = sum(x < 0.2 for x in draws)
        low, high = Paired(n, both + b, both + c, b, c).interval()
        hits += low <= 0.10 <= high
    assert 0.92 <= hits / trials <= 0.99
