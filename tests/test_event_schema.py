"""The event format (issue 18, item 5): runtime/event.schema.json ships in the package and
describes exactly what the real daemon emits, on the demo source and on a real video."""
from __future__ import annotations

import copy
import json
from importlib import resources

import pytest

from conftest import run_cli, shared
from edgefer.runtime.labels import LABELS

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is in the dev extra: pip install -e '.[dev]'")


@pytest.fixture(scope="module")
def validator():
    schema = json.loads(resources.files("edgefer.runtime").joinpath("event.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def check_run(validator, *args: str) -> list[dict]:
    res = run_cli("run", *args)
    assert res.returncode == 0, res.stderr[-1500:]
    lines = res.stdout.splitlines()
    assert lines, "the daemon emitted no event"
    events = []
    for i, line in enumerate(lines):
        event = json.loads(line)
        errors = sorted(validator.iter_errors(event), key=lambda e: list(e.path))
        assert not errors, f"line {i + 1}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors)
        # what the schema cannot say: score is the smoothed probability of the reported label
        assert event["label"] in event["probs"] and event["score"] == event["probs"][event["label"]]
        assert abs(sum(event["probs"].values()) - 1) < 1e-3 and event["box"][0] < event["box"][2]
        events.append(event)
    return events


def test_schema_labels_are_the_runtime_labels(validator):
    assert tuple(validator.schema["$defs"]["label"]["enum"]) == LABELS


def test_demo_events_match_the_schema(validator):
    events = check_run(validator, "--source", "demo", "--max-frames", "30")
    assert len({e["frame"] for e in events}) == 30


def test_real_video_events_match_the_schema(validator):
    video = shared("video", "head-pose-face-detection-female-and-male.gif")
    events = check_run(validator, "--source", f"video:{video}", "--max-frames", "60", "--detector", "blazeface")
    assert len({e["track"] for e in events}) >= 2                   # two faces: several tracks validated


def test_schema_rejects_broken_events(validator):
    good = {"time": 1796068210.793, "frame": 0, "track": 1, "box": [238.6, 80.9, 339.7, 182.0], "label": "happy",
            "score": 0.79, "probs": {"happy": 0.79, "neutral": 0.21},
            "latency_ms": {"decode": 4.1, "detect": 26.5, "track_crop": 0.4, "infer": 1.5}}
    assert validator.is_valid(good)

    def broken(change) -> dict:
        e = copy.deepcopy(good)
        change(e)
        return e
    bad = {
        "missing label": broken(lambda e: e.pop("label")),
        "probability > 1": broken(lambda e: e["probs"].update(happy=1.2)),
        "negative probability": broken(lambda e: e["probs"].update(sad=-0.1)),
        "score > 1": broken(lambda e: e.update(score=1.5)),
        "unknown label": broken(lambda e: e.update(label="bored")),
        "unknown label in probs": broken(lambda e: e["probs"].update(bored=0.1)),
        "box of 3 numbers": broken(lambda e: e.update(box=[1, 2, 3])),
        "box of strings": broken(lambda e: e.update(box=["1", "2", "3", "4"])),
        "track as string": broken(lambda e: e.update(track="1")),
        "latency not a number": broken(lambda e: e["latency_ms"].update(infer="fast")),
        "extra field": broken(lambda e: e.update(person="alice")),
    }
    for why, event in bad.items():
        assert not validator.is_valid(event), why
