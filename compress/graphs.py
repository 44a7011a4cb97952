"""The two exportable graphs of a clip model, with positional I/O every backend shares.

window: clips (B, T, 1, S, S) -> logits.
stream: frame (B, 1, S, S), *state -> logits, *new state; one encoder pass per frame.

Recurrent state lives as (layers, B, H) inside PyTorch; exported graphs take every state
tensor batch-first so that a backend can batch tracks, or loop over batch-1 rows, the same
way for every input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError


def _batch_axis(name: str) -> int:
    """nn.GRU / nn.LSTM states (h*, c*) carry the batch on axis 1; everything else on axis 0."""
    return 1 if name[:1] in ("h", "c") and name[1:].isdigit() else 0


@dataclass
class StateSpec:
    names: list[str]
    shapes: list[list[int]]            # without the batch axis, batch-first layout
    fills: list[float]

    def to_metadata(self) -> list[dict]:
        return [{"name": n, "shape": s, "fill": f} for n, s, f in zip(self.names, self.shapes, self.fills)]

    def zeros(self, batch: int) -> list[torch.Tensor]:
        return [torch.full((batch, *s), f) for s, f in zip(self.shapes, self.fills)]


def state_spec(model: nn.Module, size: int) -> StateSpec:
    if not getattr(model, "streaming", False):
        raise EdgeferError(None, "a bidirectional model has no streaming graph", "export the windowed graph only")
    init = model.init_state(1, (1, size, size))
    names = sorted(init)
    shapes, fills = [], []
    for n in names:
        t = init[n].movedim(_batch_axis(n), 0)[0]
        if not torch.all(t == t.flatten()[0]):
            raise EdgeferError(None, f"initial state '{n}' is not a constant", "give the model a constant init_state")
        shapes.append(list(t.shape))
        fills.append(float(t.flatten()[0]))
    return StateSpec(names, shapes, fills)


class WindowGraph(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        return self.model(clips)


class StreamGraph(nn.Module):
    def __init__(self, model: nn.Module, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, frame: torch.Tensor, *state: torch.Tensor):
        inner = {n: s.movedim(0, _batch_axis(n)) for n, s in zip(self.names, state)}
        logits, new = self.model.step(frame, inner)
        return (logits, *(new[n].movedim(_batch_axis(n), 0) for n in self.names))
