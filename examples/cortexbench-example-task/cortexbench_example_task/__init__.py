"""A task in an existing suite: MetaWorld's door-open, with CortexBench's MetaWorld protocol.

Everything but the task's identity is copied from a built-in MetaWorld task (camera, render size,
horizon, demos, episodes, metric, proprioception), so the harness's MetaWorld adapter
(`tasks.metaworld`: env, scripted expert, demo loader) runs it unchanged. See docs/adding-a-task.md.
"""

from __future__ import annotations

import dataclasses

from tasks.metaworld import ASSEMBLY

DOOR_OPEN = dataclasses.replace(
    ASSEMBLY,
    name="metaworld-door-open",
    version=1,
    env_id="door-open-v3",  # MetaWorld 3 env id (metaworld.env_dict.ALL_V3_ENVIRONMENTS)
    upstream_env_id="door-open-v2-goal-observable",
    official_demo_file="door-open-v2-goal-observable.pickle",
    notes="example plug-in (examples/cortexbench-example-task); not one of CortexBench's tasks",
)
