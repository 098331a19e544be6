"""TriFinger suite: CortexBench's Reach-Cube and Move-Cube on trifinger_simulation 2.0.0 (pybullet).

Facts (reference/cortexbench.md section 2; eai-vc @ e782c35 `cortexbench/trifinger_vc`:
`trifinger_envs/{cube_reach,gym_cube_env}.py`, `utils/{sim_nn,data_utils,dataset}.py`,
`control/impedance_controller.py`, `config/task/{reach,move}_cube.yaml`, the demo split jsons; the
simulator fork ClaireLC/trifinger_simulation @ b3629c6):

- physics step 0.004 s; one policy step is 0.4 s = 100 physics steps; Reach-Cube lasts 5 policy
  steps (500 physics steps), Move-Cube 10 (1000).
- an action is a change of the desired fingertip positions, in cm (the demos' `delta_ftpos`, scale
  100): finger 0 only for Reach (3-d), all three fingers for Move (9-d); it is clipped to +-max_a
  (5 cm Reach, 8 cm Move; eai-vc `DeterministicPolicy.clip_action`) and divided by 100. Within the
  step the desired positions move linearly from the current plan to plan + action, tracked by the
  impedance controller (`ImpedanceController`: Kp 300, Kv 5, position error capped at 1 cm per
  finger, gravity from pinocchio's RNEA), whose torques are clipped to +-0.397 Nm and then pass the
  simulator's own safety checks.
- the robot is the fork's `trifinger_meta` (`edu/trifingernyu.urdf`); its kinematics and
  dynamics are those of `trifingeredu` (the two URDFs differ only in visual elements), which is what
  we load. Its look is rebuilt: grey links, yellow fingertips, a black table and black containment
  (fork `sim_finger.py: __load_stage`, `trifinger_meta`). The fork's yellow tip mesh is not in
  robot_properties_fingers 2.0.2, so the tips are yellow spheres of the tip's radius (9.5 mm).
- the cube is trifinger_simulation's `cube_v2` (COLORED_CUBE, 65 mm, 94 g), fixed to the table for
  Reach (`fix_cube_base=True`), free for Move.
- observation: camera60 (`TriFingerCameras`' first camera, 270x270) and the fingertip positions in
  cm. The platform's cameras run at 10 Hz (every 25 physics steps, delay 0), so the frame the policy
  sees after a step shows the scene 25 physics steps (0.1 s) before the step's end, and the cube
  pose the platform reports (used by the Move metric) is read with that frame. We render only that
  frame (one camera, once per policy step) instead of every camera at 10 Hz.
- metric: scaled success at the final step. Reach: 1 - min(1, max(|ft0 - cube| - w/2, 0) /
  (|ft0_init - cube| - w/2)) (`data_utils.get_reach_scaled_err`); Move: 1 - |cube - goal| /
  |cube_init - goal| (`gym_cube_env.get_success`); both clipped at 0. The task score is the mean
  over the test demos x 100 (`tasks.metrics`: `scaled_success`).
- demos: `trifinger_demos.zip` -> `trifinger-demos/{reach,move}/demo-XXXX/dts-0p4/downsample.pth`
  (`torch.save`d dicts, positions in cm); 125 per task, train ids 0-99, test ids 100-124. An
  evaluation episode starts from a test demo's first robot joints and cube pose; Move's goal is the
  demo's final cube pose, its goal image the demo's last `image_60` frame (`sim_nn.Task.reset`).

Rendering (measured here, 270x270 camera60, Mesa llvmpipe): the reference renders with pybullet's
TinyRenderer (DIRECT mode, no plugin), ~75 ms a frame. pybullet's EGL plugin renders in ~25-45 ms,
but its pictures differ: lighting and shadows differ and the cube's texture comes out as green and
black bands. Render quality `faithful` therefore means TinyRenderer (the pixels of the official
demos); `fast` means the EGL plugin where it loads (TinyRenderer otherwise). The renderer that made
the frames is recorded in the demo fingerprint and the run record; demos and evaluation always use
the same one. Official demos keep their own `image_60` frames (TinyRenderer, camera60: what
`faithful` renders) rather than being re-rendered from their states: `robot_pos` is read 25 physics
steps after the frame was taken, so a re-render would show another robot pose than the image the
demonstrated action was chosen from.

Scripted experts (offline demos in the official layout): Reach moves fingertip 0 to the cube's
centre; Move cages the cube with the three fingertips and pushes it to the goal. Their demos start
from poses drawn like the fork's `sample_goal(difficulty=-1)` (uniform in a 9 cm disc, random face up
and yaw), seeded 10000 + demo id.

Layout: `spec` (task specs, constants, metric formulas), `control` (impedance controller), `env` (the
gymnasium env and its rendering), `experts` (scripted experts), `demos` (the `downsample.pth` layout and
the suite's `load_demos`). This package is the suite's adapter (`TaskSpec.adapter = "tasks.trifinger"`).
"""

from __future__ import annotations

from tasks.trifinger.control import ImpedanceController
from tasks.trifinger.demos import (
    DEMO_KEYS,
    check_demos,
    collect_scripted_demo,
    demo_file,
    demo_ids,
    load_demos,
    official_root,
    read_downsample,
    scripted_root,
    write_downsample,
)
from tasks.trifinger.env import TriFingerCubeEnv, backend_info, egl_plugin_path, make_env, renderer_for
from tasks.trifinger.experts import scripted_expert
from tasks.trifinger.spec import (
    CUBE_WIDTH,
    MOVE_CUBE,
    REACH_CUBE,
    SCALE,
    TASKS,
    TIP_RADIUS,
    TriFingerTaskSpec,
    move_scaled_success,
    reach_scaled_success,
)

__all__ = [
    "CUBE_WIDTH",
    "DEMO_KEYS",
    "MOVE_CUBE",
    "REACH_CUBE",
    "SCALE",
    "TASKS",
    "TIP_RADIUS",
    "ImpedanceController",
    "TriFingerCubeEnv",
    "TriFingerTaskSpec",
    "backend_info",
    "check_demos",
    "collect_scripted_demo",
    "demo_file",
    "demo_ids",
    "egl_plugin_path",
    "load_demos",
    "make_env",
    "move_scaled_success",
    "official_root",
    "reach_scaled_success",
    "read_downsample",
    "renderer_for",
    "scripted_expert",
    "scripted_root",
    "write_downsample",
]
