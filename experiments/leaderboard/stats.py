"""Statistics for the leaderboard: mean and standard error over seeds, interquartile mean (IQM) and
stratified-bootstrap confidence intervals, correlation coefficients.

The IQM and its interval follow rliable (Agarwal et al., "Deep Reinforcement Learning at the Edge of
the Statistical Precipice", NeurIPS 2021; github.com/google-research/rliable at 3ccd9f4,
`rliable/metrics.py::aggregate_iqm` and `rliable/library.py::StratifiedBootstrap`):

- IQM: the mean of the middle 50% of all runs pooled over tasks, `scipy.stats.trim_mean(x, 0.25)`
  (a quarter of the runs, rounded down, is cut from each end).
- Stratified bootstrap: a resample draws, for every task independently, as many runs as that task has,
  with replacement from that task's runs (the task set stays fixed); the statistic is recomputed on
  every resample; the 95% interval is the 2.5th and 97.5th percentile of those values (percentile method).

rliable itself is not used: it needs a rectangular runs x tasks matrix (our tasks may have different
seed counts), draws from numpy's global random state (its `random_state` argument does not reach
`update_indices`), and pulls in arch, statsmodels and seaborn. This implementation is seeded with its own
generator, so a table regenerates byte for byte; it is vectorised over resamples.

All means use `math.fsum`, so they do not depend on the order in which values are added.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP_REPS = (
    10_000  # resamples per interval (rliable's default is 50,000; 10,000 keeps a table build under seconds)
)
BOOTSTRAP_SEED = 0  # every interval starts from this seed, so it does not depend on which rows come before it
CONFIDENCE = 0.95


def mean(values: Sequence[float]) -> float:
    """Arithmetic mean, exactly rounded and independent of the order of `values`."""
    if not values:
        raise ValueError("mean of no values")
    return math.fsum(values) / len(values)


def standard_error(values: Sequence[float]) -> float | None:
    """Standard error of the mean over seeds, std(ddof=1) / sqrt(n); None with a single value (undefined)."""
    n = len(values)
    if n < 2:
        return None
    m = mean(values)
    variance = math.fsum((v - m) ** 2 for v in values) / (n - 1)
    return math.sqrt(variance) / math.sqrt(n)


def iqm(values: Sequence[float] | np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: `scipy.stats.trim_mean(values, 0.25)`, as rliable's `aggregate_iqm`."""
    from scipy.stats import trim_mean

    return trim_mean(np.asarray(values, dtype=np.float64), 0.25, axis=axis)


@dataclass(frozen=True)
class Interval:
    """A point estimate with its stratified-bootstrap percentile interval."""

    estimate: float
    low: float
    high: float


def resamples(groups: Sequence[Sequence[float]], reps: int, rng: np.random.Generator) -> list[np.ndarray]:
    """For each group (task), a [reps, n_task] array of its values drawn with replacement."""
    out = []
    for values in groups:
        arr = np.asarray(values, dtype=np.float64)
        out.append(arr[rng.integers(0, len(arr), size=(reps, len(arr)))])
    return out


def stratified_bootstrap(
    groups: Sequence[Sequence[float]],
    statistic: Callable[[list[np.ndarray]], np.ndarray],
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    """Percentile interval of `statistic` under resampling of runs within each group (task).

    `statistic` receives one [R, n_task] array per task and returns [R] values; it is called once on
    the data itself (R = 1) by the callers for the point estimate and once on all resamples.
    """
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("every task needs at least one run to bootstrap")
    rng = np.random.default_rng(seed)
    values = statistic(resamples(groups, reps, rng))
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def pooled_iqm(samples: list[np.ndarray]) -> np.ndarray:
    """The IQM of each resample with its runs pooled over tasks (the statistic of `iqm_interval`)."""
    return iqm(np.concatenate(samples, axis=1), axis=1)


def _weighted_task_means(weights: Sequence[float]) -> Callable[[list[np.ndarray]], np.ndarray]:
    w = np.asarray(weights, dtype=np.float64)

    def statistic(samples: list[np.ndarray]) -> np.ndarray:
        return np.stack([s.mean(axis=1) for s in samples], axis=1) @ w

    return statistic


def iqm_interval(groups: Sequence[Sequence[float]], reps: int = BOOTSTRAP_REPS, seed: int = BOOTSTRAP_SEED) -> Interval:
    """IQM of all runs pooled over tasks, with its stratified-bootstrap 95% interval."""
    pooled = [v for g in groups for v in g]
    low, high = stratified_bootstrap(groups, pooled_iqm, reps, seed)
    return Interval(float(iqm(pooled)), low, high)


def mean_of_means_interval(
    groups: Sequence[Sequence[float]],
    weights: Sequence[float] | None = None,
    reps: int = BOOTSTRAP_REPS,
    seed: int = BOOTSTRAP_SEED,
) -> Interval:
    """Weighted sum over tasks of the per-task mean over seeds (equal weights: the mean of task means),
    with its stratified-bootstrap 95% interval. A mean of suite means is this with weight
    1 / (number of suites x tasks in the task's suite)."""
    if weights is None:
        weights = [1.0 / len(groups)] * len(groups)
    if len(weights) != len(groups):
        raise ValueError(f"{len(weights)} weights for {len(groups)} tasks")
    estimate = math.fsum(w * mean(g) for w, g in zip(weights, groups, strict=True))
    low, high = stratified_bootstrap(groups, _weighted_task_means(weights), reps, seed)
    return Interval(estimate, low, high)


@dataclass(frozen=True)
class Correlation:
    n: int
    pearson: float | None
    spearman: float | None


def correlation(x: Sequence[float], y: Sequence[float]) -> Correlation:
    """Pearson r and Spearman rho (scipy.stats); None where undefined (fewer than 3 points or a constant)."""
    from scipy.stats import pearsonr, spearmanr

    n = len(x)
    if n != len(y):
        raise ValueError(f"x has {n} values, y has {len(y)}")
    if n < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return Correlation(n, None, None)
    return Correlation(n, float(pearsonr(x, y).statistic), float(spearmanr(x, y).statistic))


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman rho and Kendall tau (tau-b) over `n` points, each with a bootstrap interval over tasks."""

    n: int
    spearman: float | None
    kendall: float | None
    spearman_interval: tuple[float, float] | None = None
    kendall_interval: tuple[float, float] | None = None


def rank_correlation(x: Sequence[float], y: Sequence[float]) -> tuple[float | None, float | None]:
    """(Spearman rho, Kendall tau-b) by scipy.stats; None where undefined (fewer than 3 points or a constant)."""
    from scipy.stats import kendalltau, spearmanr

    if len(x) != len(y):
        raise ValueError(f"x has {len(x)} values, y has {len(y)}")
    if len(x) < 3 or len(set(x)) < 2 or len(set(y)) < 2:
        return None, None
    return float(spearmanr(x, y).statistic), float(kendalltau(x, y).statistic)


def rank_correlation_over_tasks(
    proxy: dict[str, dict[str, float]],
    score: dict[str, dict[str, float]],
    reps: int = 2_000,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> RankCorrelation:
    """Rank correlation across encoders between a proxy and the protocol score, each an encoder's mean over the
    tasks that have both (`proxy` / `score`: encoder -> task -> value). The interval resamples the tasks with
    replacement (seeded): each resample recomputes every encoder's two means over the drawn tasks it has;
    resamples where the correlation is undefined are dropped."""
    encoders = sorted(set(proxy) & set(score))
    shared = {e: sorted(set(proxy[e]) & set(score[e])) for e in encoders}
    encoders = [e for e in encoders if shared[e]]

    def correlate(tasks_drawn: list[str]) -> tuple[float | None, float | None]:
        xs, ys = [], []
        for e in encoders:
            mine = [t for t in tasks_drawn if t in shared[e]]
            if mine:
                xs.append(mean([proxy[e][t] for t in mine]))
                ys.append(mean([score[e][t] for t in mine]))
        return rank_correlation(xs, ys)

    tasks = sorted({t for e in encoders for t in shared[e]})
    rho, tau = correlate(tasks)
    if rho is None:
        return RankCorrelation(len(encoders), None, None)
    rng = np.random.default_rng(seed)
    drawn = [correlate([tasks[i] for i in rng.integers(0, len(tasks), len(tasks))]) for _ in range(reps)]
    tail = 100.0 * (1.0 - confidence) / 2.0

    def interval(values: list[float | None]) -> tuple[float, float] | None:
        kept = [v for v in values if v is not None and math.isfinite(v)]
        return tuple(float(q) for q in np.percentile(kept, [tail, 100.0 - tail])) if kept else None

    return RankCorrelation(len(encoders), rho, tau, interval([d[0] for d in drawn]), interval([d[1] for d in drawn]))
