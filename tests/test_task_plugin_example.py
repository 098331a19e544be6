"""docs/adding-a-task.md: a task package outside the repository registers through `cortexbench.tasks`,
is listed, and runs. The fast tests read the example's entry point in-process; the slow one pip-installs
the example into a temporary folder (nothing goes into the shared environment) and runs the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import subprocess
import sys
from importlib.metadata import EntryPoint

import pytest

import tasks
from experiments.records import validate
from tasks import registry as registry_module
from tests.conftest import REPO

EXAMPLE = REPO / "examples" / "cortexbench-example-task"
NAME = "metaworld-door-open"


def _declared_points() -> list[EntryPoint]:
    """The entry points the example's pyproject declares (tomllib is Python >= 3.11)."""
    group = registry_module.ENTRY_POINT_GROUP
    table = (EXAMPLE / "pyproject.toml").read_text().split(f'[project.entry-points."{group}"]', 1)[1]
    table = table.split("\n[", 1)[0]
    return [EntryPoint(name, value, group) for name, value in re.findall(r'^([\w.-]+)\s*=\s*"([^"]+)"', table, re.M)]


@pytest.fixture
def plugged(monkeypatch):
    """What `pip install ./examples/cortexbench-example-task` gives: the module importable, the entry point seen."""

    def install(points: list[EntryPoint]) -> None:
        monkeypatch.setattr(
            registry_module, "entry_points", lambda group: points if group == registry_module.ENTRY_POINT_GROUP else []
        )
        registry_module.all_tasks.cache_clear()

    monkeypatch.syspath_prepend(str(EXAMPLE))
    yield install
    registry_module.all_tasks.cache_clear()
    for name in [m for m in sys.modules if m.split(".")[0] in ("cortexbench_example_task", "toy_tasks")]:
        del sys.modules[name]


def test_the_example_task_joins_its_suite_but_not_the_benchmark_groups(plugged):
    plugged(_declared_points())
    spec = tasks.get(NAME)
    assert spec.suite == "metaworld" and spec.adapter == "tasks.metaworld" and spec.metric == "success_last_step"
    assert NAME in [t.name for t in tasks.available()]
    assert NAME in tasks.groups()["metaworld"] and NAME in tasks.expand("metaworld")
    assert NAME not in tasks.groups()["mujoco"] and len(tasks.groups()["mujoco"]) == 12
    assert NAME not in tasks.groups()["cortexbench"]


def test_the_docs_show_the_example_code(plugged):
    plugged(_declared_points())
    docs = (REPO / "docs" / "adding-a-task.md").read_text()
    snippet = re.search(r"```python\n(.*?)```", docs, re.S)[1]
    namespace: dict = {}
    exec(snippet, namespace)  # the documented file builds the example's spec
    assert namespace["DOOR_OPEN"] == dataclasses.replace(tasks.get(NAME), notes=namespace["ASSEMBLY"].notes)
    assert _declared_points()[0].value in docs


def test_a_plugin_that_is_not_a_task_or_clashes_fails_naming_itself(plugged, tmp_path, monkeypatch):
    (tmp_path / "toy_tasks.py").write_text("from tasks.metaworld import ASSEMBLY\nNOT_A_TASK = 3\nCLASH = ASSEMBLY\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    group = registry_module.ENTRY_POINT_GROUP
    plugged([EntryPoint("toy", "toy_tasks:NOT_A_TASK", group)])
    with pytest.raises(TypeError, match=r"task plug-in 'toy'.*holds no TaskSpec"):
        tasks.get("metaworld-assembly")
    plugged([EntryPoint("toy", "toy_tasks:MISSING", group)])
    with pytest.raises(ImportError, match=r"task plug-in 'toy'.*failed to load"):
        tasks.get("metaworld-assembly")
    plugged([EntryPoint("toy", "toy_tasks:CLASH", group)])
    with pytest.raises(ValueError, match="'metaworld-assembly' is defined twice"):
        tasks.get("metaworld-assembly")


@pytest.mark.slow
@pytest.mark.sim_metaworld
def test_the_installed_example_is_listed_and_runs_a_smoke_cell(tmp_path):
    import metaworld  # noqa: F401  (part of the install: a missing MetaWorld fails here, it is not skipped)

    source, site = tmp_path / "src", tmp_path / "site"
    shutil.copytree(EXAMPLE, source)  # pip builds in the source folder: keep the repository clean
    pip = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    installed = subprocess.run([*pip, "--target", str(site), str(source)], capture_output=True, text=True)
    assert installed.returncode == 0, installed.stderr[-3000:]
    assert (site / "cortexbench_example_task").is_dir()
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}

    def run(*args: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", *args]
        return subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=900)

    listing = run("experiments.listing", "tasks")
    assert listing.returncode == 0, listing.stderr[-3000:]
    assert re.search(rf"^{NAME}\s+metaworld\s", listing.stdout, re.M), listing.stdout

    results = tmp_path / "results"
    cell = run(
        "experiments.eval", "encoder=random-vit-tiny", f"task={NAME}", "protocol=smoke", f"results_dir={results}"
    )
    assert cell.returncode == 0, cell.stderr[-3000:]
    record = json.loads((results / "runs" / "smoke" / "random-vit-tiny" / NAME / "seed=100.json").read_text())
    assert validate(record) == [] and record["status"] == "ok"
    assert record["task"]["name"] == NAME and record["task"]["suite"] == "metaworld"
    assert record["demos"]["source"] == "scripted" and len(record["episodes"]["final"]) == 2
