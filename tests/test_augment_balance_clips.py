"""Augmentation is seeded, balancing touches the training split only, clips have the right shape."""
from __future__ import annotations

from collections import Counter

import numpy as np

from edgefer.train import augment, balance, clips, datasets, images, normalization, splits


def _faces(n=8):
    from edgefer.train.fixtures import face
    rng = np.random.default_rng(0)
    return np.stack([face("happy", rng, identity=i) for i in range(n)])


def test_paper_augmentation_is_deterministic_under_a_seed_and_changes_images():
    x = _faces()
    a = augment.apply(augment.paper_augment(48, seed=7), x)
    b = augment.apply(augment.paper_augment(48, seed=7), x)
    c = augment.apply(augment.paper_augment(48, seed=8), x)
    assert a.shape == x.shape and a.dtype == np.uint8
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert not np.array_equal(a, x)


def test_jittered_clip_views_are_close_but_distinct():
    img = _faces(1)[0]
    clip = clips.jittered_clip(img, 6, seed=0)
    assert clip.shape == (6, 48, 48) and np.array_equal(clip[0], img)
    diffs = [np.abs(clip[k].astype(int) - img).mean() for k in range(1, 6)]
    assert all(0 < d < 40 for d in diffs)
    assert np.array_equal(clip, clips.jittered_clip(img, 6, seed=0))


def test_oversampling_and_downsampling_balance_train_indices_only(fixture_dir):
    ds = datasets.load(f"folder:{fixture_dir('folder', per_class=10)}?map=Ahegao:happy")
    images.decode(ds, 48, progress=False)
    plan = splits.plan_splits(ds)
    train = plan.indices("train")
    labels = [ds.items[i].label for i in train]
    over = balance.balance(train, labels, "oversample", seed=0)
    under = balance.balance(train, labels, "downsample", seed=0)
    held_out = set(plan.indices("val")) | set(plan.indices("test"))
    for resampled in (over, under):
        assert not set(resampled.tolist()) & held_out
        counts = Counter(ds.items[i].label for i in resampled)
        assert len(set(counts.values())) == 1
    assert len(over) == max(Counter(labels).values()) * len(set(labels))
    assert len(under) == min(Counter(labels).values()) * len(set(labels))


def test_ckplus_sequences_group_frames_in_order(fixture_dir):
    ds = datasets.load(f"ckplus:{fixture_dir('ckplus-original')}")
    seqs = clips.sequences(ds, range(len(ds.items)))
    assert len(seqs) == len({it.sequence for it in ds.items})
    for s in seqs:
        frames = [ds.items[i].frame for i in s]
        assert frames == sorted(frames) and len({ds.items[i].sequence for i in s}) == 1
    assert clips.pad_or_trim([5, 6], 4) == [5, 5, 5, 6] and clips.pad_or_trim([1, 2, 3, 4, 5], 3) == [3, 4, 5]


def test_normalisation_stats_come_from_the_given_split():
    dark = np.full((4, 48, 48), 51, np.uint8)
    mean, std = normalization.fit(dark)
    assert abs(mean - 0.2) < 1e-9 and std > 0
