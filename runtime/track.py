"""IoU tracker: stable ids for faces across frames, so each face keeps its own sequence state.

Greedy matching by IoU (a handful of faces per frame: Hungarian buys nothing here), birth
for unmatched detections up to `max_faces`, expiry after `max_missed` frames unseen. The
caller frees per-track inference state for the ids `update` reports as expired.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .detect import Detection


@dataclass
class Track:
    id: int
    box: np.ndarray
    score: float
    keypoints: np.ndarray | None
    age: int = 0                       # frames since birth
    missed: int = 0                    # consecutive frames without a matching detection


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes (N, 4) x (M, 4), x0 y0 x1 y1."""
    x0 = np.maximum(a[:, None, 0], b[None, :, 0])
    y0 = np.maximum(a[:, None, 1], b[None, :, 1])
    x1 = np.minimum(a[:, None, 2], b[None, :, 2])
    y1 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda r: (r[:, 2] - r[:, 0]) * (r[:, 3] - r[:, 1])  # noqa: E731
    return inter / np.maximum(area(a)[:, None] + area(b)[None, :] - inter, 1e-9)


@dataclass
class Tracker:
    max_faces: int = 8
    max_missed: int = 10
    min_iou: float = 0.3
    tracks: list[Track] = field(default_factory=list)
    next_id: int = 1

    def update(self, detections: list[Detection]) -> tuple[list[Track], list[int]]:
        """-> tracks seen in this frame, ids of tracks that expired now."""
        seen: list[Track] = []
        unmatched = list(range(len(detections)))
        if self.tracks and detections:
            scores = iou(np.stack([t.box for t in self.tracks]), np.stack([d.box for d in detections]))
            while scores.size and scores.max() >= self.min_iou:
                ti, di = np.unravel_index(scores.argmax(), scores.shape)
                t, d = self.tracks[ti], detections[di]
                t.box, t.score, t.keypoints, t.missed = d.box, d.score, d.keypoints, 0
                seen.append(t)
                unmatched.remove(int(di))
                scores[ti, :], scores[:, di] = -1, -1
        for t in self.tracks:
            if all(t is not s for s in seen):
                t.missed += 1
            t.age += 1
        expired = [t.id for t in self.tracks if t.missed > self.max_missed]
        self.tracks = [t for t in self.tracks if t.missed <= self.max_missed]
        for di in sorted(unmatched, key=lambda i: -detections[i].score):
            if len(self.tracks) >= self.max_faces:
                break
            d = detections[di]
            t = Track(self.next_id, d.box, d.score, d.keypoints)
            self.next_id += 1
            self.tracks.append(t)
            seen.append(t)
        return seen, expired
