"""CortexBench metrics on hand-built episodes."""

from __future__ import annotations

import numpy as np
import pytest

from tasks.metrics import episode_value, score
from tasks.spec import Episode


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
