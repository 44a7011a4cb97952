"""Where a `--model` comes from: a shipped name, a folder, or a file.

The shipped `default` exports live in this package (`runtime/default/`, package data), so
`--model default`, `--model default.int8.onnx` and `--model default.int8.tflite` work from any
working directory on any install. A user's own artifact is one folder (what `edgefer compress`
wrote) or one file with its companions beside it; a folder resolves to its best artifact with the
same preference as `default`: int8 TFLite, int8 ONNX, fp32 ONNX (TFLite only where ai-edge-litert
is installed; ONNX only when the caller needs ONNX, e.g. for TensorRT).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from .errors import EdgeferError

SHIPPED_DIR = Path(__file__).resolve().parent / "default"
DEPLOYABLE = (".onnx", ".tflite", ".engine")


def preference(onnx: bool = False) -> list[str]:
    """File-name endings in the order `default` and a folder are resolved."""
    ends = [".int8.onnx", ".fp32.onnx"]
    if not onnx and importlib.util.find_spec("ai_edge_litert") is not None:
        ends.insert(0, ".int8.tflite")
    return ends


def shipped_names() -> list[str]:
    """The names `--model` accepts without a path: `default` and each shipped window artifact."""
    files = sorted(p.name for p in SHIPPED_DIR.glob("*") if p.suffix in DEPLOYABLE and ".stream." not in p.name)
    return ["default", *files]


def _windows(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix in DEPLOYABLE and ".stream." not in p.name)


def best_in(folder: Path, onnx: bool = False, what: str | None = None) -> Path:
    """The artifact a folder stands for: the first ending in `preference` (one model per
    folder: two different models at that rank is ambiguous), else its only deployable file."""
    found = _windows(folder)
    for end in preference(onnx):
        hits = [p for p in found if p.name.endswith(end)]
        if len(hits) == 1:
            return hits[0]
        if hits:
            raise EdgeferError(folder, f"holds more than one model ({', '.join(p.name for p in hits)})",
                               "pass the file, or keep one model per folder")
    tflite = any(e.endswith(".tflite") for e in preference(onnx))
    usable = [p for p in found if p.suffix == ".onnx" or (not onnx and p.suffix == ".engine")
              or (tflite and p.suffix == ".tflite")]
    if len(usable) == 1:
        return usable[0]
    if usable:
        raise EdgeferError(folder, f"holds more than one model ({', '.join(p.name for p in usable)})",
                           "pass the file, or keep one model per folder")
    kinds = ", ".join("*" + e for e in preference(onnx))
    raise EdgeferError(folder, f"holds no {what or 'deployable'} model (looked for {kinds})",
                       "pass the folder `edgefer compress` wrote (its --out), or an .onnx / .tflite file")


def resolve(spec: str, onnx: bool = False) -> Path:
    """`default` | a shipped file name (`default.int8.onnx`) | a folder | a file -> the artifact path."""
    if spec == "default":
        try:
            return best_in(SHIPPED_DIR, onnx, "exported default")
        except (EdgeferError, OSError):          # no folder, or no usable export in it
            raise EdgeferError(SHIPPED_DIR, "no exported default model is shipped in this install",
                               "run `edgefer compress default --precision int8` and pass --model PATH") from None
    path = Path(spec).expanduser()
    if path.suffix == ".pt":
        raise EdgeferError(path, "is a PyTorch checkpoint; the device runs exported models",
                           f"export it: edgefer compress {path} --precision int8 --formats onnx,tflite")
    if path.is_dir():
        return best_in(path, onnx)
    if path.exists() or len(path.parts) > 1:
        return path                                   # a path: load() names what is missing
    shipped = SHIPPED_DIR / spec
    if shipped.is_file() and shipped.suffix in DEPLOYABLE and ".stream." not in shipped.name:
        return shipped
    raise EdgeferError(spec, "is neither a file, a folder, nor a shipped model name",
                       f"pass a path, or one of: {', '.join(shipped_names())}")
