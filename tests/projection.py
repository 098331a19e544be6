"""Pinhole projection of world points into a MuJoCo camera's image, rows counted from the top.

Used to check that frames come out upright: a painted object must sit where the camera geometry
puts it, which a vertically flipped image contradicts (unless the object is on the middle row).
"""

from __future__ import annotations

import numpy as np


def project(cam_xpos: np.ndarray, cam_xmat: np.ndarray, fovy_deg: float, point: np.ndarray, size: int) -> np.ndarray:
    """(row, col) of `point` in a size x size image of the camera (MuJoCo cameras look along their -z)."""
    rotation = np.asarray(cam_xmat).reshape(3, 3)  # columns: camera x (right), y (up), z (backwards) in world
    x, y, z = rotation.T @ (np.asarray(point) - np.asarray(cam_xpos))
    focal = (size / 2) / np.tan(np.deg2rad(fovy_deg) / 2)
    return np.array([size / 2 - focal * y / -z, size / 2 + focal * x / -z])


def blue_centroid(pixels: np.ndarray) -> tuple[np.ndarray, int]:
    """Mean (row, col) of the strongly blue pixels (an object painted pure blue), and how many there are."""
    p = pixels.astype(int)
    rows, cols = np.nonzero((p[..., 2] > 100) & (p[..., 0] < 60) & (p[..., 1] < 60))
    return np.array([rows.mean(), cols.mean()]) if len(rows) else np.full(2, np.nan), len(rows)
