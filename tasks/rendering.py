"""Offscreen MuJoCo rendering with an explicit, recorded quality setting.

`faithful` keeps the simulator's defaults (4x MSAA, shadows); `fast` turns off multisampling and
shadow casting, about 4-5x faster on a CPU rasteriser, at the cost of slightly different pixels.
The quality changes what encoders see, so it is part of every demo fingerprint and run record.
"""

from __future__ import annotations

import os
import sys

import numpy as np

QUALITIES = ("faithful", "fast")


def configure_headless_gl() -> None:
    """Default to EGL (works headless, also on CPU-only machines via Mesa); must run before `import mujoco`."""
    if sys.platform.startswith("linux"):
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])


def check_quality(quality: str) -> str:
    if quality not in QUALITIES:
        raise ValueError(f"render quality {quality!r} is not one of {QUALITIES}")
    return quality


def apply_quality(model, quality: str) -> None:
    """Set the model's render options; call before the first renderer is created."""
    if check_quality(quality) == "fast":
        model.vis.quality.offsamples = 0
        model.light_castshadow[:] = 0


class _SharedContext:
    """One GL context, MjrContext and scene, shared by the cameras of one task in one process.

    The MjrContext is the renderer's copy of the model's meshes, textures and shadow map (about 130 MB per
    MetaWorld env under Mesa, plus ~50 MB of GL context): per env it dominated an evaluation worker's memory.
    Envs of one task have the same meshes and textures, and each render passes its own env's model and data
    to `mjv_updateScene`, so everything that differs between envs (body positions set at reset, material
    colours) still comes from that env. Renders in one process run one after another, so one scene serves all.
    """

    def __init__(self, model, size: int):
        import mujoco

        self.size = size
        self.gl = mujoco.gl_context.GLContext(size, size)
        self.gl.make_current()
        self.mjr = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
        mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self.mjr)
        self.scene = mujoco.MjvScene(model, maxgeom=10000)
        self.option = mujoco.MjvOption()
        self.rect = mujoco.MjrRect(0, 0, size, size)
        self.users = 0

    def free(self) -> None:
        self.gl.make_current()
        self.mjr.free()
        self.gl.free()


_SHARED: dict[tuple, _SharedContext] = {}


def _shared_key(share: str, model, size: int) -> tuple:
    """The caller's key (task and quality) plus what the MjrContext is built from, so that two models with
    different meshes, textures or render settings can never share one by mistake."""
    q = model.vis.quality
    return (
        share,
        size,
        model.nmesh,
        model.nmeshvert,
        model.ntex,
        model.ntexdata,
        model.nskin,
        model.nhfield,
        q.offsamples,
        q.shadowsize,
        model.vis.global_.offwidth,
        model.vis.global_.offheight,
    )


class Camera:
    """One named (or numbered) camera of a MuJoCo model, rendering square RGB frames.

    The offscreen buffer is sized to the frame: models ask for large ones (Adroit: 3024x1680 with 8x MSAA,
    ~330 MB per env) that a 256-px frame never uses; the frame's pixels are the same (tests/test_rendering.py).
    Cameras created with the same `share` key (the task and render quality) in one process share one GL and
    MjrContext (`_SharedContext`); without a key each camera has its own.
    """

    def __init__(self, model, camera: str | int, size: int, share: str | None = None):
        import mujoco

        model.vis.global_.offwidth = size
        model.vis.global_.offheight = size
        camera_id = camera if isinstance(camera, int) else mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, camera)
        if not 0 <= camera_id < model.ncam:
            raise ValueError(f"camera {camera!r} is not in the model ({model.ncam} cameras)")
        self._model = model
        self._camera = mujoco.MjvCamera()
        self._camera.type = mujoco.mjtCamera.mjCAMERA_FIXED
        self._camera.fixedcamid = camera_id
        key = _shared_key(share, model, size) if share is not None else None
        self._context = _SHARED.get(key) if key is not None else None
        if self._context is None:
            self._context = _SharedContext(model, size)
            if key is not None:
                _SHARED[key] = self._context
        self._context.users += 1
        self._key = key
        self.camera = camera

    def render(self, data) -> np.ndarray:
        """uint8 [size, size, 3], rows top to bottom (upright)."""
        import mujoco

        c = self._context
        c.gl.make_current()
        mujoco.mjv_updateScene(
            self._model, data, c.option, None, self._camera, mujoco.mjtCatBit.mjCAT_ALL.value, c.scene
        )
        mujoco.mjr_render(c.rect, c.scene, c.mjr)
        frame = np.empty((c.size, c.size, 3), np.uint8)
        mujoco.mjr_readPixels(frame, None, c.rect, c.mjr)
        return np.flipud(frame).copy()

    def close(self) -> None:
        if self._context is None:
            return
        self._context.users -= 1
        if self._context.users == 0:
            self._context.free()
            if self._key is not None:
                _SHARED.pop(self._key, None)
        self._context = None


def gl_renderer() -> str:
    """The OpenGL renderer MuJoCo's offscreen contexts get here (`GL_RENDERER`): "llvmpipe ..." is Mesa's CPU
    rasteriser; a GPU driver's name means frames are rendered on the GPU. For benchmarks: it decides how fast
    rendering can be."""
    import mujoco
    from OpenGL import GL

    context = mujoco.gl_context.GLContext(16, 16)
    try:
        context.make_current()
        return GL.glGetString(GL.GL_RENDERER).decode(errors="replace")
    finally:
        context.free()


def backend_info() -> dict:
    """What renders the frames, for run records."""
    return {"mujoco_gl": os.environ.get("MUJOCO_GL"), "pyopengl_platform": os.environ.get("PYOPENGL_PLATFORM")}
