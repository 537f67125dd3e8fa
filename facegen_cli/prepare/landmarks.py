"""Eye and mouth positions from dlib's 68-point or 5-point shape predictor."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from facegen_cli.prepare.detect import model_file

PREDICTORS = {68: "shape_predictor_68_face_landmarks.dat", 5: "shape_predictor_5_face_landmarks.dat"}
# The 5-point model marks eye corners and the base of the nose but no mouth. On UTKFace faces
# the 68-point mouth centre lies at 1.33 times the eyes-to-nose vector from the eye midpoint
# (median over 94 faces), so that is where the 5-point mouth is placed.
MOUTH_PER_NOSE = 1.33


@dataclass
class FacePoints:
    """Centres of the eye on the image's left, the eye on its right, and the mouth, as (x, y)."""

    eye_left: np.ndarray
    eye_right: np.ndarray
    mouth: np.ndarray


@lru_cache(maxsize=None)
def _predictor(points: int):
    import dlib

    return dlib.shape_predictor(model_file(PREDICTORS[points]))


def face_points(rgb: np.ndarray, box: tuple[int, int, int, int], points: int = 68) -> FacePoints:
    """Locate eyes and mouth of the face in `box` (left, top, right, bottom) with dlib."""
    import dlib

    if points not in PREDICTORS:
        raise ValueError(f"landmarks must be 68 or 5, got {points}")
    rect = dlib.rectangle(int(box[0]), int(box[1]), int(box[2]) - 1, int(box[3]) - 1)
    shape = _predictor(points)(rgb, rect)
    pts = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float64)
    if points == 68:
        return FacePoints(pts[36:42].mean(0), pts[42:48].mean(0), (pts[48] + pts[54]) / 2)
    eye_left, eye_right = pts[2:4].mean(0), pts[0:2].mean(0)
    eyes = (eye_left + eye_right) / 2
    return FacePoints(eye_left, eye_right, eyes + (pts[4] - eyes) * MOUTH_PER_NOSE)
