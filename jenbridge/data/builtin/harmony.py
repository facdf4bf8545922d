"""Keys, scales, chords and voicings for the procedural composer.

Pitch classes are ints 0..11 (C = 0); pitches are MIDI note numbers. Chords are built by stacking
scale steps on a scale degree (0-based: 0 = I/i, 4 = V/v), so every chord is diatonic to the key,
except the dominant of a minor key, which may take the raised seventh (harmonic minor).
"""

from __future__ import annotations

from dataclasses import dataclass

from jenbridge.conditions import key_code, key_name

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),
}

# Chord shape -> scale steps above the root (0, 2, 4 = a triad by thirds).
CHORD_SHAPES: dict[str, tuple[int, ...]] = {
    "triad": (0, 2, 4),
    "seventh": (0, 2, 4, 6),
    "ninth": (0, 2, 4, 6, 8),
    "add9": (0, 2, 4, 8),
    "sus2": (0, 1, 4),
    "sus4": (0, 3, 4),
    "power": (0, 4),
}

# Progression family -> mode -> progressions (scale degrees, one chord per harmonic-rhythm unit).
PROGRESSIONS: dict[str, dict[str, list[tuple[int, ...]]]] = {
    "pop": {
        "major": [(0, 4, 5, 3), (0, 5, 3, 4), (0, 3, 4, 4), (5, 3, 0, 4), (0, 3, 0, 4)],
        "minor": [(0, 5, 2, 6), (0, 3, 6, 2), (0, 6, 5, 6), (0, 3, 4, 0), (0, 5, 3, 4)],
    },
    "dance": {
        "major": [(0, 4, 5, 3), (3, 4, 0, 0), (5, 3, 0, 4)],
        "minor": [(0, 5, 6, 0), (0, 6, 5, 4), (0, 3, 5, 6), (0, 0, 5, 6), (0, 2, 6, 3)],
    },
    "jazz": {
        "major": [(1, 4, 0, 0), (0, 5, 1, 4), (2, 5, 1, 4), (3, 2, 1, 0)],
        "minor": [(1, 4, 0, 0), (0, 3, 1, 4), (0, 5, 1, 4), (3, 6, 2, 5)],
    },
    "modal": {
        "major": [(0, 3), (0, 4, 3, 0), (0, 1), (3, 0)],
        "minor": [(0, 5), (0, 3), (0, 6, 5, 6), (0, 2, 3, 0)],
    },
    "classical": {
        "major": [(0, 3, 4, 0), (0, 5, 1, 4), (0, 1, 4, 0), (0, 3, 1, 4), (0, 4, 5, 2, 3, 0, 4, 0)],
        "minor": [(0, 3, 4, 0), (0, 5, 3, 4), (0, 1, 4, 0), (0, 6, 2, 5, 1, 4, 0, 0)],
    },
    "rock": {
        "major": [(0, 6, 3, 0), (0, 3, 4, 3), (0, 4, 5, 3), (0, 3, 0, 4)],
        "minor": [(0, 6, 5, 6), (0, 2, 6, 3), (0, 5, 6, 0), (0, 3, 6, 0)],
    },
}


@dataclass(frozen=True)
class Key:
    """A tonic pitch class and a mode ("major" or "minor")."""

    tonic: int
    mode: str

    @property
    def name(self) -> str:
        """Canonical name as jenbridge.conditions writes it, e.g. "A# major", "F minor"."""
        return str(key_name(key_code(f"{_SHARPS[self.tonic]} {self.mode}")))

    @property
    def display(self) -> str:
        """Name with the spelling musicians expect, e.g. "Bb major", "F# minor"."""
        names = _MAJOR_SPELLING if self.mode == "major" else _MINOR_SPELLING
        return f"{names[self.tonic]} {self.mode}"

    def scale(self) -> tuple[int, ...]:
        """The seven pitch classes of the key, tonic first."""
        return tuple((self.tonic + s) % 12 for s in SCALES[self.mode])


_SHARPS = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
_MAJOR_SPELLING = ["C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B"]
_MINOR_SPELLING = ["C", "C#", "D", "Eb", "E", "F", "F#", "G", "G#", "A", "Bb", "B"]


@dataclass(frozen=True)
class Chord:
    """A chord in a key: its root pitch class, its tones (root first) and the scale it implies."""

    degree: int
    tones: tuple[int, ...]
    scale: tuple[int, ...]  # the key's scale, with the raised 7th over a harmonic-minor V

    @property
    def root(self) -> int:
        return self.tones[0]


def make_chord(key: Key, degree: int, shape: str, harmonic_minor: bool = False) -> Chord:
    """The chord on scale `degree` (0-based) of `key` with shape from CHORD_SHAPES."""
    scale = list(key.scale())
    if harmonic_minor and key.mode == "minor" and degree == 4:
        scale[6] = (scale[6] + 1) % 12  # leading tone in the dominant
    tones = tuple(scale[(degree + step) % 7] for step in CHORD_SHAPES[shape])
    return Chord(degree, tones, tuple(scale))


def nearest(pc: int, around: float) -> int:
    """The MIDI pitch with pitch class `pc` closest to `around`."""
    base = int(round(around)) - 6
    return base + (pc - base) % 12


def fit(pitch: int, low: int, high: int) -> int:
    """Move `pitch` by octaves into [low, high] (as close as it gets when the range is narrow)."""
    while pitch < low:
        pitch += 12
    while pitch > high and pitch - 12 >= low:
        pitch -= 12
    return pitch


def voicing(chord: Chord, center: float, previous: list[int] | None = None,
            size: int | None = None) -> list[int]:
    """Close-position voicing of `chord` near `center`; moves little from `previous` if given.

    size: number of notes (tones are repeated an octave up when size exceeds the chord).
    """
    tones = list(chord.tones)
    size = size or len(tones)
    tones = (tones * (size // len(tones) + 1))[:size]
    best: list[int] = []
    best_cost = float("inf")
    for inversion in range(len(chord.tones)):
        order = tones[inversion:] + tones[:inversion]
        pitches = [nearest(order[0], center - 4)]
        for pc in order[1:]:
            pitches.append(pitches[-1] + 1 + (pc - pitches[-1] - 1) % 12)
        mid = sum(pitches) / len(pitches)
        cost = abs(mid - center)
        if previous:
            cost = sum(min(abs(p - q) for q in previous) for p in pitches) + 0.3 * cost
        if cost < best_cost:
            best, best_cost = pitches, cost
    return best


def scale_pitches(scale: tuple[int, ...], low: int, high: int) -> list[int]:
    """All pitches of `scale` (pitch classes) in [low, high], ascending."""
    pcs = set(scale)
    return [p for p in range(low, high + 1) if p % 12 in pcs]


# Krumhansl-Kessler key profiles (probe-tone ratings), tonic first.
_MAJOR_PROFILE = (6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88)
_MINOR_PROFILE = (6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17)


def estimate_key(pitches: list[int], weights: list[float]) -> Key:
    """Krumhansl-Schmuckler key finding: the key whose profile best correlates with the
    duration-weighted pitch-class histogram of `pitches` (the method music21's 'key' uses)."""
    hist = [0.0] * 12
    for p, w in zip(pitches, weights):
        hist[p % 12] += w
    best, best_r = Key(0, "major"), -2.0
    for mode, profile in (("major", _MAJOR_PROFILE), ("minor", _MINOR_PROFILE)):
        for tonic in range(12):
            rotated = [profile[(pc - tonic) % 12] for pc in range(12)]
            r = _correlation(hist, rotated)
            if r > best_r:
                best, best_r = Key(tonic, mode), r
    return best


def _correlation(a: list[float], b: list[float]) -> float:
    ma, mb = sum(a) / len(a), sum(b) / len(b)
    cov = sum((x - ma) * (y - mb) for x, y in zip(a, b))
    va = sum((x - ma) ** 2 for x in a) ** 0.5
    vb = sum((y - mb) ** 2 for y in b) ** 0.5
    return cov / (va * vb) if va and vb else -1.0
