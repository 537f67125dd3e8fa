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
# dlib's shape predictor draws a face-shaped set of points on anything, so the shape alone cannot
# tell a face from a collar (eye, nose and mouth positions on the 19 Haar false hits of the wild
# photos lie inside the ranges of real faces); whether the points stay on the image's eyes, nose and
# mouth when the box moves can. Measured on Haar boxes (`benchmarks/prepare.py --drift`): 6 of 341
# real faces from ../shared/data drift more than 0.5 (median 0.05), 17 of the 19 false hits do (the
# two kept are blurred heads in a crowd).
DRIFT_STEP = 0.1
DRIFT_LIMIT = 0.5
_INNER = [*range(36, 48), 27, 30, 33, *range(48, 60)]  # eyes, nose bridge, tip and base, outer lips


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


def points68(rgb: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    """dlib's 68 landmarks of the face in `box` (left, top, right, bottom; right and bottom are the last
    pixels inside, as dlib counts), as a 68x2 array of (x, y)."""
    import dlib

    rect = dlib.rectangle(*(int(round(v)) for v in box))
    return np.array([[p.x, p.y] for p in _predictor(68)(rgb, rect).parts()], dtype=np.float64)


def landmark_drift(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """How far eyes, nose and mouth follow the box when it moves by a tenth of its width.

    The box is moved left, right, up and down; the mean travel of the 27 inner landmarks is divided
    by the box's travel. On a face the predictor finds the same eyes, nose and mouth again (about 0),
    on anything else it draws a mean face wherever the box is (about 1).
    """
    left, top, right, bottom = (float(v) for v in box)
    step = DRIFT_STEP * (right - left)
    base = points68(rgb, (left, top, right - 1, bottom - 1))[_INNER]
    travel = [np.linalg.norm(points68(rgb, (left + dx, top + dy, right - 1 + dx, bottom - 1 + dy))[_INNER] - base,
                             axis=1).mean() / step
              for dx, dy in ((step, 0), (-step, 0), (0, step), (0, -step))]
    return float(np.mean(travel))


def plausible_face(rgb: np.ndarray, box: tuple[int, int, int, int]) -> bool:
    """Whether the landmarks in `box` hold on to eyes, nose and mouth in the image (see landmark_drift)."""
    return landmark_drift(rgb, box) <= DRIFT_LIMIT


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
