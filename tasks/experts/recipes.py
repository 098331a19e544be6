"""How each task's offline expert is made: ARS settings per task, or a scripted controller.

The ARS settings follow the paper's (Mania et al. 2018, Table 9: step size 0.02, noise 0.03, top
directions <= directions) with budgets sized for a 2-core CPU; the walker, which starts each episode
in a random orientation and must first get up, learned faster with a larger step and noise (0.05 / 0.1). `train_horizon` is shorter than the
1000-step evaluation episode where the task's reward is the same at every step of a steady behaviour
(standing, running, spinning), which cuts the training cost without changing what is learned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from tasks.experts import scripted
from tasks.experts.ars import ARSConfig
from tasks.spec import TaskSpec


@dataclass(frozen=True)
class Recipe:
    kind: str  # "ars-linear" | "scripted"
    description: str
    config: ARSConfig | None = None
    controller: Callable | None = None  # scripted: spec -> expert(obs) -> action
    version: int = 1


def _ars(**kwargs) -> Recipe:
    return Recipe(
        kind="ars-linear",
        description="linear policy on the simulator state, trained by augmented random search (V2-t)",
        config=ARSConfig(**kwargs),
    )


RECIPES: dict[str, Recipe] = {
    "dmc-walker-stand": _ars(iterations=150, directions=16, top=8, step_size=0.05, noise=0.1, train_horizon=300),
    "dmc-walker-walk": _ars(iterations=150, directions=16, top=8, step_size=0.05, noise=0.1, train_horizon=300),
    "dmc-reacher-easy": Recipe(
        kind="scripted",
        description="two-link inverse kinematics to the target + joint-space PD (tasks/experts/scripted.py)",
        controller=scripted.reacher_ik,
    ),
    "dmc-cheetah-run": _ars(iterations=200, directions=16, top=8, train_horizon=300),
    "dmc-finger-spin": _ars(iterations=200, directions=16, top=8, train_horizon=300),
    "adroit-pen": _ars(iterations=200, directions=16, top=8, train_horizon=100),
    "adroit-relocate": Recipe(
        kind="scripted",
        description="reach above the ball, descend, close the hand, carry to the target (tasks/experts/scripted.py)",
        controller=scripted.relocate_reach_grasp,
    ),
}


def recipe(spec: TaskSpec) -> Recipe:
    if spec.name not in RECIPES:
        raise KeyError(f"no offline expert recipe for {spec.name!r}; known: {', '.join(sorted(RECIPES))}")
    return RECIPES[spec.name]
