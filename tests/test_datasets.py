"""Every loader on a fixture in its real published layout, and its bad-input errors."""
from __future__ import annotations

import csv
import shutil

import pytest

from edgefer.runtime.errors import EdgeferError
from edgefer.runtime.labels import LABELS
from edgefer.train import datasets, images
from edgefer.train.fixtures import FORMATS

# format -> (spec suffix, expected splits, expected labels)
EXPECT = {
    "fer2013-csv": ("/fer2013.csv", {"Training", "PublicTest", "PrivateTest"}, LABELS[:7]),
    "fer2013-folders": ("", {"Training", "PublicTest", "PrivateTest"}, LABELS[:7]),
    "ferplus": ("", {"Training", "PublicTest", "PrivateTest"}, LABELS[:7]),
    "ferplus-layout": ("", {"Training", "PublicTest", "PrivateTest"}, LABELS[:7]),
    "ferplus-labels": ("", {"Training", "PublicTest", "PrivateTest"}, LABELS[:7]),
    "rafdb": ("", {"train", "test"}, ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")),
    "ckplus48": ("", {""}, ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")),
    "ckplus-original": ("", {""}, ("angry", "disgust", "fear", "happy", "sad", "surprise", "contempt")),
    "folder": ("?map=Ahegao:happy", {""}, ("angry", "happy", "sad", "surprise", "neutral")),
}


def test_every_registered_loader_has_a_fixture():
    assert set(datasets.REGISTRY) == set(FORMATS.values())
    assert set(EXPECT) == set(FORMATS)


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_loader_reads_its_real_layout(fmt, fixture_dir):
    root = fixture_dir(fmt)
    suffix, expected_splits, expected_labels = EXPECT[fmt]
    spec = f"{FORMATS[fmt]}:{root.parent if suffix.startswith('/') else root}{suffix}"
    ds = datasets.load(spec)
    assert {it.split for it in ds.items} == expected_splits
    assert set(ds.labels) == set(expected_labels)
    decoded = images.decode(ds, 48, progress=False)
    assert decoded.pixels.shape == (len(ds.items), 48, 48)
    assert len(set(decoded.hashes)) == len(ds.items)       # every drawn face is distinct


def test_fer2013_csv_and_folders_agree(fixture_dir):
    csv_ds = datasets.load(f"fer2013:{fixture_dir('fer2013-csv')}")
    folder_ds = datasets.load(f"fer2013:{fixture_dir('fer2013-folders')}")
    for split in ("Training", "PublicTest", "PrivateTest"):
        count = lambda ds: sorted(it.label for it in ds.items if it.split == split)
        assert count(csv_ds) == count(folder_ds)
    # CSV code 0 is angry, 6 neutral: the first row of the fixture is class 0
    assert csv_ds.items[0].label == "angry" and csv_ds.items[-1].label == "neutral"


def test_ferplus_majority_votes_and_drops_are_reported(fixture_dir):
    ds = datasets.load(f"ferplus:{fixture_dir('ferplus')}")
    reasons = {s.reason for s in ds.skipped}
    assert "no image name (FERPlus removed it)" in reasons
    assert "no emotion majority (unknown, not a face, or tie)" in reasons
    total_rows = sum(1 for _ in open(fixture_dir("ferplus") / "fer2013new.csv")) - 1
    assert len(ds.items) + len(ds.skipped) == total_rows


def test_ferplus_three_forms_give_the_same_faces_labels_and_votes(fixture_dir):
    """Microsoft's layout, its label.csv joined to FER2013's folders by name, and the CSV pair
    are one dataset: same labels, same vote targets, same pixels for the same FERPlus image."""
    import numpy as np
    forms = {f: datasets.load(f"ferplus:{fixture_dir(f)}") for f in ("ferplus", "ferplus-layout", "ferplus-labels")}
    by_name = {}
    for form, ds in forms.items():
        names = {}
        for it in ds.items:
            name = it.key.rsplit("/", 1)[1] if "/" in it.key else f"fer{int(it.key[3:]):07d}.png"
            names[name] = (it.label, it.split, tuple(np.round(ds.votes[it.key], 4)), ds.read(it).tobytes())
        by_name[form] = names
    assert by_name["ferplus-layout"] == by_name["ferplus-labels"]
    common = set(by_name["ferplus"]) & set(by_name["ferplus-layout"])
    assert len(common) == len(by_name["ferplus-layout"]) > 20
    assert all(by_name["ferplus"][n] == by_name["ferplus-layout"][n] for n in common)
    # the joined form remembers FER2013's own label (the folder it sits in), the others from fer2013.csv
    for form in ("ferplus", "ferplus-labels"):
        ds = forms[form]
        assert ds.alt_labels and all(ds.alt_labels[it.key] == it.label for it in ds.items)   # fixture votes agree
    assert forms["ferplus-layout"].alt_labels is None


def test_ferplus_drops_are_counted_with_file_and_row(fixture_dir):
    ds = datasets.load(f"ferplus:{fixture_dir('ferplus-layout')}")
    reasons = [s.reason for s in ds.skipped]
    assert any("all votes are zero" == r for r in reasons)
    assert any(r.startswith("names fer") and "which is not in" in r for r in reasons)
    assert all(":" in s.path and s.path.split(":")[-1].isdigit() for s in ds.skipped)   # file:row
    rows = sum(sum(1 for _ in open(p)) for p in fixture_dir("ferplus-layout").glob("*/label.csv"))
    assert len(ds.items) + len(ds.skipped) == rows


def test_ferplus_votes_are_outlier_free_shares():
    import numpy as np
    from edgefer.train.datasets.ferplus import EMOTIONS, emotion_distribution
    d = emotion_distribution(np.array([4, 0, 0, 1, 3, 2, 0, 0, 0, 0]))      # sadness' single vote is an outlier
    assert d.sum() == pytest.approx(1) and d[EMOTIONS.index("sad")] == 0
    assert d[EMOTIONS.index("neutral")] == pytest.approx(4 / 9)


@pytest.mark.parametrize("damage, message", [
    (lambda d: (d / "FER2013Valid" / "label.csv").unlink(), "has no label.csv"),
    (lambda d: _rewrite(d, lambda row: row[:-1]), "has 9 vote columns, not 10"),
    (lambda d: _rewrite(d, lambda row: row[:2] + ["x"] + row[3:]), "vote counts are not numbers"),
])
def test_ferplus_bad_layout_is_a_one_line_error_naming_file_and_row(fixture_dir, tmp_path, damage, message):
    d = tmp_path / "fp"
    shutil.copytree(fixture_dir("ferplus-layout"), d)
    damage(d)
    with pytest.raises(EdgeferError) as e:
        datasets.load(f"ferplus:{d}")
    assert message in str(e.value) and "\n" not in str(e.value)
    if "vote" in message:
        assert "FER2013Train/label.csv:1" in str(e.value)


def test_ferplus_labels_without_images_name_the_fix(fixture_dir, tmp_path):
    d = tmp_path / "labels-only"
    for sub in ("FER2013Train", "FER2013Valid"):
        (d / sub).mkdir(parents=True)
        shutil.copy(fixture_dir("ferplus-layout") / sub / "label.csv", d / sub / "label.csv")
    with pytest.raises(EdgeferError, match="ferplus-layout.py|fer2013="):
        datasets.load(f"ferplus:{d}")


def _rewrite(d, change):
    path = d / "FER2013Train" / "label.csv"
    rows = list(csv.reader(open(path)))
    rows[0] = change(rows[0])
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows(rows)


def test_ferplus_majority_rule():
    import numpy as np
    from edgefer.train.datasets.ferplus import majority
    assert majority(np.array([0, 6, 0, 0, 0, 0, 0, 0, 4, 0])) == "happy"
    assert majority(np.array([5, 5, 0, 0, 0, 0, 0, 0, 0, 0])) is None       # tie: no strict majority
    assert majority(np.array([0, 0, 0, 0, 0, 0, 0, 0, 9, 1])) is None       # unknown
    assert majority(np.array([0, 0, 0, 0, 0, 0, 0, 7, 3, 0])) == "contempt"
    # single votes are outliers, dropped before the majority test (FERPlus' ferplus.py)
    assert majority(np.array([5, 1, 1, 1, 1, 1, 0, 0, 0, 0])) == "neutral"


def test_ckplus_crops_carry_subject_sequence_frame(fixture_dir):
    ds = datasets.load(f"ckplus:{fixture_dir('ckplus48')}")
    assert ds.paper_size == 48 and datasets.load(f"fer2013:{fixture_dir('fer2013-folders')}").paper_size == 100
    it = ds.items[0]
    assert it.subject.startswith("S") and it.sequence.startswith(it.subject) and it.frame >= 1
    per_seq = {}
    for item in ds.items:
        per_seq.setdefault(item.sequence, set()).add(item.label)
    assert all(len(labels) == 1 for labels in per_seq.values())
    assert all(sum(1 for x in ds.items if x.sequence == s) == 3 for s in per_seq)


def test_ckplus_original_gives_neutral_to_peak_sequences(fixture_dir):
    root = fixture_dir("ckplus-original")
    full = datasets.load(f"ckplus:{root}")
    peak = datasets.load(f"ckplus:{root}?frames=peak3")
    seqs = {it.sequence for it in full.items}
    assert len(peak.items) == 3 * len(seqs)
    longest = max(seqs, key=lambda s: sum(it.sequence == s for it in full.items))
    frames = sorted(it.frame for it in full.items if it.sequence == longest)
    assert frames[0] == 1 and len(frames) >= 8


def test_folder_subset_and_mapping(fixture_dir):
    root = fixture_dir("folder")
    four = datasets.load(f"folder:{root}?classes=angry,happy,neutral,sad")
    assert four.labels == ("angry", "happy", "sad", "neutral")
    assert any(s.reason == "class not selected" for s in four.skipped)
    mapped = datasets.load(f"folder:{root}?map=Ahegao:happy")
    assert sum(it.label == "happy" for it in mapped.items) == 2 * sum(it.label == "angry" for it in mapped.items)


# --- bad input: one clear error naming file, cause and fix ------------------------------------

def _error(spec: str) -> str:
    with pytest.raises(EdgeferError) as info:
        ds = datasets.load(spec)
        images.decode(ds, 48, progress=False)
    return str(info.value)


def test_unknown_dataset_name_lists_the_valid_ones(tmp_path):
    msg = _error(f"fer2014:{tmp_path}")
    assert "unknown dataset 'fer2014'" in msg and "fer2013" in msg and "ckplus" in msg


def test_missing_path(tmp_path):
    assert "does not exist" in _error(f"fer2013:{tmp_path / 'nope'}")


def test_wrong_csv_header(tmp_path):
    bad = tmp_path / "fer2013.csv"
    bad.write_text("label,image,split\n0,1 2 3,Training\n")
    msg = _error(f"fer2013:{bad}")
    assert "wrong CSV header" in msg and str(bad) in msg and "emotion" in msg


def _fer_csv(path, rows):
    with open(path, "w", newline="") as fh:
        csv.writer(fh).writerows([["emotion", "pixels", "Usage"], *rows])
    return path


def test_unknown_label_in_csv(tmp_path):
    bad = _fer_csv(tmp_path / "fer2013.csv", [[9, " ".join(["0"] * 2304), "Training"]])
    assert "unknown label '9'" in _error(f"fer2013:{bad}")


def test_short_pixel_rows_are_skipped_and_counted(tmp_path):
    path = _fer_csv(tmp_path / "fer2013.csv", [[3, " ".join(["7"] * 2304), "Training"], [3, "1 2 3", "Training"]])
    ds = datasets.load(f"fer2013:{path}")
    assert len(ds.items) == 1 and len(ds.skipped) == 1 and "2304" in ds.skipped[0].reason


def test_unknown_folder_label(fixture_dir):
    msg = _error(f"folder:{fixture_dir('folder')}")
    assert "unknown label 'Ahegao'" in msg and "?map=" in msg


def test_empty_class_folder(fixture_dir, tmp_path):
    root = shutil.copytree(fixture_dir("fer2013-folders"), tmp_path / "fer")
    (root / "train" / "happy").rename(tmp_path / "moved")
    (root / "train" / "happy").mkdir()
    msg = _error(f"fer2013:{root}")
    assert "empty class folder" in msg and "happy" in msg


def test_not_a_dataset(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    assert "no train/ folder" in _error(f"fer2013:{tmp_path}")
    assert "not a RAF-DB" in _error(f"rafdb:{tmp_path}")


def test_unreadable_image_is_skipped_and_reported(fixture_dir, tmp_path):
    root = shutil.copytree(fixture_dir("fer2013-folders"), tmp_path / "fer")
    victim = next((root / "train" / "fear").iterdir())
    victim.write_bytes(b"not a jpeg")
    (root / "train" / "fear" / "README.txt").write_text("stray file")
    ds = datasets.load(f"fer2013:{root}")
    n = len(ds.items)
    images.decode(ds, 48, progress=False)
    assert len(ds.items) == n - 1
    reasons = {s.reason for s in ds.skipped}
    assert reasons == {"not a readable image", "not an image file"}


def test_subset_keeps_split_and_class_shares_and_whole_sequences(fixture_dir):
    full = datasets.load(f"fer2013:{fixture_dir('fer2013-folders', per_class=30)}")
    half = datasets.load(f"fer2013:{fixture_dir('fer2013-folders', per_class=30)}?subset={len(full.items) // 2}")
    assert abs(len(half.items) - len(full.items) // 2) <= 14
    assert {it.split for it in half.items} == {it.split for it in full.items}
    assert set(half.labels) == set(full.labels)
    ck = datasets.load(f"ckplus:{fixture_dir('ckplus48', per_class=12)}?subset=30")
    per_seq = {}
    for it in ck.items:
        per_seq[it.sequence] = per_seq.get(it.sequence, 0) + 1
    assert set(per_seq.values()) == {3}
    with pytest.raises(EdgeferError, match="positive count"):
        datasets.load(f"fer2013:{fixture_dir('fer2013-folders')}?subset=lots")


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_exclude_drops_a_label_of_every_dataset_and_reports_it(fmt, fixture_dir):
    root = fixture_dir(fmt)
    suffix = EXPECT[fmt][0]
    spec = f"{FORMATS[fmt]}:{root.parent if suffix.startswith('/') else root}{suffix}"
    full = datasets.load(spec)
    gone = full.labels[-1]
    n_gone = sum(it.label == gone for it in full.items)
    ds = datasets.load(f"{spec}{'&' if '?' in spec else '?'}exclude={gone}")
    assert gone not in ds.labels and len(ds.items) == len(full.items) - n_gone
    reason = f"label '{gone}' excluded by ?exclude="
    assert sum(s.reason == reason for s in ds.skipped) == n_gone      # counted, never silent


def test_exclude_contempt_leaves_ckplus_seven_fer_labels(fixture_dir):
    ds = datasets.load(f"ckplus:{fixture_dir('ckplus48')}?exclude=contempt")
    assert ds.labels == LABELS[:6] and all(it.subject for it in ds.items)
    two = datasets.load(f"ckplus:{fixture_dir('ckplus48')}?exclude=contempt,sadness")   # the folder's spelling works too
    assert "sad" not in two.labels and {s.reason for s in two.skipped} >= {"label 'sad' excluded by ?exclude="}


@pytest.mark.parametrize("bad", ["contemt", "neutral"])
def test_exclude_of_an_unknown_or_absent_label_is_one_error(bad, fixture_dir):
    msg = _error(f"ckplus:{fixture_dir('ckplus48')}?exclude={bad}")
    assert "exclude=" in msg and "\n" not in msg and "contempt" in msg     # names what the dataset has
