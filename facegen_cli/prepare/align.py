"""Crop a face to a square training image: the FFHQ recipe, CelebA's fixed crop, a detector box, or none."""
from __future__ import annotations

import math

import cv2
import numpy as np

from facegen_cli.prepare.landmarks import FacePoints

ALIGNS = ("ffhq", "celeba", "box", "none")
SIZES = (64, 128, 256, 512, 1024)
# Resampling quality: how many times larger than the output the crop is warped before an
# area-averaging reduction (FFHQ itself warps at 4x: 4096 pixels for 1024).
QUALITY = {"fast": 1, "good": 2, "best": 4}
# CelebA's aligned images are 178x218; the classic face crop is rows 45:173, columns 25:153.
CELEBA_SIZE = (178, 218)
CELEBA_CROP = (25, 45, 153, 173)  # left, top, right, bottom


def _shrink(img: np.ndarray, quad: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Reduce the photo by an integer factor while the crop stays over twice the output size."""
    side = max(np.hypot(*(quad[3] - quad[0])), np.hypot(*(quad[1] - quad[0])))
    shrink = int(math.floor(side / size * 0.5))
    if shrink <= 1:
        return img, quad
    h, w = img.shape[:2]
    small = cv2.resize(img, (max(1, round(w / shrink)), max(1, round(h / shrink))), interpolation=cv2.INTER_AREA)
    scale = np.array([small.shape[1] / w, small.shape[0] / h])
    return small, (quad + 0.5) * scale - 0.5


def _warp(img: np.ndarray, quad: np.ndarray, size: int, quality: str, border: int) -> np.ndarray:
    """Resample the quad (top-left, bottom-left, bottom-right, top-right) of `img` to size x size."""
    big = size * QUALITY[quality]
    edge = -0.5, big - 0.5
    dst = np.float32([[edge[0], edge[0]], [edge[0], edge[1]], [edge[1], edge[0]]])
    src = np.float32([quad[0], quad[1], quad[3]])
    matrix = cv2.getAffineTransform(dst, src)
    out = cv2.warpAffine(img, matrix, (big, big), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=border)
    if big != size:
        out = cv2.resize(out, (size, size), interpolation=cv2.INTER_AREA)
    return out


def ffhq_quad(points: FacePoints) -> np.ndarray:
    """The oriented square FFHQ crops around a face, from its eye and mouth centres."""
    eye_avg = (points.eye_left + points.eye_right) / 2
    eye_to_eye = points.eye_right - points.eye_left
    eye_to_mouth = points.mouth - eye_avg
    x = eye_to_eye - np.flipud(eye_to_mouth) * [-1, 1]
    x /= np.hypot(*x)
    x *= max(np.hypot(*eye_to_eye) * 2.0, np.hypot(*eye_to_mouth) * 1.8)
    y = np.flipud(x) * [-1, 1]
    c = eye_avg + eye_to_mouth * 0.1
    return np.stack([c - x - y, c - x + y, c + x + y, c + x - y])


def _pad_reflect_blur(img: np.ndarray, quad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop to the quad plus a border; where the quad leaves the photo, mirror it and fade to a blur."""
    qsize = np.hypot(*(quad[3] - quad[0]))
    border = max(int(np.rint(qsize * 0.1)), 3)
    h, w = img.shape[:2]
    lo, hi = np.floor(quad.min(0)).astype(int), np.ceil(quad.max(0)).astype(int)
    x0, y0 = max(lo[0] - border, 0), max(lo[1] - border, 0)
    x1, y1 = min(hi[0] + border, w), min(hi[1] + border, h)
    img, quad = img[y0:y1, x0:x1], quad - [x0, y0]
    h, w = img.shape[:2]
    pad = np.array([-lo[0] + x0, -lo[1] + y0, hi[0] - x0 - w, hi[1] - y0 - h]) + border
    pad = np.maximum(pad, 0)
    if pad.max() <= border - 4:
        return img, quad
    pad = np.maximum(pad, int(np.rint(qsize * 0.3)))
    left, top, right, bottom = (int(p) for p in pad)
    work = np.pad(img.astype(np.float32), ((top, bottom), (left, right), (0, 0)), mode="reflect")
    h, w = work.shape[:2]
    ys, xs = np.ogrid[:h, :w]
    mask = np.maximum(1.0 - np.minimum(xs / left, (w - 1 - xs) / right),
                      1.0 - np.minimum(ys / top, (h - 1 - ys) / bottom)).astype(np.float32)[:, :, None]
    blur = max(qsize * 0.02, 0.5)
    work += (cv2.GaussianBlur(work, (0, 0), blur) - work) * np.clip(mask * 3.0 + 1.0, 0.0, 1.0)
    work += (np.median(work, axis=(0, 1)) - work) * np.clip(mask, 0.0, 1.0)
    return np.clip(np.rint(work), 0, 255).astype(np.uint8), quad + [left, top]


def align_ffhq(rgb: np.ndarray, points: FacePoints, size: int, quality: str = "good") -> np.ndarray:
    """FFHQ alignment: oriented quad from eyes and mouth, shrink, crop, reflect-pad with blur, warp."""
    img, quad = _shrink(rgb, ffhq_quad(points), size)
    img, quad = _pad_reflect_blur(img, quad)
    return _warp(img, quad, size, quality, cv2.BORDER_REFLECT_101)


def _rect_quad(left: float, top: float, right: float, bottom: float) -> np.ndarray:
    """An axis-aligned rectangle of pixel edges as a quad of pixel centres."""
    left, top, right, bottom = left - 0.5, top - 0.5, right - 0.5, bottom - 0.5
    return np.array([[left, top], [left, bottom], [right, bottom], [right, top]], dtype=np.float64)


def celeba_rect(width: int, height: int) -> tuple[float, float, float, float]:
    """CelebA's classic face crop scaled to a photo of this size."""
    sx, sy = width / CELEBA_SIZE[0], height / CELEBA_SIZE[1]
    left, top, right, bottom = CELEBA_CROP
    return left * sx, top * sy, right * sx, bottom * sy


def box_rect(box: tuple[int, int, int, int], margin: float) -> tuple[float, float, float, float]:
    """A square around a detector box, widened by `margin` times its side on each side."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    half = max(box[2] - box[0], box[3] - box[1]) * (0.5 + margin)
    return cx - half, cy - half, cx + half, cy + half


def centre_rect(width: int, height: int) -> tuple[float, float, float, float]:
    """The largest centred square of a photo."""
    side = min(width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return left, top, left + side, top + side


def crop(rgb: np.ndarray, rect: tuple[float, float, float, float], size: int, quality: str = "good") -> np.ndarray:
    """Resample a rectangle of the photo (mirrored where it leaves the photo) to size x size."""
    img, quad = _shrink(rgb, _rect_quad(*rect), size)
    return _warp(img, quad, size, quality, cv2.BORDER_REFLECT_101)
