"""The daemon's settings: one typed schema for the TOML file and the command-line flags.

Each field of `RunConfig` carries its help, allowed values and range; `edgefer run`'s flags
are generated from it and every value, from the file or the command line, goes through
`check`. A wrong key, type or range is one line naming the key, the value and what is
allowed, at start, instead of a daemon that hangs on `fps = "fast"` or loops on
`loop = "false"`. A small table rather than pydantic: it installs on a Pi with nothing to
compile and keeps the device install light.
"""
from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

try:
    import tomllib                     # Python 3.11+
except ModuleNotFoundError:            # JetPack 6 ships Python 3.10
    import tomli as tomllib

from .errors import EdgeferError


def setting(default: Any, help: str, *, choices: tuple | Callable[[], tuple] | None = None, low: float | None = None,
            high: float | None = None, open_low: bool = False, flag: str | None = None, argument: bool = False) -> Any:
    """A field with its rule: `choices` (or a function giving them, for a registry imported only
    when a value is checked; `argument`: NAME:ARG values, NAME checked), or a range [low, high]
    (`open_low`: low itself excluded)."""
    meta = {"help": help, "choices": choices, "low": low, "high": high, "open_low": open_low, "flag": flag,
            "argument": argument}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class RunConfig:
    source: str = setting("demo", "demo | webcam:0 | csi:0 | picamera2:0 | video:PATH | rtsp://... | folder:DIR | PATH")
    model: str = setting("default", "default (the shipped int8 model) or an .onnx / .tflite / .engine artifact")
    tensorrt: str | None = setting(None, "on a Jetson: build (first start only, cached in $CACHE_DIRECTORY or beside "
                                         "the model) and run a TensorRT engine of this precision from the ONNX model",
                                   choices=("fp16", "int8"))
    detector: str = setting("auto", "face detector: auto (chosen by measurement), a row of `edgefer bench "
                                    "--detectors`, or NAME:WEIGHTS.tflite", choices=lambda: detector_names(),
                            argument=True)
    detect_threshold: float = setting(0.5, "detector score threshold", low=0.0, high=1.0, open_low=True)
    sink: list[str] = setting(["jsonl"], "jsonl (stdout), jsonl:FILE, mqtt:mqtt://host[:port]/topic[?qos=1&buffer=1000]; "
                                         "repeat for several")
    http: bool = setting(False, "serve /healthz, /metrics, /events and a live page")
    http_host: str = setting("127.0.0.1", "address to bind (others than loopback need http_token)")
    http_port: int = setting(8080, "port (0 picks a free one)", low=0, high=65535)
    http_token: str | None = setting(None, "bearer token every HTTP request must carry")
    http_max_connections: int = setting(16, "HTTP connections served at once; more are refused with 503",
                                        low=1, high=1024)
    http_max_streams: int = setting(4, "live event streams (/events) at once; each costs the inference loop a little",
                                    low=0, high=256)
    http_timeout: float = setting(10.0, "seconds an HTTP connection may sit idle (or a client stall a write)",
                                  low=0.0, high=3600.0, open_low=True)
    no_face_warning: float = setting(300.0, "log a warning when a live source has shown no face for this many seconds "
                                            "(the detector may not see faces this far away)", low=0.0, open_low=True)
    max_faces: int = setting(4, "faces tracked at once", low=1, high=64)
    fps: float | None = setting(None, "target capture rate (absent: as fast as the source delivers)",
                                low=0.0, high=1000.0, open_low=True)
    loop: bool = setting(False, "restart video files and folders at their end")
    threads: int = setting(2, "inference threads", low=1, high=256)
    max_frames: int | None = setting(None, "stop after this many processed frames", low=1)
    give_up: float | None = setting(None, "seconds a lost source is retried before the daemon exits with code 3 "
                                          "(absent: never for cameras and streams, at once for files; inf: never)",
                                    low=0.0)
    margin: float | None = setting(None, "override the model's crop margin (fraction of the box per side)",
                                   low=0.0, high=1.0)
    align: bool | None = setting(None, "override the model's eye alignment of crops")
    smoothing_alpha: float = setting(0.4, "weight of the newest frame in the per-face smoothing",
                                     low=0.0, high=1.0, open_low=True)
    smoothing_hold: int = setting(3, "frames a new label must lead before the face's label switches", low=0, high=1000)
    horizon: int | None = setting(None, "restart recurrent state every N frames (absent: the model's clip length)",
                                  low=1, high=100000)


def detector_names() -> tuple[str, ...]:
    from .detect import DETECTORS           # cv2 and the registry: only when a detector value is checked
    return ("auto", *DETECTORS)


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
TYPES = typing.get_type_hints(RunConfig)


def _parts(name: str) -> tuple[type, bool]:
    """A field's base type and whether it may be absent (None)."""
    hint = TYPES[name]
    args = typing.get_args(hint)
    if type(None) in args:
        return next(a for a in args if a is not type(None)), True
    return hint, False


def allowed(name: str) -> str:
    """What the field accepts, in words, for the error line and --help."""
    base, optional = _parts(name)
    m = FIELDS[name].metadata
    if m["choices"]:
        choices = m["choices"]() if callable(m["choices"]) else m["choices"]
        what = "one of " + ", ".join(choices) + (" (optionally NAME:ARG)" if m["argument"] else "")
    elif base is bool:
        what = "true or false"
    elif typing.get_origin(base) is list:
        what = "a list of strings"
    elif base in (int, float):
        noun = "an integer" if base is int else "a number"
        lo = "" if m["low"] is None else (f"> {m['low']:g}" if m["open_low"] else f">= {m['low']:g}")
        hi = "" if m["high"] is None else f"<= {m['high']:g}"
        what = " ".join([noun] + [" and ".join(b for b in (lo, hi) if b)]).strip()
    else:
        what = "a string"
    return what + (", or absent" if optional else "")


def check(name: str, value: Any, where: str | Path | None = None) -> Any:
    """-> the value in its field's type, or EdgeferError naming the key, the value and what is allowed."""
    if name not in FIELDS:
        raise EdgeferError(where, f"unknown setting {name!r}", f"use one of {', '.join(FIELDS)}")
    base, optional = _parts(name)
    m = FIELDS[name].metadata

    def bad() -> EdgeferError:
        return EdgeferError(where, f"{name} = {value!r} is not allowed", f"{name} must be {allowed(name)}")

    if value is None:
        if optional:
            return None
        raise bad()
    if typing.get_origin(base) is list:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not all(isinstance(v, str) for v in items):
            raise bad()
        return list(items)
    if base is bool:
        if not isinstance(value, bool):
            raise bad()
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad()
    elif base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            raise bad()
        value = float(value)
    elif not isinstance(value, str):
        raise bad()
    if m["choices"]:
        choices = m["choices"]() if callable(m["choices"]) else m["choices"]
        if (value.partition(":")[0] if m["argument"] else value) not in choices:
            raise bad()
    if m["low"] is not None and (value < m["low"] or (m["open_low"] and value == m["low"])):
        raise bad()
    if m["high"] is not None and value > m["high"]:
        raise bad()
    return value


def from_text(name: str, text: str) -> Any:
    """A command-line string -> the field's value (the same rules as the file's)."""
    base, optional = _parts(name)
    if optional and text.lower() in ("none", ""):
        return check(name, None)
    value: Any = text
    try:
        if base is int:
            value = int(text)
        elif base is float:
            value = float(text)
    except ValueError:
        pass                           # stays a string: check() names it
    return check(name, value)


def load_file(path: str | Path) -> dict[str, Any]:
    """A TOML file (its [edgefer] table, or top level) -> checked values. Keys may use - or _."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as exc:
        raise EdgeferError(path, f"cannot read config ({exc.strerror})", "pass an existing TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise EdgeferError(path, f"invalid TOML ({exc})", "fix the line named") from None
    table = data.get("edgefer", data)
    if not isinstance(table, dict):
        raise EdgeferError(path, "[edgefer] is not a table", "write the settings under an [edgefer] header")
    return {k.replace("-", "_"): check(k.replace("-", "_"), v, path) for k, v in table.items()}


def resolve(file: str | Path | None = None, overrides: dict[str, Any] | None = None) -> RunConfig:
    """Defaults, then the file, then explicit values (the command line): each value checked."""
    values = load_file(file) if file else {}
    for key, value in (overrides or {}).items():
        values[key] = check(key, value, "command line")
    return RunConfig(**values)
