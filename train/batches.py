"""Training batches: augmented, balanced, clipped and normalised, from decoded pixels.

Still images become clips of T jittered views; items of a real sequence (CK+) become the
T frames ending at that item, augmented with one draw for the whole clip so a clip stays
a plausible video.
"""
from __future__ import annotations

from collections import defaultdict
from typing import Iterable, Sequence

import numpy as np
import torch

from edgefer.runtime.preprocess import normalize

from .augment import frame_jitter, paper_augment
from .clips import pad_or_trim
from .datasets import Item


class ClipSampler:
    """`items`: the dataset's items (their `sequence` and `frame` make real clips), or None
    where the pixels come without them (a pack): every item is then a still image."""

    def __init__(self, items: Sequence[Item] | None, pixels: np.ndarray, mean: float, std: float, clip_length: int,
                 augment: bool, seed: int):
        self.pixels, self.mean, self.std, self.t = pixels, mean, std, clip_length
        size = pixels.shape[-1]
        self.augment = paper_augment(size, seed) if augment else None
        self.jitter = frame_jitter(seed + 1)
        self.history: dict[int, list[int]] = {}
        if clip_length > 1 and items and any(it.sequence for it in items):
            members: dict[str, list[int]] = defaultdict(list)
            for i, it in enumerate(items):
                if it.sequence:
                    members[it.sequence].append(i)
            for seq in members.values():
                seq.sort(key=lambda i: items[i].frame or 0)
                for pos, i in enumerate(seq):
                    self.history[i] = pad_or_trim(seq[:pos + 1], clip_length)

    def reseed(self, seed: int) -> None:
        """Restart the augmentation streams (each epoch of each rank draws its own: distributed.py)."""
        if self.augment is not None:
            self.augment.set_random_seed(seed)
        self.jitter.set_random_seed(seed + 1)

    def _clip(self, i: int) -> np.ndarray:
        if i in self.history:                       # a real sequence: T frames up to this one
            frames = self.pixels[self.history[i]]
            return self.augment(images=frames)["images"] if self.augment else frames
        img = self.augment(image=self.pixels[i])["image"] if self.augment else self.pixels[i]
        if self.t == 1:
            return img[None]
        return np.stack([img] + [self.jitter(image=img)["image"] for _ in range(self.t - 1)])

    def clips(self, indices: np.ndarray) -> np.ndarray:
        """(B, T, S, S) uint8 clips of these items, augmented as configured."""
        return np.stack([self._clip(int(i)) for i in indices])

    def batch(self, indices: np.ndarray) -> torch.Tensor:
        """Normalised clips (B, T, 1, S, S), the model's input."""
        return torch.from_numpy(normalize(self.clips(indices), self.mean, self.std)[:, :, None])


def eval_batches(pixels: np.ndarray, indices: np.ndarray, mean: float, std: float, batch_size: int):
    """Un-augmented single-frame clips (B, 1, 1, S, S), exactly what the device's preprocessing gives."""
    for start in range(0, len(indices), batch_size):
        yield torch.from_numpy(normalize(pixels[indices[start:start + batch_size]], mean, std)[:, None, None])


@torch.no_grad()
def infer(model: torch.nn.Module, batches: Iterable[torch.Tensor], device: torch.device) -> np.ndarray:
    """Logits of every batch, in order: the one inference loop of evaluation, validation and CV scoring."""
    model.eval()
    out = [model(x.to(device)).float().cpu().numpy() for x in batches]
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)
