"""Head pose in degrees (yaw, pitch, roll) of the face in an image: dlib's 68 landmarks fitted to a
generic 3-D face with OpenCV's solvePnP through a pinhole camera.

Conventions (the viewer looks at the image):
- yaw > 0: the face turned to the viewer's right (its nose moves to the image's right);
- pitch > 0: the face looking up (its nose moves up in the image);
- roll > 0: the head tilted clockwise in the image (the eye on the image's right is lower).
A face looking straight into the camera is (0, 0, 0) wherever it sits in the frame: the angles are
measured from the line of sight, the ray from the camera to the face, not from the camera's axis. The
camera is a pinhole of focal length the image width, centred on the image; most photos are taken with
longer lenses, and measured from the line of sight a wrong focal length costs little (a face turned 0
degrees, 0.17 of the width off centre, photographed at 3 or 10 times that focal length reads -3.7 or
-1.6 degrees, and +5.7 or +7.8 from the axis). The rotation is composed in that order of
reading: pitch about the head's left-right axis, then yaw about the camera's vertical axis, then
roll in the image plane; a mirrored image gives (-yaw, pitch, -roll).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import cv2
import numpy as np

from facegen_cli.errors import FacegenError
from facegen_cli.metrics.identity import NoFace, enlarged, face_box
from facegen_cli.prepare.detect import detect_faces, pick_faces
from facegen_cli.prepare.landmarks import points68

# A generic adult face in millimetres, as dlib's 68-point index -> (x, y, z) in camera axes for a face
# looking into the camera: x to the image's right, y down, z away from the viewer, origin at the nose
# tip. The widths and heights are rounded averages of adult anthropometry (Farkas, "Anthropometry of
# the Head and Face"): outer eye corners 90 mm apart, inner corners 33 mm, mouth corners 50 mm, nostril
# wings 28 mm; root of the nose 54 mm above its base, the eye corners 42-44 mm above it, the mouth
# corners 20 mm and the chin 70 mm below it; the nose tip 6 mm above its base. The depths behind the
# nose tip are those of an average soft-tissue profile: nose base 18 mm, nostril wings 16, root of the
# nose 24, inner eye corners 30, outer eye corners 48, mouth corners 32, chin 36. The model is
# mirror-symmetric, so a mirrored image reads as the mirrored pose. A few millimetres either way move
# the angles by a degree or two, not their signs: with the eye corners 4 mm lower, the median pitch of
# CelebA's faces reads 3 degrees further down (see benchmarks/RESULTS.md, "Head pose estimator").
FACE_MODEL = {
    30: (0.0, 0.0, 0.0),  # nose tip
    33: (0.0, 6.0, 18.0),  # base of the nose (subnasale)
    31: (-14.0, 4.0, 16.0), 35: (14.0, 4.0, 16.0),  # nostril wings
    27: (0.0, -48.0, 24.0),  # root of the nose (nasion)
    36: (-45.0, -38.0, 48.0), 45: (45.0, -38.0, 48.0),  # outer eye corners
    39: (-16.5, -36.0, 30.0), 42: (16.5, -36.0, 30.0),  # inner eye corners
    48: (-25.0, 26.0, 32.0), 54: (25.0, 26.0, 32.0),  # mouth corners
    8: (0.0, 76.0, 36.0),  # chin
}
LANDMARKS = list(FACE_MODEL)
_MODEL = np.array([FACE_MODEL[i] for i in LANDMARKS], dtype=np.float64)


@dataclass(frozen=True)
class Pose:
    """Head pose in degrees; the module's docstring defines the signs."""

    yaw: float
    pitch: float
    roll: float


def camera(width: int, height: int) -> np.ndarray:
    """The pinhole camera assumed for an image: focal length its width, centred on the middle pixel."""
    return np.array([[width, 0.0, (width - 1) / 2], [0.0, width, (height - 1) / 2], [0.0, 0.0, 1.0]])


def _towards(direction: np.ndarray) -> np.ndarray:
    """The smallest rotation that turns the camera's axis (0, 0, 1) onto `direction`."""
    unit = direction / np.linalg.norm(direction)
    axis = np.cross([0.0, 0.0, 1.0], unit)
    sin = np.linalg.norm(axis)
    angle = math.atan2(sin, unit[2])
    return cv2.Rodrigues(axis * (angle / sin) if sin > 0 else np.zeros(3))[0]


def pose_from_landmarks(landmarks: np.ndarray, width: int, height: int) -> Pose:
    """The pose that carries the generic face onto dlib's 68 landmarks (a 68x2 array of pixel (x, y))
    in a `width` x `height` image."""
    points = np.ascontiguousarray(np.asarray(landmarks, dtype=np.float64)[LANDMARKS])
    k = camera(width, height)
    ok, rvec, tvec = cv2.solvePnP(_MODEL, points, k, None, flags=cv2.SOLVEPNP_SQPNP)
    if not ok:
        raise FacegenError("the landmarks fit no head pose")
    rvec, tvec = cv2.solvePnPRefineLM(_MODEL, points, k, None, rvec, tvec)
    r = _towards(tvec.ravel()).T @ cv2.Rodrigues(rvec)[0]
    # r = Rz(roll) @ Ry(-yaw) @ Rx(-pitch) in the axes of the line of sight (x right, y down, z away)
    yaw = -math.atan2(-r[2, 0], math.hypot(r[2, 1], r[2, 2]))
    pitch = -math.atan2(r[2, 1], r[2, 2])
    roll = math.atan2(r[1, 0], r[0, 0])
    return Pose(math.degrees(yaw), math.degrees(pitch), math.degrees(roll))


def face_landmarks(rgb: np.ndarray, aligned: bool = False) -> np.ndarray | None:
    """dlib's 68 landmarks of the largest face in an HWC uint8 RGB image (pixel (x, y)), or None.

    `aligned` says the image is an FFHQ-aligned crop (as the generator draws them): where the detector
    finds no face, the box is the one the alignment implies, kept when the landmarks hold on to eyes,
    nose and mouth there (metrics.identity.face_box, which measured that box)."""
    big, factor = enlarged(np.ascontiguousarray(rgb))  # a 64 px face read 4 times larger
    if aligned:
        try:
            box = face_box(big)
        except NoFace:
            return None
    else:
        faces = pick_faces(detect_faces(big), max_faces=1)
        if not faces:
            return None
        box = faces[0].box
    points = points68(big, (box[0], box[1], box[2] - 1, box[3] - 1))
    return (points + 0.5) / factor - 0.5


def head_pose(image: np.ndarray, name: str = "image", aligned: bool = False) -> Pose:
    """Head pose of the largest face in an HWC uint8 RGB image; a FacegenError naming it (`name`) when
    there is no face. `aligned`: see face_landmarks."""
    landmarks = face_landmarks(image, aligned)
    if landmarks is None:
        raise FacegenError(f"{name}: no face found, so no head pose")
    return pose_from_landmarks(landmarks, image.shape[1], image.shape[0])


def head_poses(images: Iterable[np.ndarray], aligned: bool = False) -> list[Pose | None]:
    """Head pose of each image's largest face, None where there is no face."""
    poses = []
    for image in images:
        landmarks = face_landmarks(image, aligned)
        poses.append(None if landmarks is None else pose_from_landmarks(landmarks, image.shape[1], image.shape[0]))
    return poses
