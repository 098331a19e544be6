"""Resumable cells (`experiments.cells.resume`): a cell stopped part-way continues after its last evaluation
and writes the same numbers as a cell that ran through."""

from __future__ import annotations

import pytest

import encoders
from experiments.cells import resume, run_cell
from experiments.plan import cell_state, plan_sweep
from experiments.records import resume_path

BASE = ("protocol=smoke", "seed=100", "workers=1", "protocol.epochs=5")
CELLS = {
    # dropout draws from torch's global RNG; DMC's evaluations consume a start-state stream; a pixel cell
    # reads its demo features from the embedding cache on resume
    "state/metaworld-drawer-open": ("protocol.dropout=0.3",),
    "state/dmc-walker-walk": (),
    "random-vit-tiny/adroit-pen": ("protocol.n_demos=1", "protocol.eval_episodes=1"),
}


class Stopped(BaseException):
    """What a SIGINT or a job's time limit does to a cell: not an error the lifecycle records."""


def _cell(name: str, results_dir, *extra: str):
    encoder, task = name.split("/")
    overrides = [*BASE, f"encoder={encoder}", f"task={task}", f"results_dir={results_dir}", *CELLS[name], *extra]
    (cell,) = plan_sweep(overrides, weights_required=True)
    return cell, encoders.load(encoder, cell.weights)


def _stop_after_saves(monkeypatch, n: int) -> None:
    saved = resume.Checkpoint.save
    count = {"saves": 0}

    def save_then_stop(self, *args, **kwargs):
        saved(self, *args, **kwargs)
        count["saves"] += 1
        if count["saves"] == n:
            raise Stopped

    monkeypatch.setattr(resume.Checkpoint, "save", save_then_stop)


@pytest.mark.parametrize("task", CELLS)
def test_a_stopped_cell_resumes_and_writes_what_an_uninterrupted_one_writes(task, tmp_path, monkeypatch):
    first, encoder = _cell(task, tmp_path / "through")
    through = run_cell(first.settings, encoder, first.path)
    assert through["status"] == "ok", through["error"]
    assert len(through["scores"]["per_eval"]) >= 4 and "resumed" not in through

    cell, encoder = _cell(task, tmp_path / "stopped")
    with monkeypatch.context() as patch:
        _stop_after_saves(patch, 2)
        with pytest.raises(Stopped):
            run_cell(cell.settings, encoder, cell.path)
    assert not cell.path.exists() and resume_path(cell.path).exists()
    state, detail = cell_state(cell)  # what `nox -s status` lists
    assert state == "missing" and "continues after its last evaluation" in detail

    resumed = run_cell(cell.settings, encoder, cell.path)
    assert resumed["status"] == "ok", resumed["error"]
    assert resumed["resumed"] == {"from_epoch": through["scores"]["per_eval"][1][0], "runs": 2}
    assert resumed["scores"] == through["scores"]  # per-evaluation scores, best, final and every epoch's loss
    assert resumed["episodes"] == through["episodes"]
    assert resumed["timing"]["train"] > 0 and resumed["timing"]["total"] >= resumed["timing"]["train"]
    assert not resume_path(cell.path).exists()  # gone once the record is written


def test_a_resume_file_from_other_settings_or_unreadable_is_kept_aside_and_the_cell_starts_over(tmp_path, monkeypatch):
    task = "state/metaworld-drawer-open"
    cell, encoder = _cell(task, tmp_path)
    with monkeypatch.context() as patch:
        _stop_after_saves(patch, 1)
        with pytest.raises(Stopped):
            run_cell(cell.settings, encoder, cell.path)
    other, _ = _cell(task, tmp_path, "protocol.lr=0.01")
    assert other.path == cell.path  # the same record: only the checkpoint's settings tell them apart
    record = run_cell(other.settings, encoder, other.path)
    assert record["status"] == "ok" and "resumed" not in record
    (kept,) = tmp_path.rglob(".seed=100.json.resume.corrupt-*")

    cell.path.unlink()
    resume_path(cell.path).write_bytes(b"not a checkpoint")
    record = run_cell(cell.settings, encoder, cell.path)
    assert record["status"] == "ok" and "resumed" not in record
    assert len(list(tmp_path.rglob(".seed=100.json.resume.corrupt-*"))) == 2 and kept.exists()
