"""CortexBench metrics on hand-built episodes."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.metrics import METRICS, Episode, episode_success, episode_value, score


def ep(rewards, **infos):
    return Episode(
        seed=0, rewards=np.asarray(rewards, float), infos={k: np.asarray(v, float) for k, v in infos.items()}
    )


def test_metaworld_success_is_read_at_the_last_step_only():
    early_then_lost = ep([0, 0, 0], success=[0, 1, 0])
    at_the_end = ep([0, 0, 0], success=[0, 0, 1])
    assert score("success_last_step", [early_then_lost, at_the_end]) == 50.0


def test_dmc_score_is_return_over_ten():
    assert episode_value("return_div_10", ep([300.0, 250.5])) == pytest.approx(55.05)
    assert score("return_div_10", [ep([1000.0]), ep([0.0])]) == 50.0


@pytest.mark.parametrize(("metric", "threshold"), [("adroit_pen", 20), ("adroit_relocate", 25)])
def test_adroit_success_counts_goal_achieved_steps(metric, threshold):
    just_enough = ep(np.zeros(100), goal_achieved=[1] * (threshold + 1) + [0] * (99 - threshold))
    not_enough = ep(np.zeros(100), goal_achieved=[1] * threshold + [0] * (100 - threshold))
    assert episode_value(metric, just_enough) == 100.0 and episode_value(metric, not_enough) == 0.0


def test_scoring_no_episodes_is_an_error():
    with pytest.raises(ValueError):
        score("success_last_step", [])


def test_demo_success_follows_the_metric_and_is_none_for_graded_metrics():
    assert episode_success("success_last_step", np.zeros(3), {"success": [0, 0, 1]}) is True
    assert episode_success("success_last_step", np.zeros(3), {"success": [0, 1, 0]}) is False
    assert episode_success("adroit_pen", np.zeros(30), {"goal_achieved": [1] * 21 + [0] * 9}) is True
    assert episode_success("adroit_relocate", np.zeros(30), {"goal_achieved": [1] * 25 + [0] * 5}) is False
    assert episode_success("return_div_10", np.ones(3), {"success": [1, 1, 1]}) is None
    assert episode_success("scaled_success", np.zeros(2), {"scaled_success": [0.5, 1.0]}) is None
    assert episode_success("success_last_step", np.zeros(3), {}) is None  # the info the metric reads is missing
    assert episode_success("success_last_step", np.zeros(0), {"success": []}) is None


def test_every_metric_states_what_it_reads_and_its_direction():
    for name, metric in METRICS.items():
        assert metric.name == name and metric.higher_is_better
        assert metric.info_key is None or isinstance(metric.info_key, str)
    assert METRICS["return_div_10"].info_key is None and not METRICS["return_div_10"].binary
    with pytest.raises(KeyError, match="unknown metric"):
        episode_value("no-such-metric", ep([0.0]))
