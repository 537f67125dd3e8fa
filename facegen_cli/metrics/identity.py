"""Face identity distance: the Euclidean distance between dlib's 128-d face descriptors.

dlib's ResNet (`dlib_face_recognition_resnet_model_v1.dat`, from the face_recognition_models package)
maps a face to a 128-d descriptor; two photos whose descriptors lie less than 0.6 apart show the same
person by dlib's rule (`SAME_PERSON_THRESHOLD`). The network reads a 150x150 chip that dlib cuts out
around the face's 5 landmarks (`shape_predictor_5_face_landmarks.dat`: eye corners and nose base), so
each image goes through the steps dlib expects:

1. An image whose shorter side is under `MIN_SIDE` (256) px is first enlarged (bicubic, by a whole
   factor) to at least that side: facegen's faces are often 64x64, too small for dlib's HOG detector,
   which looks for faces of about 80 px (40 px upsampled once), and the landmarks and chip are then cut
   from the larger copy.
2. The largest face dlib's HOG detector finds (`prepare.detect.detect_faces`, which downscales large
   photos and upsamples small ones as `facegen prepare` does) gives the box for the landmarks.
3. Where it finds none in a square image (an aligned face crop), the box is the place FFHQ alignment
   (`prepare/align.py`) puts the face: `ALIGNED_BOX`, the median box the detector draws on 64 px
   FFHQ-aligned faces upscaled to 256 px. It is taken only when the landmarks in it hold on to eyes,
   nose and mouth (`prepare.landmarks.plausible_face`), so a blank square stays "no face" while a
   64 px generated face the detector misses still gets a descriptor.

Anything else is `NoFace`, naming the image. Measured on real same/different pairs at full
resolution and at 64 px: `benchmarks/identity_pairs.py`, results in benchmarks/RESULTS.md.
"""
from __future__ import annotations

import math
import threading
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np

from facegen_cli.errors import BadParameter, FacegenError
from facegen_cli.prepare.detect import detect_faces, load_photo, model_file, pick_faces
from facegen_cli.prepare.human import check_photo_human
from facegen_cli.prepare.landmarks import PREDICTORS, plausible_face

SAME_PERSON_THRESHOLD = 0.6
RECOGNITION_MODEL = "dlib_face_recognition_resnet_model_v1.dat"
MIN_SIDE = 256
# (left, top, right, bottom) as fractions of the side: the median HOG box on FFHQ-aligned 64 px faces
# upscaled to 256 px, the same for 147 UTKFace photos and 150 faces of the shipped model.
ALIGNED_BOX = (0.18, 0.32, 0.79, 0.93)


class NoFace(FacegenError):
    """No face was found in an image; the message names the image."""


def _check_image(image: np.ndarray, name: str) -> np.ndarray:
    """`image` as a contiguous HWC uint8 RGB array, or a BadParameter naming it."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise BadParameter("image", f"image {name}: expected HWC uint8 RGB, got {image.dtype} of shape "
                                    f"{tuple(image.shape)}")
    return np.ascontiguousarray(image)


def enlarged(rgb: np.ndarray) -> tuple[np.ndarray, int]:
    """`rgb` enlarged (bicubic) by the whole factor that brings its shorter side to at least MIN_SIDE, and the
    factor (1: left as it is), so points found in the copy map back exactly."""
    factor = math.ceil(MIN_SIDE / min(rgb.shape[:2]))
    if factor <= 1:
        return rgb, 1
    return cv2.resize(rgb, None, fx=factor, fy=factor, interpolation=cv2.INTER_CUBIC), factor


def face_box(rgb: np.ndarray, name: str = "image") -> tuple[int, int, int, int]:
    """The box (left, top, right, bottom) of the largest face in `rgb`, or of an aligned crop's face."""
    faces = pick_faces(detect_faces(rgb, "dlib"), max_faces=1)
    if faces:
        return faces[0].box
    h, w = rgb.shape[:2]
    if h == w:
        box = tuple(int(round(f * w)) for f in ALIGNED_BOX)
        if plausible_face(rgb, box):
            return box
    raise NoFace(f"{name}: no face found")


class IdentityModel:
    """dlib's 5-point landmark model and face recognition ResNet, loaded once on first use.

    One lock guards loading and each computation, so threads (the studio's) may share one model."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._models = None

    def _loaded(self):
        if self._models is None:
            import dlib

            self._models = (dlib.shape_predictor(model_file(PREDICTORS[5])),
                            dlib.face_recognition_model_v1(model_file(RECOGNITION_MODEL)))
        return self._models

    def _landmarks(self, image: np.ndarray, name: str):
        """The image as dlib reads it (upscaled when small) and its face's 5 landmarks."""
        import dlib

        rgb, _ = enlarged(_check_image(image, name))
        left, top, right, bottom = face_box(rgb, name)
        predictor, _ = self._loaded()
        return rgb, predictor(rgb, dlib.rectangle(left, top, right - 1, bottom - 1))

    def descriptor(self, image: np.ndarray, name: str = "image") -> np.ndarray:
        """The 128-d face descriptor (float32) of the largest face in an HWC uint8 RGB image.

        `name` is how a NoFace error names the image."""
        return self.descriptors([image], [name])[0]

    def descriptors(self, images: Sequence[np.ndarray], names: Sequence[str] | None = None) -> np.ndarray:
        """Descriptors [N, 128] of several images, the network run on them as one batch."""
        import dlib

        names = list(names) if names is not None else [f"image {i}" for i in range(len(images))]
        if len(names) != len(images):
            raise BadParameter("names", f"names: {len(names)} for {len(images)} images")
        if not images:
            return np.zeros((0, 128), np.float32)
        with self._lock:
            found = [self._landmarks(image, name) for image, name in zip(images, names)]
            _, recognition = self._loaded()
            vectors = recognition.compute_face_descriptor([rgb for rgb, _ in found],
                                                          [dlib.full_object_detections([s]) for _, s in found])
        return np.array([list(v[0]) for v in vectors], dtype=np.float32)

    def distance(self, a: np.ndarray, b: np.ndarray) -> float:
        """Euclidean distance between the faces of two images (under SAME_PERSON_THRESHOLD: the same person)."""
        da, db = self.descriptors([a, b], ["first image", "second image"])
        return float(np.linalg.norm(da - db))


_SHARED = IdentityModel()


def shared_model() -> IdentityModel:
    """The one IdentityModel of this process (its models loaded on first use)."""
    return _SHARED


def identity_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Identity distance between the faces of two HWC uint8 RGB images (see IdentityModel.distance)."""
    return _SHARED.distance(a, b)


def identity_distance_or_none(a: np.ndarray, b: np.ndarray) -> float | None:
    """identity_distance, or None where either image shows no face dlib finds."""
    try:
        return _SHARED.distance(a, b)
    except NoFace:
        return None


def photo_distance(a: str | Path, b: str | Path) -> float:
    """Identity distance between the faces in two photo files; errors name the file, and a face that is not a
    human's (an animal's) is refused."""
    photos = [load_photo(a), load_photo(b)]
    for rgb, name in zip(photos, (a, b)):
        check_photo_human(rgb, str(name))
    da, db = _SHARED.descriptors(photos, [str(a), str(b)])
    return float(np.linalg.norm(da - db))
