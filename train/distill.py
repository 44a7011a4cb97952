"""Distillation from an ensemble of checkpoints (Hinton et al.'s soft targets).

The targets are the teachers' averaged tempered softmax on the *same* augmented batch the
student sees, each teacher normalising it as it was trained; the loss is the KL divergence
at temperature T, scaled by T^2 so its gradients match the label term's.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from edgefer.runtime.errors import EdgeferError

from . import checkpoint

Teacher = tuple[nn.Module, float, float]      # frozen model, the mean and std it was trained with


def load_teachers(paths: list[Path], labels: list[str], size: int, device: torch.device) -> list[Teacher]:
    """Frozen teacher models (checkpoints or `default`) with the normalisation each was trained with."""
    from .default_model import resolve
    out = []
    for path in paths:
        net, meta = checkpoint.load(resolve(str(path)))
        if meta.labels != labels or meta.input_size != size:
            raise EdgeferError(path, "teacher's labels or input size differ from the training data's",
                               "distil from checkpoints of this dataset")
        net = net.to(device).eval().requires_grad_(False)
        if device.type == "cuda":
            net = net.to(memory_format=torch.channels_last)
        out.append((net, meta.mean, meta.std))
    return out


@torch.no_grad()
def soft_targets(teachers: list[Teacher], raw: torch.Tensor, temperature: float) -> torch.Tensor:
    """Mean tempered softmax of the teachers on the student's augmented clips (B, T, 1, S, S),
    pixels in [0, 1], each teacher normalising them as it was trained."""
    probs = [(net((raw - m) / s).float() / temperature).softmax(1) for net, m, s in teachers]
    return torch.stack(probs).mean(0)


def distillation(logits: torch.Tensor, targets: torch.Tensor, temperature: float) -> torch.Tensor:
    """KL(targets || student) at temperature T, scaled by T^2 so its gradients match the label term's."""
    return F.kl_div((logits / temperature).log_softmax(1), targets, reduction="batchmean") * temperature ** 2
