"""The shared shapes of the built-in dataset: a Piece of Tracks of Notes, and the composing Context.

A Piece is what both sources (procedural, music21) produce and what render.py turns into audio:
notes in seconds, one Track per instrument with its pan, level and reverb send, plus the facts
its caption and tags are written from. The Context is what the pattern generators see while
composing: bars, meter, chords, sections and the dynamics curve, all in beats.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from jenbridge.data.builtin.harmony import Chord
from jenbridge.data.builtin.styles import Meter, Section


class Note(NamedTuple):
    """A sounding note in seconds from the start of the piece."""

    start: float
    end: float
    pitch: int      # MIDI 0..127 (a GM percussion key on a drum track)
    velocity: int   # 1..127


class BeatNote(NamedTuple):
    """A note while composing, in beats of the piece's meter (see styles.Meter)."""

    start: float
    length: float
    pitch: int
    velocity: int


@dataclass
class Track:
    """One instrument of a piece; render.py synthesizes it alone and mixes it in stereo."""

    role: str          # drums, bass, chords, lead, ... or voice1.. for music21 parts
    program: int       # GM program 0..127; the bank-128 kit number on a drum track
    is_drum: bool
    instrument: str    # caption name
    notes: list[Note] = field(default_factory=list)
    pan: float = 0.0         # -1 left .. +1 right
    level_db: float = 0.0    # stem level in the mix, relative to the others
    reverb_send: float = 0.3  # 0..1
    phrase: str = ""         # how it plays, for captions ("a walking upright bass line")


@dataclass
class Piece:
    """A whole piece, ready to render and caption.

    seconds is the musical length to keep (clips are cut from [0, seconds)); bpm, key and meter
    follow the convention in styles.py; key is a canonical name ("A minor") or "none".
    """

    piece_id: str
    split_key: str     # what decides the split (the piece, or the music21 work it renders)
    source: str        # "procedural" or "music21"
    style: str
    bpm: float
    key: str
    meter: int
    seconds: float
    tracks: list[Track]
    room: float        # reverb room size 0..1
    facts: dict[str, Any] = field(default_factory=dict)  # caption material


@dataclass
class Context:
    """What pattern generators know about the piece being composed (times in beats)."""

    meter: Meter
    bars: int
    chords: list[tuple[float, Chord]]     # (start beat, chord), sorted, first at 0
    sections: list[Section]               # one per bar
    section_ids: list[int]                # one per bar: which section of the form it is in
    velocity_range: tuple[int, int]
    shape: str = "steady"                 # dynamics shape over the piece (see SHAPES)
    swing: float = 0.0

    @property
    def bar_beats(self) -> int:
        return self.meter.beats

    @property
    def total_beats(self) -> int:
        return self.bars * self.meter.beats

    @property
    def q(self) -> float:
        """Beats per quarter note."""
        return self.meter.per_quarter

    def chord_at(self, beat: float) -> Chord:
        current = self.chords[0][1]
        for start, chord in self.chords:
            if start > beat + 1e-9:
                break
            current = chord
        return current

    def active(self, role: str, bar: int) -> bool:
        return 0 <= bar < self.bars and role not in self.sections[bar][4]

    def section_start(self, bar: int) -> bool:
        return bar == 0 or self.section_ids[bar] != self.section_ids[bar - 1]

    def section_end(self, bar: int) -> bool:
        return bar == self.bars - 1 or self.section_ids[bar] != self.section_ids[bar + 1]

    def velocity(self, beat: float, weight: float = 1.0) -> int:
        """Velocity at `beat`: dynamic level x section energy x piece shape x `weight`."""
        bar = min(int(beat // self.bar_beats), self.bars - 1)
        lo, hi = self.velocity_range
        x = beat / max(self.total_beats, 1)
        level = self.sections[bar][2] * SHAPES[self.shape](x)
        return max(1, min(127, round((lo + (hi - lo) * level) * weight)))


# Dynamics shape over the piece, x in [0, 1] -> multiplier; words for captions in captions.py.
SHAPES = {
    "steady": lambda x: 1.0,
    "crescendo": lambda x: 0.55 + 0.45 * x,
    "decrescendo": lambda x: 1.0 - 0.4 * x,
    "swell": lambda x: 0.65 + 0.35 * math.sin(math.pi * x),
}
