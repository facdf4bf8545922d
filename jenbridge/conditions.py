"""Musical conditions — tempo, key, meter — and their integer/float codes.

Shared by the dataset, the model (PyTorch), the engine (numpy) and every request interface, so
it imports nothing heavy. The codes are what the U-Net takes as inputs:

- bpm:   float beats per minute; 0.0 = unset (the model's null tempo embedding).
- key:   int; 0 = unset, 1..12 = C..B major, 13..24 = C..B minor, 25 = none (unpitched material).
- meter: int beats per bar; 0 = unset, 1..MAX_METER.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

BPM_MIN, BPM_MAX = 20.0, 400.0
MAX_METER = 16
KEY_UNSET, KEY_NONE = 0, 25
NUM_KEY_CODES = 26  # embedding table size
NUM_METER_CODES = MAX_METER + 1

PITCH_CLASSES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_ALIASES = {"DB": 1, "EB": 3, "GB": 6, "AB": 8, "BB": 10, "CB": 11, "FB": 4, "E#": 5, "B#": 0}
_MODES = {"": "major", "maj": "major", "major": "major", "ionian": "major",
          "m": "minor", "min": "minor", "minor": "minor", "aeolian": "minor"}


def _pitch_class(name: str) -> int:
    n = name.strip().upper().replace("♯", "#").replace("♭", "B")
    if n in PITCH_CLASSES:
        return PITCH_CLASSES.index(n)
    if n in _ALIASES:
        return _ALIASES[n]
    raise ValueError(f"unknown key tonic {name!r} (expected C, C#, Db, ... B)")


def key_code(key: str | int | None) -> int:
    """Parse a key name ("A minor", "F#m", "Eb major", "C", "none") or code into its code.

    None or "" -> 0 (unset). "none"/"atonal"/"unpitched" -> 25. Raises ValueError otherwise.
    """
    if key is None:
        return KEY_UNSET
    if isinstance(key, bool):
        raise ValueError(f"key must be a name or code, not {key!r}")
    if isinstance(key, int):
        if not 0 <= key < NUM_KEY_CODES:
            raise ValueError(f"key code {key} out of range 0..{NUM_KEY_CODES - 1}")
        return key
    text = key.strip()
    if not text or text.lower() in ("unset", "auto"):
        return KEY_UNSET
    if text.lower() in ("none", "atonal", "unpitched", "no key"):
        return KEY_NONE
    m = re.fullmatch(r"([A-Ga-g](?:#|b|♯|♭)?)\s*[-_ ]?\s*([A-Za-z]*)", text)
    if not m or m.group(2).lower() not in _MODES:
        raise ValueError(f"unknown key {key!r} (try 'A minor', 'F#m', 'Eb major' or 'none')")
    pc = _pitch_class(m.group(1))
    minor = _MODES[m.group(2).lower()] == "minor"
    return 1 + pc + (12 if minor else 0)


def key_name(code: int) -> str | None:
    """Inverse of key_code: 0 -> None, 25 -> "none", else "A minor" style."""
    if code == KEY_UNSET:
        return None
    if code == KEY_NONE:
        return "none"
    if not 1 <= code <= 24:
        raise ValueError(f"key code {code} out of range")
    pc, minor = (code - 1) % 12, code > 12
    return f"{PITCH_CLASSES[pc]} {'minor' if minor else 'major'}"


def check_bpm(bpm: float | None) -> float:
    """Validate a tempo: None/0 -> 0.0 (unset); else must be finite and in [BPM_MIN, BPM_MAX]."""
    if bpm is None:
        return 0.0
    if isinstance(bpm, bool):
        raise ValueError(f"bpm must be a number, not {bpm!r}")
    bpm = float(bpm)
    if bpm == 0.0:
        return 0.0
    if not math.isfinite(bpm) or not BPM_MIN <= bpm <= BPM_MAX:
        raise ValueError(f"bpm {bpm} out of range {BPM_MIN:g}..{BPM_MAX:g} (0 or unset for none)")
    return bpm


def check_meter(meter: float | str | None) -> int:
    """Validate beats per bar: None -> 0 (unset); "7/8" -> 7; must be 1..MAX_METER."""
    if meter is None:
        return 0
    if isinstance(meter, bool):
        raise ValueError(f"meter must be beats per bar, not {meter!r}")
    if isinstance(meter, str):
        text = meter.strip()
        if not text:
            return 0
        m = re.fullmatch(r"(\d+)(?:\s*/\s*(\d+))?", text)
        if not m:
            raise ValueError(f"meter {meter!r} not understood (expected 4 or 4/4)")
        meter = int(m.group(1))
    if isinstance(meter, float):
        if not meter.is_integer():
            raise ValueError(f"meter must be a whole number of beats per bar, not {meter}")
        meter = int(meter)
    if not 1 <= meter <= MAX_METER:
        raise ValueError(f"meter {meter} out of range 1..{MAX_METER} beats per bar")
    return meter


@dataclass(frozen=True)
class MusicalConditions:
    """Validated musical conditions for one request or training clip (codes as above)."""

    bpm: float = 0.0
    key: int = KEY_UNSET
    meter: int = 0

    @classmethod
    def parse(cls, bpm: float | None = None, key: str | int | None = None,
              meter: float | str | None = None) -> MusicalConditions:
        return cls(check_bpm(bpm), key_code(key), check_meter(meter))
