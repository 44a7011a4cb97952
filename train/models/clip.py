"""The one shape every zoo model has: per-frame encoder -> temporal module -> head.

`forward(clips)` takes (B, T, 1, H, W) for any T >= 1. Unidirectional models also stream:
`init_state(B)` then `step(frame, state)` per new frame runs the encoder once and carries
the temporal state, so a new frame costs the same whatever the window length, and after T
steps the logits equal `forward` on those T frames.
"""
from __future__ import annotations

import torch
from torch import nn

from edgefer.runtime.errors import EdgeferError

from .blocks import AdditiveAttention

State = dict[str, torch.Tensor]


class FrameMean(nn.Module):
    """Average per-frame features (or logits) over the clip: the no-recurrence baseline."""

    bidirectional = False

    def __init__(self, dim: int):
        super().__init__()
        self.out_dim = dim

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f.mean(1)

    def init_state(self, batch: int, device=None) -> State:
        return {"mean_sum": torch.zeros(batch, self.out_dim, device=device), "mean_count": torch.zeros(batch, 1, device=device)}

    def step(self, f_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        s, n = state["mean_sum"] + f_t, state["mean_count"] + 1
        return s / n, {"mean_sum": s, "mean_count": n}


class Recurrent(nn.Module):
    """Stacked LSTM / GRU / BiLSTM over time, then attention over the outputs or the last one."""

    def __init__(self, kind: str, dim: int, hidden: list[int], attention: bool):
        super().__init__()
        if kind not in ("lstm", "gru", "bilstm"):
            raise EdgeferError(None, f"unknown recurrent kind '{kind}'", "use lstm, gru or bilstm")
        self.kind, self.bidirectional = kind, kind == "bilstm"
        cls = nn.GRU if kind == "gru" else nn.LSTM
        dims = [dim] + [h * (2 if self.bidirectional else 1) for h in hidden]
        self.rnns = nn.ModuleList(cls(dims[i], h, batch_first=True, bidirectional=self.bidirectional)
                                  for i, h in enumerate(hidden))
        self.out_dim = dims[-1]
        self.attention = AdditiveAttention(self.out_dim) if attention else None

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        for rnn in self.rnns:
            f, _ = rnn(f)
        return self.attention(f) if self.attention is not None else f[:, -1]

    def init_state(self, batch: int, device=None) -> State:
        state: State = {}
        for i, rnn in enumerate(self.rnns):
            state[f"h{i}"] = torch.zeros(1, batch, rnn.hidden_size, device=device)
            if self.kind == "lstm":
                state[f"c{i}"] = torch.zeros(1, batch, rnn.hidden_size, device=device)
        if self.attention is not None:
            state.update(self.attention.init_state(batch, self.out_dim, device))
        return state

    def step(self, f_t: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        if self.bidirectional:
            raise EdgeferError(None, "a bidirectional model cannot stream frame by frame",
                               "run it on sliding windows (it needs future frames)")
        new: State = {}
        x = f_t[:, None]
        for i, rnn in enumerate(self.rnns):
            if self.kind == "lstm":
                x, (h, c) = rnn(x, (state[f"h{i}"], state[f"c{i}"]))
                new[f"h{i}"], new[f"c{i}"] = h, c
            else:
                x, h = rnn(x, state[f"h{i}"])
                new[f"h{i}"] = h
        out = x[:, 0]
        if self.attention is not None:
            out, att = self.attention.step(out, {k: state[k] for k in ("att_max", "att_sum", "att_acc")})
            new.update(att)
        return out, new


class ClipModel(nn.Module):
    """encoder(frame[, previous frame]) -> temporal -> head."""

    def __init__(self, encoder: nn.Module, temporal: nn.Module, head: nn.Module, uses_previous: bool = False):
        super().__init__()
        self.encoder, self.temporal, self.head = encoder, temporal, head
        self.uses_previous = uses_previous

    @property
    def streaming(self) -> bool:
        return not getattr(self.temporal, "bidirectional", False)

    def encode(self, frames: torch.Tensor, previous: torch.Tensor | None) -> torch.Tensor:
        return self.encoder(frames, previous) if self.uses_previous else self.encoder(frames)

    def forward(self, clips: torch.Tensor) -> torch.Tensor:
        if clips.dim() != 5:
            raise EdgeferError(None, f"expected clips (batch, T, 1, H, W), got shape {tuple(clips.shape)}")
        b, t = clips.shape[:2]
        previous = torch.cat([clips[:, :1], clips[:, :-1]], 1).flatten(0, 1) if self.uses_previous else None
        feats = self.encode(clips.flatten(0, 1), previous).view(b, t, -1)
        return self.head(self.temporal(feats))

    def init_state(self, batch: int, frame_shape: tuple[int, int, int], device=None) -> State:
        state = self.temporal.init_state(batch, device)
        if self.uses_previous:
            state["prev_frame"] = torch.zeros(batch, *frame_shape, device=device)
            state["started"] = torch.zeros(batch, 1, 1, 1, device=device)
        return state

    def step(self, frame: torch.Tensor, state: State) -> tuple[torch.Tensor, State]:
        """One new frame (B, 1, H, W) -> logits over everything seen so far, and the new state."""
        new: State = {}
        previous = None
        if self.uses_previous:
            # the first frame's "previous" is itself, as in forward()
            previous = state["started"] * state["prev_frame"] + (1 - state["started"]) * frame
            new["prev_frame"], new["started"] = frame, torch.ones_like(state["started"])
        out, temporal = self.temporal.step(self.encode(frame, previous), {k: v for k, v in state.items() if k not in new})
        new.update(temporal)
        return self.head(out), new
