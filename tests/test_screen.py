"""`nox -s screen`: the four proxies from demos only, the probes against independent answers, the state check."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from experiments.screen import nearest_neighbour_error, probe, ridge, split_by_demo
from tests.conftest import REPO


def run_screen(*args: str, results_dir) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "experiments.screen", *args, f"results_dir={results_dir}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=1200,
    )


def test_ridge_matches_the_normal_equations_and_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5))
    truth = rng.normal(size=(5, 3))
    y = x @ truth + 0.5
    w = ridge(x, y, lam=0.0)
    assert np.allclose(w[:-1], truth) and np.allclose(w[-1], 0.5 - x.mean(0) @ truth + x.mean(0) @ truth)
    # with regularisation: (Xc'Xc + lam n I) w = Xc'Yc, solved here with numpy's least squares on the augmented system
    lam, xc, yc = 0.3, x - x.mean(0), y - y.mean(0)
    augmented_x = np.vstack([xc, np.sqrt(lam * len(x)) * np.eye(5)])
    augmented_y = np.vstack([yc, np.zeros((5, 3))])
    expected = np.linalg.lstsq(augmented_x, augmented_y, rcond=None)[0]
    assert np.allclose(ridge(x, y, lam)[:-1], expected)


def test_probe_of_a_linear_target_is_near_one_and_of_noise_near_zero():
    rng = np.random.default_rng(1)
    lengths = [50] * 10
    demo_of_row = np.repeat(np.arange(10), 50)
    train, held = split_by_demo(lengths)
    assert len(held) == 100 and set(demo_of_row[held]) == {8, 9}  # the last fifth of the demos, whole
    x = rng.normal(size=(500, 8))
    linear = probe(x, x @ rng.normal(size=(8, 4)), train, held, demo_of_row)
    noise = probe(x, rng.normal(size=(500, 4)), train, held, demo_of_row)
    assert linear["r2"] > 0.999 and noise["r2"] < 0.1
    constant = probe(x, np.c_[x[:, :2], np.ones(500)], train, held, demo_of_row)
    assert constant["constant_dims_dropped"] == 1 and constant["target_dims"] == 2


def test_nearest_neighbour_error_by_hand():
    x = np.array([[0.0], [10.0], [1.0], [9.0]])  # rows 2, 3 held out; their nearest training rows are 0 and 1
    y = np.array([[0.0], [2.0], [1.0], [2.0]])
    # standardised actions (training mean 1, std 1): held-out (0, 1) vs their neighbours' (-1, 1): errors 1, 0
    assert nearest_neighbour_error(x, y, np.array([0, 1]), np.array([2, 3])) == pytest.approx(0.5)


def test_two_encoders_on_metaworld_write_records_and_a_table(tmp_path):
    result = run_screen(
        "encoder=random-vit-tiny,theia-tiny", "weights=random", "task=metaworld", "protocol=smoke", results_dir=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    folder = tmp_path / "screen" / "smoke"
    for label in ("random-vit-tiny", "theia-tiny@random"):
        files = sorted(p.stem for p in (folder / label).glob("*.json"))
        assert len(files) == 5 and all(f.startswith("metaworld-") for f in files)
        record = json.loads((folder / label / "metaworld-assembly.json").read_text())
        assert record["kind"] == "screening" and record["label"] == label
        proxies = record["proxies"]
        assert set(proxies) == {"entropy", "entropy_pooled", "state_r2", "action_r2", "action_mse", "nn_action_mse"}
        assert all(np.isfinite(v) for v in proxies.values())
        assert record["state_probe"]["targets"] == "the experts' demos, not rendered"
    table = (folder / "screening.md").read_text()
    assert "`random-vit-tiny` | 5 |" in table and "`theia-tiny@random` | 5 |" in table
    assert "state_r2" in result.stdout and (folder / "screening.svg").read_text().count("<svg") == 1


@pytest.mark.parametrize("task", ["metaworld-drawer-open", "dmc-cheetah-run", "adroit-relocate", "trifinger-move-cube"])
def test_the_state_reference_probes_its_own_state_almost_perfectly(task, tmp_path):
    budget = ("protocol=smoke", "protocol.n_demos=10", "protocol.horizon=30")  # enough steps to span the state
    result = run_screen("encoder=state", f"task={task}", *budget, results_dir=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    record = json.loads((tmp_path / "screen" / "smoke" / "state" / f"{task}.json").read_text())
    assert record["proxies"]["state_r2"] >= 0.99
    assert record["proxies"]["entropy"] is None  # no feature norms


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    result = run_screen("encoder=thea", "task=metaworld-assembly", results_dir=tmp_path)
    assert result.returncode == 2 and "thea" in result.stderr and "Traceback" not in result.stderr
