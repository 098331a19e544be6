"""Offscreen MuJoCo rendering with an explicit, recorded quality setting.

`faithful` keeps the simulator's defaults (4x MSAA, shadows); `fast` turns off multisampling and
shadow casting, about 4-5x faster on a CPU rasteriser, at the cost of slightly different pixels.
The quality changes what encoders see, so it is part of every demo fingerprint and run record.
"""

from __future__ import annotations

import os
import sys

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


class Camera:
    """One named (or numbered) camera of a MuJoCo model, rendering square RGB frames."""

    def __init__(self, model, camera: str | int, size: int):
        import mujoco

        model.vis.global_.offwidth = max(model.vis.global_.offwidth, size)
        model.vis.global_.offheight = max(model.vis.global_.offheight, size)
        self._renderer = mujoco.Renderer(model, size, size)
        self.camera = camera

    def render(self, data):
        self._renderer.update_scene(data, camera=self.camera)
        return self._renderer.render()  # uint8 [size, size, 3], rows top to bottom (upright)

    def close(self) -> None:
        self._renderer.close()


def backend_info() -> dict:
    """What renders the frames, for run records."""
    return {"mujoco_gl": os.environ.get("MUJOCO_GL"), "pyopengl_platform": os.environ.get("PYOPENGL_PLATFORM")}
