"""Capture sources, one row each: a spec string -> an opener that returns a frame reader.

A reader is a callable returning a BGR uint8 frame, None at the end of a finite source,
or raising SourceLost when a live device or stream drops, or a file changes under it (the
capture thread reconnects or gives up). Its `close()` releases the device: a Pi camera or a
V4L2 node left open cannot be opened again, so the capture layer closes a reader before it
opens the next one. Device libraries (picamera2, GStreamer in OpenCV) are imported only
when their row is used.
"""
from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from .errors import EdgeferError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
OPEN_TIMEOUT_S = 10.0                  # network streams: bound on opening and on each read (FFmpeg's own)
log = logging.getLogger("edgefer")


class SourceLost(Exception):
    """A live source stopped delivering frames; reconnecting may help."""


@dataclass
class Reader:
    """One opened source: call it for the next frame; `close()` releases the device (idempotent).
    `shortfall` is set by readers that know how many frames a file declared and saw fewer."""
    read: Callable[[], "np.ndarray | None"]
    release: Callable[[], None] = field(default=lambda: None)
    shortfall: int = 0
    _closed: bool = False

    def __call__(self) -> "np.ndarray | None":
        return self.read()

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.release()
            except Exception as exc:   # a device that is already gone: nothing left to release
                log.debug("releasing source: %s", exc)


@dataclass(frozen=True)
class SourceKind:
    name: str
    live: bool                         # live sources reconnect; files end (or loop)
    open: Callable[[str], Reader]
    help: str


def _capture_reader(cap: "cv2.VideoCapture", what: str, live: bool) -> Reader:
    if not cap.isOpened():
        cap.release()
        if live:
            raise SourceLost(f"cannot open {what}")
        raise EdgeferError(what, "cannot be opened as a video", "check the path, or that OpenCV can decode it")

    def read():
        ok, frame = cap.read()
        if not ok:
            if live:
                raise SourceLost(f"{what} stopped delivering frames")
            return None
        return frame
    return Reader(read, cap.release)


def _file_identity(path: str) -> tuple[int, int, int]:
    st = os.stat(path)
    return st.st_ino, st.st_size, st.st_mtime_ns


def open_video_file(spec: str) -> Reader:
    """A video file, read to its end. Its end is checked: a file deleted, truncated or replaced
    while it was read is a lost source (the daemon exits non-zero), not a normal end; frames the
    container declared but that did not decode (a truncated download) are counted as corrupt."""
    if not Path(spec).is_file():
        raise EdgeferError(spec, "video file does not exist", "pass an existing file, an rtsp:// URL or --source demo")
    before = _file_identity(spec)
    cap = cv2.VideoCapture(spec)
    declared = max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))   # 0 when the container does not say
    reader = _capture_reader(cap, spec, live=False)
    cap_read, state = reader.read, {"n": 0}

    def read():
        frame = cap_read()
        if frame is not None:
            state["n"] += 1
            return frame
        try:
            now = _file_identity(spec)
        except FileNotFoundError:
            raise SourceLost(f"video file {spec} was deleted while it was read") from None
        if now != before:
            raise SourceLost(f"video file {spec} changed while it was read ({before[1]} -> {now[1]} bytes)")
        if declared and state["n"] < declared:
            reader.shortfall = declared - state["n"]
            log.warning("%s ended at frame %d of %d declared (truncated or damaged file); %d counted corrupt",
                        spec, state["n"], declared, reader.shortfall)
        return None
    reader.read = read
    return reader


def open_stream(spec: str, timeout_s: float = OPEN_TIMEOUT_S) -> Reader:
    """RTSP / HTTP through FFmpeg, with its open and read timeouts bounded: a camera that
    accepts the connection and then says nothing is a lost source after `timeout_s`, not a
    thread stuck for FFmpeg's default 30 s (which outlasts systemd's stop timeout)."""
    ms = int(timeout_s * 1000)
    cap = cv2.VideoCapture(spec, cv2.CAP_FFMPEG, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms])
    return _capture_reader(cap, spec, live=True)


def open_video(spec: str) -> Reader:
    return open_stream(spec) if "://" in spec else open_video_file(spec)


def open_webcam(spec: str) -> Reader:
    index = int(spec) if spec.isdigit() else spec            # 0 or /dev/video0
    cap = cv2.VideoCapture(index, cv2.CAP_V4L2) if hasattr(cv2, "CAP_V4L2") else cv2.VideoCapture(index)
    return _capture_reader(cap, f"webcam {spec}", live=True)


def csi_pipeline(sensor: int = 0, width: int = 1280, height: int = 720, fps: int = 30) -> str:
    """Jetson CSI camera through NVIDIA's Argus GStreamer element, converted to BGR for OpenCV."""
    return (f"nvarguscamerasrc sensor-id={sensor} ! video/x-raw(memory:NVMM),width={width},height={height},"
            f"framerate={fps}/1 ! nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true max-buffers=1")


def open_csi(spec: str) -> Reader:
    pipeline = spec if "!" in spec else csi_pipeline(int(spec or 0))
    return _capture_reader(cv2.VideoCapture(pipeline, cv2.CAP_GSTREAMER), "Jetson CSI camera (GStreamer)", live=True)


def open_picamera2(spec: str) -> Reader:
    try:
        from picamera2 import Picamera2
    except ImportError:
        raise EdgeferError(None, "picamera2 is not installed (it needs Raspberry Pi OS's libcamera)",
                           "sudo apt install python3-picamera2, and create the venv with --system-site-packages") from None
    try:
        cam = Picamera2(int(spec) if spec.isdigit() else 0)
    except (IndexError, RuntimeError) as exc:  # no such camera, or held by another process
        raise SourceLost(f"Pi camera {spec or 0}: {exc}") from None
    try:
        cam.configure(cam.create_video_configuration(main={"size": (640, 480), "format": "RGB888"}))
        cam.start()
    except Exception as exc:
        cam.close()                            # a half-opened camera would block the next open
        raise SourceLost(f"Pi camera {spec or 0}: {exc}") from None

    def read():
        try:
            return cam.capture_array()        # RGB888 in picamera2 is BGR byte order, as OpenCV expects
        except Exception as exc:               # libcamera raises RuntimeError and others when the camera drops
            raise SourceLost(f"Pi camera: {exc}") from None

    def release():
        try:
            cam.stop()
        finally:
            cam.close()                        # frees the libcamera device for the next open
    return Reader(read, release)


def open_folder(spec: str) -> Reader:
    files = sorted(p for p in Path(spec).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES) if Path(spec).is_dir() else []
    if not files:
        raise EdgeferError(spec, "is not a folder of images", f"pass a folder with {sorted(IMAGE_SUFFIXES)} files")
    it = iter(files)

    def read():
        path = next(it, None)
        if path is None:
            return None
        frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
        return frame if frame is not None else np.zeros((0, 0, 3), np.uint8)   # unreadable: counted as corrupt
    return Reader(read)


DEMO_PHOTO = Path(__file__).resolve().parent / "demo" / "astronaut.jpg"   # public domain (NASA): demo/NOTICE.md


def demo_image() -> np.ndarray:
    """The astronaut photo (public domain, NASA; scikit-image's `astronaut`, 512x512) shipped
    in this package as a JPEG, as BGR."""
    img = cv2.imdecode(np.fromfile(DEMO_PHOTO, np.uint8), cv2.IMREAD_COLOR) if DEMO_PHOTO.is_file() else None
    if img is None:
        raise EdgeferError(DEMO_PHOTO, "the demo photo is missing or unreadable", "reinstall edgefer")
    return img


def open_demo(spec: str, size: tuple[int, int] = (640, 480)) -> Reader:
    """A slow pan and zoom over a face photo: moving, real-looking input with no camera."""
    img = demo_image()
    h, w = img.shape[:2]
    state = {"t": 0}

    def read():
        t = state["t"]
        state["t"] += 1
        zoom = 1.0 + 0.25 * math.sin(t / 40)
        dx, dy = 30 * math.sin(t / 25), 20 * math.cos(t / 31)
        m = cv2.getRotationMatrix2D((w / 2, h / 2), 3 * math.sin(t / 50), zoom)
        m[:, 2] += (dx + (size[0] - w) / 2, dy + (size[1] - h) / 2)
        return cv2.warpAffine(img, m, size, borderMode=cv2.BORDER_REFLECT)
    return Reader(read)


SOURCES = {s.name: s for s in [
    SourceKind("demo", False, open_demo, "panning/zooming face photo shipped with edgefer (no camera needed)"),
    SourceKind("video", False, open_video, "a video file (mp4, avi, gif, ...) : video:PATH or just PATH"),
    SourceKind("rtsp", True, open_stream, "an RTSP / HTTP stream: rtsp://host/path"),
    SourceKind("webcam", True, open_webcam, "V4L2 / USB webcam: webcam:0 or webcam:/dev/video0"),
    SourceKind("csi", True, open_csi, "Jetson CSI camera via nvarguscamerasrc: csi:0, or csi:<GStreamer pipeline>"),
    SourceKind("picamera2", True, open_picamera2, "Raspberry Pi camera via picamera2: picamera2:0"),
    SourceKind("folder", False, open_folder, "a folder of images, in name order: folder:DIR"),
]}


def parse(spec: str) -> tuple[SourceKind, str]:
    """'demo' | 'KIND:ARG' | an rtsp/http URL | a path (video file or image folder)."""
    if "://" in spec:
        return SOURCES["rtsp"], spec
    kind, sep, arg = spec.partition(":")
    if sep and kind in SOURCES:
        return SOURCES[kind], arg
    if spec in SOURCES:
        return SOURCES[spec], ""
    if Path(spec).is_dir():
        return SOURCES["folder"], spec
    if Path(spec).exists():
        return SOURCES["video"], spec
    raise EdgeferError(spec, "is not a source edgefer knows", f"use one of {sorted(SOURCES)} (e.g. demo, webcam:0, "
                       "video:clip.mp4, rtsp://..., folder:DIR)")
