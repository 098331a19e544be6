"""The encoder and task tables in docs/ are generated from the registries (`nox -s docs`): the committed pages
must match what the registries give, and a registry change must show in the tables."""

from __future__ import annotations

import dataclasses
import subprocess
import sys

import pytest

import encoders
import tasks
from experiments import docs_tables
from tests.conftest import REPO


def test_committed_docs_tables_are_up_to_date():
    """The CLI in a fresh process (registries without anything an earlier test registered), as CI runs it."""
    done = subprocess.run(
        [sys.executable, "-m", "experiments.docs_tables", "--check", "--docs", str(REPO / "docs")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"docs tables are stale; run `nox -s docs`:\n{done.stderr}"


@pytest.fixture
def docs_copy(tmp_path):
    """The repository's docs pages, copied, with their tables regenerated from the real registries."""
    for page in {page for page, _ in docs_tables.tables().values()}:
        (tmp_path / page).write_text((REPO / "docs" / page).read_text())
    assert docs_tables.main(["--docs", str(tmp_path)]) == 0
    assert docs_tables.stale_pages(tmp_path) == []
    return tmp_path


def test_changing_an_encoder_spec_changes_the_encoder_table(docs_copy, monkeypatch):
    specs = encoders.available()
    changed = [
        dataclasses.replace(s, license="WTFPL", aliases=("tiny",)) if s.name == "random-vit-tiny" else s for s in specs
    ]
    monkeypatch.setattr(encoders, "available", lambda: changed)
    assert docs_tables.stale_pages(docs_copy) == [docs_copy / "encoders.md"]
    assert docs_tables.main(["--check", "--docs", str(docs_copy)]) == 1
    assert docs_tables.main(["--docs", str(docs_copy)]) == 0
    row = next(line for line in (docs_copy / "encoders.md").read_text().splitlines() if "`random-vit-tiny`" in line)
    assert "WTFPL" in row and "`tiny`" in row
    assert docs_tables.stale_pages(docs_copy) == []


def test_changing_a_task_spec_changes_the_task_table(docs_copy, monkeypatch):
    specs = tasks.available()
    changed = [
        dataclasses.replace(t, horizon=123, eval_episodes=7) if t.name == "metaworld-hammer" else t for t in specs
    ]
    monkeypatch.setattr(tasks, "available", lambda: changed)
    assert docs_tables.stale_pages(docs_copy) == [docs_copy / "tasks-and-demos.md"]
    docs_tables.main(["--docs", str(docs_copy)])
    row = next(
        line for line in (docs_copy / "tasks-and-demos.md").read_text().splitlines() if "`metaworld-hammer`" in line
    )
    assert "| 123 |" in row and "| 7 |" in row


def test_prose_outside_the_markers_is_kept_and_missing_markers_fail():
    text = "intro\n<!-- BEGIN GENERATED: t -->\nold\n<!-- END GENERATED -->\noutro\n"
    assert docs_tables.replace_block(text, "t", "new") == text.replace("old", "new")
    with pytest.raises(ValueError, match="BEGIN GENERATED: other"):
        docs_tables.replace_block(text, "other", "new")


def test_markdown_table_escapes_pipes():
    assert docs_tables.markdown_table(["a"], [["x|y"]]).splitlines()[-1] == "| x\\|y |"
