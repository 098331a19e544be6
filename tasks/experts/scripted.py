"""Scripted state-based controllers, where a few lines of geometry beat a trained policy.

Each factory takes the TaskSpec and returns `expert(observation) -> action`, reading only
`observation["state"]` (the simulator's state observation), like the trained experts.
"""

from __future__ import annotations

import numpy as np

from tasks.spec import TaskSpec

REACHER_LINK = 0.12  # dm_control reacher.xml: arm and hand both 0.12 long, along +x at zero angles
REACHER_MIN_REACH = 0.0415  # 2 * 0.12 * cos(2.79 / 2): the wrist's range is +-2.79 rad


def reacher_ik(spec: TaskSpec, kp: float = 20.0, kd: float = 1.0):
    """dm_control reacher: solve the two-link inverse kinematics for the target, then joint-space PD.

    State = [joint angles (2), finger-to-target vector in the world frame (2), joint velocities (2)].
    The target point is the finger position (forward kinematics) plus that vector; the elbow keeps the
    side it is on. A Jacobian-transpose controller stalls when the arm is stretched straight and the
    target is closer in (the radial direction is singular); inverse kinematics does not.
    """
    link = REACHER_LINK

    def expert(obs: dict[str, np.ndarray]) -> np.ndarray:
        state = obs["state"]
        q, to_target, qd = state[:2], state[2:4], state[4:6]
        finger = link * np.array([np.cos(q[0]) + np.cos(q[0] + q[1]), np.sin(q[0]) + np.sin(q[0] + q[1])])
        target = finger + to_target
        r2 = np.clip(target @ target, REACHER_MIN_REACH**2, (2 * link) ** 2)
        elbow = np.arccos(np.clip((r2 - 2 * link**2) / (2 * link**2), -1.0, 1.0)) * (1.0 if q[1] >= 0 else -1.0)
        shoulder = np.arctan2(target[1], target[0]) - np.arctan2(link * np.sin(elbow), link + link * np.cos(elbow))
        error = np.array([(shoulder - q[0] + np.pi) % (2 * np.pi) - np.pi, elbow - q[1]])
        return np.clip(kp * error - kd * qd, -1.0, 1.0).astype(np.float32)

    return expert


def relocate_reach_grasp(
    spec: TaskSpec, tilt: float = 0.2, gain: float = 4.0, offset: tuple[float, float, float] = (0.0, 0.03, 0.03)
):
    """Adroit relocate: move the palm above the ball, descend, close every finger, lift and carry.

    State = [30 arm+hand joint positions, palm - ball, palm - target, ball - target]. The palm's world
    position comes from the joint positions through the model's own kinematics (a private copy), the
    ball and target from the relative vectors. The arm's slide joints track a palm goal through the
    site Jacobian; their actuators are springs (force = 500 ctrl - 200 q), so the command is
    over-driven by `gain` to counter the sag. The forearm is pitched by `tilt` rad so the fingers
    reach the table. It grasps weakly: its measured success is recorded with it and in every run record.
    """
    import mujoco

    env = spec.make_env(render=False)  # the task's own env: the same model file and actuator settings
    model = env.model
    env.close()
    data = mujoco.MjData(model)
    site = model.site("S_grasp").id
    mean = model.actuator_ctrlrange.mean(axis=1)
    half_range = 0.5 * (model.actuator_ctrlrange[:, 1] - model.actuator_ctrlrange[:, 0])
    low, high = model.jnt_range[:3, 0], model.jnt_range[:3, 1]
    names = [model.actuator(i).name for i in range(model.nu)]
    close = np.array([0.0 if n.endswith(("J3", "LFJ4")) or n.startswith("A_WR") else 1.0 for n in names[6:]])
    offset = np.asarray(offset)  # palm site relative to the ball when grasping

    def palm_and_jacobian(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        data.qpos[:] = 0.0
        data.qpos[:30] = q
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        jacobian = np.zeros((3, model.nv))
        mujoco.mj_jacSite(model, data, jacobian, None, site)
        return data.site_xpos[site].copy(), jacobian[:, :3]

    def expert(obs: dict[str, np.ndarray]) -> np.ndarray:
        state = obs["state"]
        q = state[:30]
        palm, jacobian = palm_and_jacobian(q)
        ball, target = palm - state[30:33], palm - state[33:36]
        grasp = ball + offset
        error = grasp - palm
        goal = grasp + (np.array([0.0, 0.0, 0.08]) if np.linalg.norm(error[:2]) > 0.03 else 0.0)
        fingers = np.zeros(24)
        near = np.linalg.norm(error) < 0.03
        holding = ball[2] > 0.05 and np.linalg.norm(palm - ball) < 0.12
        if near or holding:
            fingers = close
        if holding:
            goal = target + (palm - ball)
        elif near and np.mean(q[9:11]) > 1.0:  # fingers curled: lift
            goal = palm + np.array([0.0, 0.0, 0.05])
        desired = np.clip(q[:3] + np.linalg.lstsq(jacobian, goal - palm, rcond=None)[0], low, high)
        ctrl = np.zeros(30)
        ctrl[:3] = (q[:3] + gain * (desired - q[:3])) / 2.5  # spring actuators: q settles near 2.5 ctrl
        ctrl[3] = tilt / 2.5
        action = (ctrl - mean) / half_range
        action[6:] = fingers
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return expert
