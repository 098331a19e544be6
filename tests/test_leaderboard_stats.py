"""Leaderboard statistics: standard error, IQM and the stratified bootstrap, checked by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from experiments.leaderboard import stats


def test_mean_and_standard_error_by_hand():
    values = [80.0, 88.0, 96.0]
    assert stats.mean(values) == 88.0
    # std(ddof=1) = sqrt(((-8)^2 + 0 + 8^2) / 2) = 8; SE = 8 / sqrt(3)
    assert stats.standard_error(values) == pytest.approx(8 / math.sqrt(3))
    assert stats.standard_error([90.0, 100.0]) == pytest.approx(5.0)
    assert stats.standard_error([50.5]) is None  # undefined with one seed
    assert stats.mean([0.1] * 10) == 0.1  # exactly rounded, not 0.09999999999999999
    with pytest.raises(ValueError):
        stats.mean([])


def test_iqm_cuts_a_quarter_of_the_runs_rounded_down_at_each_end():
    assert stats.iqm([50.5, 80, 88, 90, 96, 100]) == pytest.approx((80 + 88 + 90 + 96) / 4)  # 1 cut each end
    assert stats.iqm([1, 2, 3, 4, 100, 200, 300, 400]) == pytest.approx((3 + 4 + 100 + 200) / 4)  # 2 each
    assert stats.iqm([1, 2, 3]) == pytest.approx(2.0)  # floor(0.75) = 0: nothing cut
    assert stats.iqm([7.0]) == 7.0


def test_stratified_bootstrapresamples_runs_within_each_task():
    # One task with runs {0, 100}: a resample of 2 is {0,0}, {0,100} or {100,100} with p = 1/4, 1/2, 1/4,
    # so the IQM (nothing cut from 2 runs) is 0, 50 or 100 with those probabilities.
    rng = np.random.default_rng(stats.BOOTSTRAP_SEED)
    draws = stats.pooled_iqm(stats.resamples([[0.0, 100.0]], 20_000, rng))
    freq = {v: float(np.mean(draws == v)) for v in (0.0, 50.0, 100.0)}
    assert sum(freq.values()) == pytest.approx(1.0)
    assert freq[0.0] == pytest.approx(0.25, abs=0.015)
    assert freq[50.0] == pytest.approx(0.5, abs=0.015)
    assert freq[100.0] == pytest.approx(0.25, abs=0.015)
    # Stratified: each task keeps its own runs, so tasks with constant runs give a zero-width interval,
    # where pooling the 4 runs before resampling would not.
    interval = stats.mean_of_means_interval([[0.0, 0.0], [100.0, 100.0]])
    assert (interval.estimate, interval.low, interval.high) == (50.0, 50.0, 50.0)
    interval = stats.iqm_interval([[0.0, 0.0], [100.0, 100.0]])
    assert (interval.low, interval.high) == (50.0, 50.0)


def test_bootstrap_interval_is_seeded_and_brackets_the_estimate():
    groups = [[10.0, 40.0, 35.0], [80.0, 90.0, 60.0], [55.0, 50.0, 70.0]]
    first, second = stats.iqm_interval(groups), stats.iqm_interval(groups)
    assert first == second  # same seed, same numbers: tables regenerate byte for byte
    assert first.low <= first.estimate <= first.high and first.low < first.high
    other_seed = stats.iqm_interval(groups, seed=1)
    assert other_seed.estimate == first.estimate and (other_seed.low, other_seed.high) != (first.low, first.high)
    weighted = stats.mean_of_means_interval(groups, weights=[0.5, 0.25, 0.25])
    assert weighted.estimate == pytest.approx(0.5 * 85 / 3 + 0.25 * 230 / 3 + 0.25 * 175 / 3)
    with pytest.raises(ValueError, match="at least one run"):
        stats.iqm_interval([[1.0], []])


def test_correlations_by_hand():
    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 5.0, 4.0]
    mx, my = sum(x) / 4, sum(y) / 4
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    r = cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))
    corr = stats.correlation(x, y)
    assert corr.n == 4 and corr.pearson == pytest.approx(r)
    # Spearman = Pearson of the ranks; y's ranks are 1, 2.5, 4, 2.5 (tie)
    ry = [1.0, 2.5, 4.0, 2.5]
    mry = sum(ry) / 4
    rho = sum((a - 2.5) * (b - mry) for a, b in zip(x, ry, strict=True)) / math.sqrt(
        sum((a - 2.5) ** 2 for a in x) * sum((b - mry) ** 2 for b in ry)
    )
    assert corr.spearman == pytest.approx(rho)
    assert stats.correlation([1.0, 2.0], [3.0, 4.0]).pearson is None  # fewer than 3 points
    assert stats.correlation([1.0, 1.0, 1.0], [3.0, 4.0, 5.0]).spearman is None  # constant


def test_rank_correlation_over_tasks_by_hand_and_its_task_bootstrap():
    from experiments.leaderboard.stats import rank_correlation_over_tasks

    # Three encoders on two tasks; means over both tasks: proxy a 1.5, b 2.5, c 3.5 and score a 15, b 10, c 30:
    # ranks (1, 2, 3) vs (2, 1, 3): rho = 1 - 6 * 2 / 24 = 0.5, tau = (2 - 1) / 3.
    proxy = {"a": {"t1": 1.0, "t2": 2.0}, "b": {"t1": 2.0, "t2": 3.0}, "c": {"t1": 3.0, "t2": 4.0}}
    score = {"a": {"t1": 10.0, "t2": 20.0}, "b": {"t1": 15.0, "t2": 5.0}, "c": {"t1": 30.0, "t2": 30.0}}
    corr = rank_correlation_over_tasks(proxy, score, reps=500, seed=0)
    assert corr.n == 3 and corr.spearman == pytest.approx(0.5) and corr.kendall == pytest.approx(1 / 3)
    # Resampling tasks: t1 alone gives rho 1 (10 < 15 < 30), t2 alone gives 0.5; so the interval spans [0.5, 1].
    assert corr.spearman_interval == (pytest.approx(0.5), pytest.approx(1.0))
    assert corr == rank_correlation_over_tasks(proxy, score, reps=500, seed=0)  # seeded
    assert rank_correlation_over_tasks({"a": proxy["a"], "b": proxy["b"]}, score).spearman is None  # n = 2
