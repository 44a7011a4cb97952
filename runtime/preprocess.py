"""Frame + face box -> model input: the pixel contract, defined once for training and the device.

Training on pre-cropped faces calls `image_pixels` (the whole image is the face box); the
daemon and `edgefer evaluate --detect` call `face_pixels` with the detector's box. Both go
through the same steps, in this order, as the model's metadata (`Preprocessing`) says:
gray (cv2 BT.601 weights) -> square framing around the box (margin, vertical offset, eye
alignment) cut at the frame's own resolution -> resize with true area averaging when
shrinking and bicubic interpolation when enlarging (a face under the model's input size,
i.e. a distant one) -> optional histogram step -> normalise. A test pushes one face through both
paths and requires equal arrays, so a model never sees pixels prepared differently from
how it was trained.
"""
from __future__ import annotations

import math

import cv2
import numpy as np

from .metadata import ModelMetadata, Preprocessing


def to_gray(image: np.ndarray) -> np.ndarray:
    """uint8 grayscale from gray, BGR or BGRA input (8-bit; 16-bit images are scaled down)."""
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 1:
        return image[:, :, 0]
    code = cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(image, code)


SHRINK = cv2.INTER_AREA      # true area averaging: a large face is not aliased
ENLARGE = cv2.INTER_CUBIC    # the contract's enlarging (a face under the model's input size, i.e. a distant one).
# INTER_AREA enlarging is nearest-neighbour in OpenCV (blocky); on FER2013 PublicTest faces shrunk to 24 px and
# brought back, the shipped model scores 54.4% (AREA), 59.5% (LINEAR), 63.4% (CUBIC); docs/results.md,
# "Faces at a distance: small crops".


def resize_square(gray: np.ndarray, size: int, enlarge: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resize to size x size: SHRINK (area averaging) when shrinking, `enlarge` when enlarging.

    The default `enlarge` is a plain bilinear resize (what bench peers' own code does); the pixel
    contract (`face_pixels`) passes ENLARGE."""
    if gray.shape[0] == size and gray.shape[1] == size:
        return gray
    interp = SHRINK if gray.shape[0] > size else enlarge
    return cv2.resize(gray, (size, size), interpolation=interp)


def square_box(box: np.ndarray, margin: float, offset_y: float = 0.0) -> tuple[float, float, float]:
    """-> centre x, centre y, side of the square around the box, grown by `margin` per side and
    moved down by `offset_y` box sides."""
    x0, y0, x1, y1 = (float(v) for v in box)
    base = max(x1 - x0, y1 - y0)
    return (x0 + x1) / 2, (y0 + y1) / 2 + offset_y * base, base * (1 + 2 * margin)


def eye_angle(keypoints: np.ndarray | None) -> float:
    """Degrees to rotate so the eyes are level (BlazeFace keypoints: right eye, left eye first)."""
    if keypoints is None:
        return 0.0
    (rx, ry), (lx, ly) = keypoints[0], keypoints[1]
    return math.degrees(math.atan2(ly - ry, lx - rx))


def histogram(gray: np.ndarray, kind: str) -> np.ndarray:
    if kind == "equalize":
        return cv2.equalizeHist(gray)
    if kind == "clahe":
        return cv2.createCLAHE(clipLimit=2.0, tileGridSize=(4, 4)).apply(gray)
    return gray


def face_pixels(frame: np.ndarray, box: np.ndarray, size: int, pre: Preprocessing,
                keypoints: np.ndarray | None = None) -> np.ndarray:
    """A face in a frame -> uint8 (size, size) as the model was trained on.

    The square is cut at the frame's resolution first (a warp whose only scaling is the
    rounding of the side to whole pixels; without rotation its offset is rounded too, so the
    cut is an exact pixel copy), then shrunk with area averaging. Warping straight to 48 px
    would sample bilinearly and alias a 200-px face. A square smaller than `size` (a distant
    face) is enlarged with ENLARGE (bicubic), not blown up into blocks."""
    gray = to_gray(frame)
    cx, cy, side = square_box(box, pre.margin, pre.offset_y)
    angle = eye_angle(keypoints) if pre.align else 0.0
    n = max(1, int(round(side)))
    h, w = gray.shape
    if angle == 0.0:
        x0, y0 = int(round(cx - n / 2)), int(round(cy - n / 2))
        if x0 == 0 and y0 == 0 and n == w == h:
            patch = gray                                   # the whole (square) image is the face
        else:
            m = np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0]])
            patch = cv2.warpAffine(gray, m, (n, n), flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_REPLICATE)
    else:
        m = cv2.getRotationMatrix2D((cx, cy), angle, n / side)
        m[:, 2] += (n / 2 - cx, n / 2 - cy)
        patch = cv2.warpAffine(gray, m, (n, n), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return histogram(resize_square(patch, size, ENLARGE), pre.histogram)


def image_pixels(image: np.ndarray, size: int, pre: Preprocessing) -> np.ndarray:
    """A pre-cropped face image (the whole image is the face box, as in FER2013 / CK+48) -> uint8
    (size, size). Non-square images are centred in a square (edges replicated), never stretched."""
    h, w = image.shape[:2]
    whole = Preprocessing(margin=0.0, offset_y=0.0, align=False, gray=pre.gray, resize=pre.resize,
                          histogram=pre.histogram)
    side = max(h, w)
    box = np.array([(w - side) / 2, (h - side) / 2, (w + side) / 2, (h + side) / 2], np.float32)
    return face_pixels(image, box, size, whole)


def normalize(gray_u8: np.ndarray, mean: float, std: float) -> np.ndarray:
    """uint8 pixels (any shape) -> float32 zero-mean unit-variance values."""
    return ((gray_u8.astype(np.float32) / 255.0) - np.float32(mean)) / np.float32(std)


def prepare(image: np.ndarray, meta: ModelMetadata) -> np.ndarray:
    """One pre-cropped face image -> float32 (1, S, S) as the model's metadata prescribes."""
    return normalize(image_pixels(image, meta.input_size, meta.preprocessing), meta.mean, meta.std)[None]
