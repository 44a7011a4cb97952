"""The artifact metadata: the one contract between train, compress, runtime and bench.

Every model file edgefer writes (checkpoint, ONNX, TFLite, TensorRT engine) has this record
beside it (`<file>.json`, or inside the checkpoint). Consumers read fields from here and
never guess from file names: the runtime preprocesses exactly as `input_size`, `mean`,
`std` say, and reports `labels` in this order.
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

SCHEMA_VERSION = 1


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
    def from_dict(cls, data: dict[str, Any], where: str | Path | None = None) -> "ModelMetadata":
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
        return cls(**{k: v for k, v in data.items() if k in names})


def sidecar_path(artifact: Path) -> Path:
    return artifact.with_name(artifact.name + ".json")


def write_sidecar(artifact: Path, meta: ModelMetadata) -> Path:
    path = sidecar_path(artifact)
    path.write_text(json.dumps(meta.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def read_sidecar(artifact: Path) -> ModelMetadata:
    path = sidecar_path(artifact)
    if not path.is_file():
        raise EdgeferError(artifact, f"no metadata sidecar {path.name} beside the model",
                           "export models with `edgefer compress`, which writes it")
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
