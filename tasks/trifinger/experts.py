"""Scripted TriFinger experts (offline demos): Reach presses fingertip 0 onto the cube; Move pushes the
cube to the goal with two fingertips. Both act on the observation's tracked cube pose and the plan."""

from __future__ import annotations

import numpy as np

from tasks.trifinger.spec import CUBE_WIDTH, SCALE, TIP_RADIUS, TriFingerTaskSpec


def _scaled_to(delta: np.ndarray, limit: float) -> np.ndarray:
    """delta shrunk (direction kept) so that no component exceeds `limit`."""
    peak = float(np.max(np.abs(delta))) if delta.size else 0.0
    return delta if peak <= limit else delta * (limit / peak)


class _MoveExpert:
    """Push the cube to the goal with two fingertips held side by side behind it (the third stays up).

    Every step re-plans from the tracked cube pose: lift, go over the two push points (behind the
    cube, opposite the goal), lower the fingertips to below the cube's centre, then advance the push
    points towards the goal by at most PUSH_STEP. The pushing fingers are chosen once per episode
    (the assignment with the shortest fingertip travel). `phase` is 1 while getting into place, 2
    while pushing (the demos' `mode`).
    """

    HOVER = CUBE_WIDTH + 0.03  # m, fingertip height while moving into place
    PUSH_HEIGHT = 0.02  # m, fingertip height while pushing (below the cube's centre)
    BEHIND = CUBE_WIDTH / np.sqrt(2) + TIP_RADIUS + 0.004  # m, push points behind the centre (clears any yaw)
    CONTACT = CUBE_WIDTH / 2 + TIP_RADIUS - 0.002  # m, fingertip centre behind the cube's centre when pushing a face
    SPREAD = 0.02  # m, push points either side of the push line
    PUSH_STEP = 0.05  # m per policy step
    ALIGNED = 0.012  # m, fingertips this close (xy) to their push points count as in place ...
    KEEP_PUSHING = 0.035  # m, ... and, once pushing, until they are this far off
    CLEARANCE = 0.065  # m, a fingertip path this far (xy) from the cube's centre cannot touch it

    def __init__(self, limit: float):
        self.limit = limit
        self.pushers: tuple[int, int] | None = None
        self.phase = 1

    def reset(self) -> None:
        self.pushers, self.phase = None, 1

    def _clear_path(self, start: np.ndarray, end: np.ndarray, cube: np.ndarray) -> bool:
        """Whether the xy segment start-end stays CLEARANCE away from the cube's centre."""
        seg = end - start
        u = np.clip(np.dot(cube - start, seg) / max(np.dot(seg, seg), 1e-12), 0.0, 1.0)
        return float(np.linalg.norm(start + u * seg - cube)) > self.CLEARANCE

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        plan = obs["ft_pos_des"].reshape(3, 3) / SCALE
        cube, goal = obs["cube_position"], obs["goal_position"]
        offset = (goal - cube)[:2]
        remaining = float(np.linalg.norm(offset))
        direction = offset / max(remaining, 1e-9)
        side = np.array([-direction[1], direction[0]])
        points = [cube[:2] - self.BEHIND * direction + sign * self.SPREAD * side for sign in (1.0, -1.0)]
        if self.pushers is None:
            pairs = [(a, b) for a in range(3) for b in range(3) if a != b]
            self.pushers = min(
                pairs, key=lambda p: sum(np.linalg.norm(plan[f, :2] - points[k]) for k, f in enumerate(p))
            )
        target = plan.copy()
        idle = ({0, 1, 2} - set(self.pushers)).pop()
        target[idle, 2] = self.HOVER
        fingers = list(self.pushers)
        off_xy = max(np.linalg.norm(plan[f, :2] - points[k]) for k, f in enumerate(fingers))
        low = plan[fingers, 2].max() < self.PUSH_HEIGHT + 0.005
        if off_xy > (self.KEEP_PUSHING if self.phase == 2 and low else self.ALIGNED):  # get into place
            self.phase = 1
            for k, f in enumerate(fingers):
                high = plan[f, 2] > self.HOVER - 0.01
                direct = high or self._clear_path(plan[f, :2], points[k], cube[:2])
                target[f] = [*points[k], self.HOVER] if direct else [*plan[f, :2], self.HOVER]
        elif not low:  # over the push points: down
            self.phase = 1
            for k, f in enumerate(fingers):
                target[f] = [*points[k], self.PUSH_HEIGHT]
        else:  # push
            self.phase = 2
            # In contact a fingertip is only CONTACT behind the centre (a face), so the last push goes past BEHIND.
            advance = min(self.PUSH_STEP, remaining + self.BEHIND - self.CONTACT) * direction
            for k, f in enumerate(fingers):
                target[f] = [*(points[k] + advance), self.PUSH_HEIGHT]
        return _scaled_to((target - plan).reshape(9) * SCALE, self.limit).astype(np.float32)


class _ReachExpert:
    """Fingertip 0 over the cube's top face, then pressed down on it (a straight line would catch the
    tip on an edge). The metric's best value is limited by the fingertip's radius: resting on a face,
    the tip centre is w/2 + 9.5 mm from the cube centre."""

    def __init__(self, limit: float):
        self.limit = limit
        self.phase = 1

    def reset(self) -> None:
        self.phase = 1

    def __call__(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        plan, cube = obs["ft_pos_des"][:3] / SCALE, obs["cube_position"]
        above = cube + np.array([0.0, 0.0, CUBE_WIDTH / 2 + TIP_RADIUS + 0.01])
        target = above if np.linalg.norm(plan[:2] - cube[:2]) > 0.005 else cube
        return _scaled_to((target - plan) * SCALE, self.limit).astype(np.float32)


def scripted_expert(spec: TriFingerTaskSpec):
    """`expert(observation) -> action (cm)` for one episode at a time (call `expert.reset()` between
    episodes). Reach: fingertip 0 onto the cube; Move: a two-finger push to the goal."""
    return _ReachExpert(spec.max_action) if spec.fix_cube else _MoveExpert(spec.max_action)
