"""One reading of a face over every estimator: `read_face(images) -> {name: values}`.

Names and units: `Age` (years), CelebA's 40 attributes (probabilities, e.g. `Smiling`, `Black_Hair`),
and `Yaw`, `Pitch`, `Roll` (degrees, pose.py's signs; NaN where dlib finds no face).
"""
from __future__ import annotations

import numpy as np

from facegen_cli.estimators.attributes import as_batch, shared_reader
from facegen_cli.estimators.pose import head_poses

POSE = ("Yaw", "Pitch", "Roll")


def read_pose(images: np.ndarray, aligned: bool = True) -> dict[str, np.ndarray]:
    """Yaw, pitch and roll in degrees of each image's face (NaN where none is found)."""
    poses = head_poses(as_batch(images), aligned=aligned)
    return {name: np.array([np.nan if p is None else getattr(p, name.lower()) for p in poses]) for name in POSE}


def estimator_names(pose: bool = True) -> list[str]:
    """Every name read_face returns."""
    return [*shared_reader().names(), *(POSE if pose else ())]


def read_face(images: np.ndarray, pose: bool = True, aligned: bool = True) -> dict[str, np.ndarray]:
    """Every estimator on HWC/NHWC uint8 RGB faces: one value per image for each name (see the docstring).

    `pose` False skips the landmark fit (the slowest part); `aligned`: the faces are FFHQ-aligned crops,
    as the generator draws them (pose.face_landmarks)."""
    values = shared_reader().read(images)
    if pose:
        values.update(read_pose(images, aligned))
    return values
