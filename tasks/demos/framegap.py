"""How far official demo frames are from our renderer: the state of each official demo's first frame
rendered by us, compared with the pickle's own first image (`demos.frame_gap` in the run record).

The official frames come from other renderers (mujoco-py / MuJoCo 2.0 for MetaWorld, Adroit and DMC;
TriFinger's fork meshes). Where the demos train on the pickle's images (MetaWorld, Adroit without
per-step states) the gap is what the policy must bridge between training and evaluation frames; where
the frames are re-rendered (DMC) it measures how far the reference's frames were from ours.

Two numbers per demo, averaged over demos (worst ones kept too): the mean absolute pixel difference
(0-255, RGB) and the structural similarity (SSIM, Wang et al. 2004: grey levels, 7x7 uniform window,
K1 = 0.01, K2 = 0.03). A set whose mean is beyond `LIMITS` warns and says so (`above_limit`). The
limits are judgement, not measurement (the official data are not available where this was written):
re-rendering the same scene with MuJoCo 3 vs 2 changes shading and anti-aliasing by a few grey levels
and keeps SSIM high, while a wrong camera, object layout or model leaves large regions different.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np

LIMITS = {"mean_abs_diff": 20.0, "ssim": 0.6}  # warn when the mean difference is above / the SSIM below
WINDOW = 7


def _resized(image: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if image.shape == shape:
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(image, np.uint8)).resize((shape[1], shape[0]), Image.BILINEAR))


def _box_mean(x: np.ndarray, k: int) -> np.ndarray:
    """Mean over every k x k window fully inside x (the 'valid' part), by summed-area table."""
    s = np.pad(x, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity of two uint8 RGB images of one shape, on grey levels (ITU-R 601 luma)."""
    weights = np.array([0.299, 0.587, 0.114])
    x, y = (np.asarray(im, np.float64) @ weights for im in (a, b))
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mx, my = _box_mean(x, WINDOW), _box_mean(y, WINDOW)
    vx = _box_mean(x * x, WINDOW) - mx * mx
    vy = _box_mean(y * y, WINDOW) - my * my
    cxy = _box_mean(x * y, WINDOW) - mx * my
    n = WINDOW * WINDOW
    vx, vy, cxy = (v * n / (n - 1) for v in (vx, vy, cxy))  # sample (co)variances, as Wang et al.
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return float(s.mean())


def frame_gap(ours: np.ndarray, theirs: np.ndarray) -> dict:
    """{"mean_abs_diff", "ssim"} of our frame and the pickle's (resized to ours when the sizes differ)."""
    ours = np.asarray(ours, np.uint8)
    theirs = _resized(np.asarray(theirs, np.uint8), ours.shape)
    diff = float(np.mean(np.abs(ours.astype(np.float32) - theirs.astype(np.float32))))
    return {"mean_abs_diff": round(diff, 3), "ssim": round(ssim(ours, theirs), 4)}


def summarise(gaps: Sequence[dict | None], how: str) -> dict:
    """The record's `frame_gap`: means and worst values over the demos measured, the limits, and whether
    the mean is beyond them (which also warns). `gaps` holds None for demos that could not be measured."""
    measured = [g for g in gaps if g is not None]
    if not measured:
        return {"measured": False, "how": how}
    mad = float(np.mean([g["mean_abs_diff"] for g in measured]))
    sim = float(np.mean([g["ssim"] for g in measured]))
    out = {
        "measured": True,
        "how": how,
        "n_demos": len(measured),
        "mean_abs_diff": round(mad, 3),
        "ssim": round(sim, 4),
        "worst_mean_abs_diff": max(g["mean_abs_diff"] for g in measured),
        "worst_ssim": min(g["ssim"] for g in measured),
        "limits": dict(LIMITS),
        "above_limit": mad > LIMITS["mean_abs_diff"] or sim < LIMITS["ssim"],
    }
    if out["above_limit"]:
        warnings.warn(
            f"official demo frames are far from our renderer's ({how}): mean absolute difference {mad:.1f} "
            f"(limit {LIMITS['mean_abs_diff']}), SSIM {sim:.3f} (limit {LIMITS['ssim']}) over {len(measured)} "
            f"demos; the policy trains on frames unlike the evaluation frames (docs/protocols.md, frame gap)",
            stacklevel=2,
        )
    return out
