"""Per-track sequence inference: one encoder pass per new face crop, recurrent state carried
per track (or a sliding window for bidirectional models), smoothed so labels do not flicker.

All tracks of a frame go through the model in one batched call where the backend allows
it (ONNX Runtime); batch-1 backends (TFLite) loop inside. State is freed when a track expires.
The recurrent state restarts every `horizon` frames (default: the clip length the model was
trained on): a GRU trained on T-frame clips has never seen its state after 10,000 frames,
and a model trained on single frames (T = 1) is then exactly per-frame + smoothing.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np

from .model import DeployedModel


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@dataclass
class Smoother:
    """EMA of probabilities plus hysteresis: a new label must lead for `hold` frames in a row,
    by `margin` over the current one, before it is reported."""
    alpha: float = 0.4
    hold: int = 3
    margin: float = 0.05
    probs: np.ndarray | None = None
    label: int | None = None
    candidate: int | None = None
    streak: int = 0

    def update(self, p: np.ndarray) -> int:
        self.probs = p if self.probs is None else self.alpha * p + (1 - self.alpha) * self.probs
        top = int(self.probs.argmax())
        if self.label is None:
            self.label = top
        elif top != self.label and self.probs[top] >= self.probs[self.label] + self.margin:
            self.streak = self.streak + 1 if top == self.candidate else 1
            self.candidate = top
            if self.streak >= self.hold:
                self.label, self.streak, self.candidate = top, 0, None
        else:
            self.streak, self.candidate = 0, None
        return self.label


@dataclass
class TrackState:
    state: list[np.ndarray] | None
    window: deque
    smoother: Smoother
    frames: int = 0


@dataclass
class SequenceInference:
    model: DeployedModel
    smoothing: dict = field(default_factory=dict)
    horizon: int | None = None         # restart the recurrent state after this many frames
    tracks: dict[int, TrackState] = field(default_factory=dict)

    @property
    def streaming(self) -> bool:
        return self.model.stream is not None

    def _track(self, tid: int) -> TrackState:
        if tid not in self.tracks:
            self.tracks[tid] = TrackState(self.model.init_state(1) if self.streaming else None,
                                          deque(maxlen=self.model.meta.clip_length), Smoother(**self.smoothing))
        return self.tracks[tid]

    def step(self, crops: dict[int, np.ndarray]) -> dict[int, tuple[int, np.ndarray, np.ndarray]]:
        """{track id: crop (1, S, S)} -> {track id: (smoothed label index, smoothed probs, raw probs)}."""
        if not crops:
            return {}
        ids = list(crops)
        states = [self._track(t) for t in ids]
        if self.streaming:
            horizon = self.horizon or self.model.meta.clip_length
            for s in states:
                if s.frames and s.frames % horizon == 0:
                    s.state = self.model.init_state(1)
            frames = np.stack([crops[t] for t in ids])
            state = [np.concatenate([s.state[k] for s in states]) for k in range(len(states[0].state))]
            logits, new = self.model.step(frames, state)
            for i, s in enumerate(states):
                s.state = [x[i:i + 1] for x in new]
        else:
            for t, s in zip(ids, states):
                s.window.append(crops[t])
            t_len = self.model.meta.clip_length
            clips = np.stack([np.stack([*[s.window[0]] * (t_len - len(s.window)), *s.window]) for s in states])
            logits = self.model.logits(clips)
        probs = softmax(logits)
        out = {}
        for i, (t, s) in enumerate(zip(ids, states)):
            s.frames += 1
            label = s.smoother.update(probs[i])
            out[t] = (label, s.smoother.probs, probs[i])
        return out

    def forget(self, ids: list[int]) -> None:
        for t in ids:
            self.tracks.pop(t, None)
