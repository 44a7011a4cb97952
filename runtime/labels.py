"""The single emotion label space every dataset is mapped into.

Order follows FER2013's integer codes (0..6) with FERPlus' `contempt` appended, so a
FER2013 model's logit i is label i here. Each dataset declares its own mapping into
these names (see train/datasets); models carry the subset they were trained on.
"""
from __future__ import annotations

LABELS: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

# Spellings seen in public datasets' folder names and files, mapped to our names.
SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust",
    "fear": "fear", "fearful": "fear", "scared": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy",
    "sad": "sad", "sadness": "sad",
    "surprise": "surprise", "surprised": "surprise",
    "neutral": "neutral", "calm": "neutral",
    "contempt": "contempt",
}


def canonical(name: str) -> str | None:
    """Our label for a dataset's spelling of it, or None when it has no meaning here."""
    return SYNONYMS.get(name.strip().lower())


def ordered(labels: set[str] | list[str]) -> tuple[str, ...]:
    """A label subset in canonical order, so logits line up across datasets."""
    return tuple(lab for lab in LABELS if lab in set(labels))
