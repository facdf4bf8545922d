"""Drum patterns as step grids, and the generator that plays them through a piece's sections.

A grid is one bar on the sixteenth-note grid (16 steps in 4/4, 12 in 3/4 and 6/8, 20 in 5/4,
14 in 7/8): "X" accent, "x" hit, "g" ghost, "." rest. A pattern without a grid for the piece's
meter falls back to a plain one built from the meter's strong beats and pulses.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jenbridge.data.builtin.instruments import DRUM_NOTES
from jenbridge.data.builtin.piece import BeatNote, Context
from jenbridge.data.builtin.styles import Meter

WEIGHTS = {"X": 1.15, "x": 0.95, "g": 0.5}
LIGHT = frozenset({"hat", "shaker", "ride", "rim", "tambourine", "pedal_hat", "open_hat"})


@dataclass(frozen=True)
class DrumPattern:
    """A drum groove: caption words, one grid per meter, the voices that play its fills."""

    phrase: str
    grids: dict[str, dict[str, str]]
    fill: tuple[str, ...] = ("snare",)
    ghosts: float = 0.0  # chance per empty sixteenth of a ghost note on the snare


DRUM_PATTERNS: dict[str, DrumPattern] = {
    "four_on_floor": DrumPattern(
        "a four-on-the-floor kick with off-beat open hi-hats and claps on two and four",
        {"4/4": {"kick": "X...X...X...X...", "clap": "....x.......x...",
                 "open_hat": "..x...x...x...x.", "shaker": "gxgxgxgxgxgxgxgx"}},
        fill=("clap",)),
    "techno": DrumPattern(
        "a pounding techno kick with rolling sixteenth hi-hats",
        {"4/4": {"kick": "X...X...X...X...", "hat": ".g.g.g.g.g.g.g.g",
                 "open_hat": "..x...x...x...x.", "rim": "......x.....x..x",
                 "clap": "....x.......x..."}},
        fill=("rim",)),
    "boom_bap": DrumPattern(
        "a dusty boom-bap beat",
        {"4/4": {"kick": "X......xX.....x.", "snare": "....X.......X...",
                 "hat": "x.x.x.x.x.x.x.x."}},
        ghosts=0.04),
    "trap": DrumPattern(
        "trap drums with skittering hi-hats and booming 808 kicks",
        {"4/4": {"kick": "X......x..x.....", "clap": "........X.......",
                 "hat": "xgxgxgxgxgxxxgxg"}},
        fill=("hat",)),
    "rock": DrumPattern(
        "a steady rock backbeat",
        {"4/4": {"kick": "X.....x.X.x.....", "snare": "....X.......X...",
                 "hat": "x.x.x.x.x.x.x.x."},
         "3/4": {"kick": "X.......x...", "snare": "....X...X...", "hat": "x.x.x.x.x.x."},
         "5/4": {"kick": "X.....x.....X.......", "snare": "........X.......X...",
                 "hat": "x.x.x.x.x.x.x.x.x.x."},
         "7/8": {"kick": "X.......x.....", "snare": "....X.....X...",
                 "hat": "x.x.x.x.x.x.x."}},
        fill=("tom_high", "tom_mid", "tom_low"), ghosts=0.02),
    "jazz_swing": DrumPattern(
        "a swinging ride cymbal with the hi-hat on two and four",
        {"4/4": {"ride": "x...x.x.x...x.x.", "pedal_hat": "....x.......x...",
                 "kick": "g..............."},
         "3/4": {"ride": "x...x.x.x.x.", "pedal_hat": "....x...x...", "kick": "g..........."},
         "5/4": {"ride": "x...x.x.x...x.x.x...", "pedal_hat": "....x.......x...x...",
                 "kick": "g...........g......."}},
        ghosts=0.03),
    "bossa": DrumPattern(
        "a bossa nova groove with a cross-stick clave",
        {"4/4": {"kick": "X..xX..xX..xX..x", "rim": "x..x..x...x..x..",
                 "shaker": "xgxgxgxgxgxgxgxg"}},
        fill=("rim",)),
    "dnb": DrumPattern(
        "a fast two-step breakbeat",
        {"4/4": {"kick": "X.........x.....", "snare": "....X.......X...",
                 "hat": "x.x.x.x.x.x.x.x.", "ride": "..x...x...x...x."}},
        ghosts=0.05),
    "one_drop": DrumPattern(
        "a one-drop rhythm with the kick and rim on beat three",
        {"4/4": {"kick": "........X.......", "rim": "........x.......",
                 "hat": "x.x.x.x.x.x.x.x."}},
        fill=("rim",)),
    "funk": DrumPattern(
        "a tight funk beat with ghost notes on the snare",
        {"4/4": {"kick": "X.x.......x..x..", "snare": "....X..g.g..X..g",
                 "hat": "xgxgxgxgxgxgxgxg"}},
        ghosts=0.06),
    "synthwave": DrumPattern(
        "a big gated drum machine beat",
        {"4/4": {"kick": "X.......X.......", "snare": "....X.......X...",
                 "hat": "x.x.x.x.x.x.x.x."}},
        fill=("tom_high", "tom_mid", "tom_low")),
    "folk": DrumPattern(
        "light hand percussion with tambourine and shaker",
        {"4/4": {"kick": "X.......x.......", "tambourine": "....x.......x...",
                 "shaker": "x.x.x.x.x.x.x.x."},
         "3/4": {"kick": "X...........", "tambourine": "....x...x...",
                 "shaker": "x.x.x.x.x.x."},
         "6/8": {"kick": "X.....x.....", "tambourine": "......x.....",
                 "shaker": "x.x.x.x.x.x."}},
        fill=("tambourine",)),
    "orchestral": DrumPattern(
        "bass drum and cymbal swells",
        {"4/4": {"kick": "X..............."}, "3/4": {"kick": "X..........."},
         "6/8": {"kick": "X..........."}},
        fill=("kick",)),
}


def _generic_grid(meter: Meter) -> dict[str, str]:
    """Kick on the strong beats, snare on the other pulses, hats on every eighth note."""
    spb = meter.steps_per_beat
    n = meter.beats * spb
    kick, snare = ["."] * n, ["."] * n
    for beat in meter.pulses:
        (kick if beat in meter.strong else snare)[beat * spb] = "x"
    hat = "".join("x" if s % 2 == 0 else "." for s in range(n))
    return {"kick": "".join(kick), "snare": "".join(snare), "hat": hat}


def drum_notes(ctx: Context, name: str, rng: np.random.Generator) -> list[BeatNote]:
    """Play pattern `name` over the piece: level per section, crashes, fills and ghost notes."""
    pattern = DRUM_PATTERNS[name]
    grid = pattern.grids.get(ctx.meter.name) or _generic_grid(ctx.meter)
    spb = ctx.meter.steps_per_beat
    steps = ctx.bar_beats * spb
    for voice, row in grid.items():
        assert len(row) == steps, (name, ctx.meter.name, voice, len(row))
    fill_steps = spb * (2 if ctx.meter.unit == 8 else 1)
    notes: list[BeatNote] = []
    for bar in range(ctx.bars):
        level = ctx.sections[bar][3]
        if level == 0 or not ctx.active("drums", bar):
            continue
        fill = level == 3 and ctx.section_end(bar) and bar < ctx.bars - 1
        last = steps - fill_steps if fill else steps
        base = bar * ctx.bar_beats
        for voice, row in grid.items():
            if level == 1 and voice not in LIGHT:
                continue
            for s in range(last):
                if row[s] in WEIGHTS:
                    beat = base + s / spb
                    notes.append(BeatNote(beat, 0.5, DRUM_NOTES[voice],
                                          ctx.velocity(beat, WEIGHTS[row[s]])))
        if level >= 2 and pattern.ghosts:
            busy = {s for row in grid.values() for s in range(steps) if row[s] != "."}
            for s in range(last):
                if s not in busy and rng.random() < pattern.ghosts:
                    beat = base + s / spb
                    notes.append(BeatNote(beat, 0.25, DRUM_NOTES["snare"],
                                          ctx.velocity(beat, 0.4)))
        if level == 3 and ctx.section_start(bar):
            notes.append(BeatNote(base, 2.0, DRUM_NOTES["crash"], ctx.velocity(base, 1.1)))
        if fill:
            for i in range(fill_steps):
                beat = base + (last + i) / spb
                voice = pattern.fill[i * len(pattern.fill) // fill_steps]
                notes.append(BeatNote(beat, 0.25, DRUM_NOTES[voice],
                                      ctx.velocity(beat, 0.7 + 0.4 * i / fill_steps)))
    return notes
