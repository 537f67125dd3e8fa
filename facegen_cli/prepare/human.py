"""Whether a detected face is a human's: dlib's CNN face detector asked to confirm the HOG detector's box.

dlib's HOG detector (`detect_faces`' default) fires on animals: on crops of dlib's own example photo of
four dogs it finds a "face" 94 times. Neither the 68 landmarks nor the 128-d face descriptor in such a
box tell it from a human face: the shape predictor draws a human-shaped face on anything (its residual
to the mean human shape, eye distance over box side, mouth and jaw proportions all fall inside the
range of real faces), landmark drift reaches 0.39 on dogs but 1.3 on real faces turned 20 degrees, and
the descriptor's norm and its distance to the human mean overlap too. dlib's CNN detector
(`mmod_human_face_detector.dat`, prepare's `dlib-cnn`, trained on human faces) confirms real faces
and none of the dogs, so it checks the one box: a square `CONTEXT` times the box's side around it,
scaled to `CROP` px (the box then about 107 px, well within the detector's window), searched once
without upsampling; the face is human when a detection there overlaps the box by `MIN_OVERLAP` (IoU).
Measured by benchmarks/face_check.py (results in benchmarks/RESULTS.md).
"""
from __future__ import annotations

import numpy as np

from facegen_cli.errors import FacegenError
from facegen_cli.prepare import align
from facegen_cli.prepare.detect import detect_faces, pick_faces

CONTEXT = 1.5
CROP = 160
MIN_OVERLAP = 0.3


def _overlap(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    """Intersection over union of two boxes (left, top, right, bottom)."""
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def human_score(rgb: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The CNN detector's confidence (about 1 on a clear face) for the face in `box` of the HWC uint8 RGB
    photo, 0 where it finds no face there."""
    crop = align.crop(rgb, align.box_rect(box, (CONTEXT - 1) / 2), CROP)
    inner = CROP * (1 - 1 / CONTEXT) / 2
    place = (inner, inner, CROP - inner, CROP - inner)
    return max((face.score for face in detect_faces(crop, "dlib-cnn", upsample=0)
                if _overlap(face.box, place) >= MIN_OVERLAP), default=0.0)


def check_human(rgb: np.ndarray, box: tuple[int, int, int, int], name: str) -> None:
    """Refuse (FacegenError naming the photo) a detected face that dlib's human face detector does not confirm."""
    if human_score(rgb, box) <= 0:
        raise FacegenError(f"{name}: the face found is not a human face (dlib's human face detector does not "
                           "confirm it); give a photo of a person")


def check_photo_human(rgb: np.ndarray, name: str) -> None:
    """`check_human` on the largest face dlib's HOG detector finds in the photo (nothing to check where it finds
    none: an aligned crop, or no face, which the caller's own detection reports)."""
    faces = pick_faces(detect_faces(rgb), max_faces=1)
    if faces:
        check_human(rgb, faces[0].box, name)
