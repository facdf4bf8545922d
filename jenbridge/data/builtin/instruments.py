"""General MIDI instruments the built-in dataset uses: names, playable ranges, drum kits.

Everything here is a table. A program number is the 0-based General MIDI program; drum kits are
programs of bank 128 (the GM drum channel, MIDI channel 10 = index 9), as FluidR3_GM lays them out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Instrument:
    """A melodic GM program: the name captions use and its comfortable MIDI range."""

    name: str
    low: int   # lowest MIDI pitch the part should go
    high: int  # highest MIDI pitch


INSTRUMENTS: dict[int, Instrument] = {
    0: Instrument("grand piano", 33, 96),
    1: Instrument("bright piano", 36, 96),
    4: Instrument("electric piano", 36, 88),
    5: Instrument("FM electric piano", 36, 88),
    6: Instrument("harpsichord", 36, 84),
    8: Instrument("celesta", 60, 96),
    11: Instrument("vibraphone", 53, 89),
    12: Instrument("marimba", 45, 96),
    16: Instrument("drawbar organ", 36, 84),
    17: Instrument("percussive organ", 36, 84),
    19: Instrument("church organ", 24, 88),
    21: Instrument("accordion", 41, 84),
    22: Instrument("harmonica", 60, 84),
    24: Instrument("nylon guitar", 40, 79),
    25: Instrument("acoustic guitar", 40, 79),
    26: Instrument("jazz guitar", 40, 79),
    27: Instrument("clean electric guitar", 40, 84),
    28: Instrument("muted guitar", 40, 76),
    29: Instrument("overdriven guitar", 40, 79),
    30: Instrument("distorted guitar", 40, 79),
    32: Instrument("upright bass", 28, 55),
    33: Instrument("electric bass", 28, 55),
    34: Instrument("picked bass", 28, 55),
    35: Instrument("fretless bass", 28, 55),
    36: Instrument("slap bass", 28, 55),
    38: Instrument("synth bass", 24, 55),
    39: Instrument("analog synth bass", 24, 55),
    40: Instrument("violin", 55, 93),
    41: Instrument("viola", 48, 81),
    42: Instrument("cello", 36, 72),
    43: Instrument("contrabass", 28, 55),
    45: Instrument("pizzicato strings", 36, 84),
    46: Instrument("harp", 36, 91),
    47: Instrument("timpani", 40, 55),
    48: Instrument("string ensemble", 36, 91),
    49: Instrument("slow strings", 36, 91),
    50: Instrument("synth strings", 36, 91),
    52: Instrument("choir", 45, 79),
    53: Instrument("voice pad", 45, 79),
    56: Instrument("trumpet", 55, 82),
    57: Instrument("trombone", 40, 72),
    58: Instrument("tuba", 28, 58),
    60: Instrument("French horn", 41, 77),
    61: Instrument("brass section", 41, 82),
    62: Instrument("synth brass", 41, 82),
    64: Instrument("soprano saxophone", 56, 88),
    65: Instrument("alto saxophone", 49, 81),
    66: Instrument("tenor saxophone", 44, 76),
    67: Instrument("baritone saxophone", 36, 69),
    68: Instrument("oboe", 58, 91),
    70: Instrument("bassoon", 34, 72),
    71: Instrument("clarinet", 50, 91),
    73: Instrument("flute", 60, 96),
    75: Instrument("pan flute", 60, 91),
    78: Instrument("whistle", 62, 96),
    80: Instrument("square lead", 48, 91),
    81: Instrument("saw lead", 48, 91),
    87: Instrument("bass-and-lead synth", 36, 84),
    88: Instrument("new age pad", 36, 84),
    89: Instrument("warm pad", 36, 84),
    90: Instrument("polysynth", 36, 84),
    91: Instrument("choir pad", 45, 79),
    92: Instrument("bowed pad", 36, 84),
    94: Instrument("halo pad", 36, 84),
    95: Instrument("sweep pad", 36, 84),
    105: Instrument("banjo", 48, 84),
    109: Instrument("bagpipe", 55, 79),
    110: Instrument("fiddle", 55, 93),
}

# Bank-128 kit program -> caption name (FluidR3_GM provides all of these).
DRUM_KITS: dict[int, str] = {
    0: "standard drum kit",
    8: "room drum kit",
    16: "power drum kit",
    24: "electronic drum kit",
    25: "808 drum machine",
    32: "jazz drum kit",
    40: "brushed drum kit",
    48: "orchestral percussion",
}

# Drum voice -> GM percussion key.
DRUM_NOTES: dict[str, int] = {
    "kick": 36, "rim": 37, "snare": 38, "clap": 39, "snare2": 40, "tom_low": 45,
    "hat": 42, "pedal_hat": 44, "open_hat": 46, "tom_mid": 47, "tom_high": 50,
    "crash": 49, "ride": 51, "ride_bell": 53, "tambourine": 54, "cowbell": 56,
    "bongo_high": 60, "bongo_low": 61, "conga_high": 63, "conga_low": 64,
    "shaker": 70, "claves": 75,
}


def instrument_name(program: int, is_drum: bool = False) -> str:
    """Caption name of a GM program (a kit name when is_drum)."""
    table = DRUM_KITS if is_drum else {p: i.name for p, i in INSTRUMENTS.items()}
    if program not in table:
        raise ValueError(f"GM program {program} (drum={is_drum}) is not in the built-in tables")
    return table[program]
