"""The artifact metadata: the one contract between train, compress, runtime and bench.

Every model file edgefer writes (checkpoint, ONNX, TFLite, TensorRT engine) has this record
beside it (`<file>.json`, or inside the checkpoint). Consumers read fields from here and
never guess from file names: the runtime frames and preprocesses each face exactly as
`preprocessing`, `input_size`, `mean` and `std` say, and reports `labels` in this order.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EdgeferError
from .labels import LABELS

SCHEMA_VERSION = 2            # 2: `preprocessing` (the pixel contract) is required in sidecars

GRAY_CONVERSIONS = ("bt601",)                       # cv2.COLOR_BGR2GRAY weights (0.299 R + 0.587 G + 0.114 B)
RESIZES = ("area",)                                 # INTER_AREA when shrinking, INTER_CUBIC when enlarging
HISTOGRAMS = ("none", "equalize", "clahe")          # applied to the framed uint8 face, before normalising


@dataclass(frozen=True)
class Preprocessing:
    """How a face is cut from a frame and turned into model pixels: the pixel contract.

    The framing is relative to the face detector's box (BlazeFace's, on the device): the crop
    is the square of side `max(box w, h) * (1 + 2 * margin)` centred on the box's centre moved
    down by `offset_y` box sides. Training on pre-cropped faces (FER2013, CK+48) uses the
    whole image as the face; the defaults are FER2013's own framing measured against
    BlazeFace's boxes (README, "Pixel contract"), so the device cuts faces the way the
    training set was cut.
    """

    margin: float = 0.10             # per side, as a fraction of the box's longer side (FER2013: measured)
    offset_y: float = -0.09          # crop centre shift, in box sides (+ = down; FER2013: measured)
    align: bool = True               # rotate the eyes level when the detector gives eye keypoints
    gray: str = "bt601"
    resize: str = "area"
    histogram: str = "none"

    def __post_init__(self) -> None:
        for name, value, allowed in (("gray", self.gray, GRAY_CONVERSIONS), ("resize", self.resize, RESIZES),
                                     ("histogram", self.histogram, HISTOGRAMS)):
            if value not in allowed:
                raise EdgeferError(None, f"metadata preprocessing.{name} '{value}' is not supported",
                                   f"use one of {list(allowed)}")
        if not -0.5 < self.margin < 2.0 or not -1.0 < self.offset_y < 1.0:
            raise EdgeferError(None, f"metadata preprocessing margin {self.margin} / offset_y {self.offset_y} out of range")

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path | None = None) -> "Preprocessing":
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise EdgeferError(where, f"model metadata lacks preprocessing.{missing[0]}"
                               + (f" (and {missing[1:]})" if missing[1:] else ""),
                               "re-export the model with this edgefer: edgefer compress CHECKPOINT.pt "
                               "(or `edgefer compress default`), which writes the full pixel contract")
        return cls(**{n: data[n] for n in names})


@dataclass
class ModelMetadata:
    """Everything a consumer needs to feed a model and read its output."""

    architecture: str                 # registry name of the model, e.g. "edge"
    labels: list[str]                 # output order of the logits
    input_size: int                   # square side, pixels, grayscale
    mean: float                       # normalisation: x = (pixel/255 - mean) / std
    std: float
    clip_length: int = 1              # frames per clip the model was trained on
    streaming: bool = False           # can run frame by frame with carried state
    precision: str = "fp32"           # fp32 | fp16 | int8
    format: str = "pytorch"           # pytorch | onnx | tflite | tensorrt
    provenance: dict[str, Any] = field(default_factory=dict)  # source hash, dataset, manifest, commit
    metrics: dict[str, Any] = field(default_factory=dict)
    # Exported graphs: "window" maps clips (B, T, 1, S, S) -> logits; "stream" maps a frame
    # (B, 1, S, S) and the state tensors listed in `state` (in input order, each with its
    # shape without the batch axis and its initial fill value) -> logits and the new state.
    graph: str = "window"
    state: list[dict[str, Any]] = field(default_factory=list)
    companions: dict[str, str] = field(default_factory=dict)  # sibling files, e.g. {"stream": "x.stream.onnx"}
    preprocessing: Preprocessing = field(default_factory=Preprocessing)   # framing, gray, resize, histogram
    schema: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        unknown = [lab for lab in self.labels if lab not in LABELS]
        if unknown:
            raise EdgeferError(None, f"metadata names unknown labels {unknown}",
                               f"use labels from {list(LABELS)}")
        if self.input_size <= 0 or self.std <= 0 or self.clip_length < 1:
            raise EdgeferError(None, "metadata has a non-positive input_size, std or clip_length")
        if self.graph not in ("window", "stream"):
            raise EdgeferError(None, f"metadata graph '{self.graph}' is neither 'window' nor 'stream'")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str | Path | None = None,
                  legacy_preprocessing: bool = False) -> "ModelMetadata":
        """`legacy_preprocessing`: a record written before the pixel contract (schema 1) gets the
        default contract (the framing of FER2013's crops, which those models were trained on)
        instead of an error. Only training-side checkpoints use it; the device requires the
        full contract."""
        names = {f.name for f in dataclasses.fields(cls)}
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
                   and f.name not in data]
        if missing:
            raise EdgeferError(where, f"model metadata lacks {missing}",
                               "re-export the model with edgefer so its metadata is complete")
        if data.get("schema", SCHEMA_VERSION) > SCHEMA_VERSION:
            raise EdgeferError(where, f"metadata schema {data['schema']} is newer than this edgefer",
                               "upgrade edgefer")
        fields = {k: v for k, v in data.items() if k in names}
        if "preprocessing" not in data and legacy_preprocessing:
            fields["preprocessing"] = Preprocessing()
        elif "preprocessing" not in data:
            raise EdgeferError(where, "model metadata lacks preprocessing (written before the pixel contract, "
                               f"schema {data.get('schema', 1)})",
                               "re-export the model with this edgefer: edgefer compress CHECKPOINT.pt "
                               "(or `edgefer compress default`), which writes the full pixel contract")
        else:
            fields["preprocessing"] = Preprocessing.from_dict(data["preprocessing"] or {}, where)
        fields["schema"] = SCHEMA_VERSION
        return cls(**fields)


def sidecar_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


def write_sidecar(artifact: Path, meta: ModelMetadata) -> Path:
    path = sidecar_path(artifact)
    path.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(artifact: Path) -> ModelMetadata:
    path = sidecar_path(artifact)
    if not path.is_file():
        raise EdgeferError(artifact, f"no metadata sidecar {path.name} beside the model (expected {path})",
                           "copy it with the model (a model is its folder), or export models with `edgefer compress`, which writes it")
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise EdgeferError(path, f"unreadable metadata ({exc})", "re-export the model") from None
    return ModelMetadata.from_dict(data, path)


def file_sha256(path: Path) -> str:
    """Content hash used for provenance: ties every artifact to the exact source file."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
