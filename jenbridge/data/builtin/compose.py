"""The procedural composer: a style name and a random generator in, a Piece out.

Draws the musical facts (mood, meter, tempo, key, dynamics, form, progression, instruments,
patterns) from the style's tables, lays out sections and chords, runs the pattern generators,
then turns beats into seconds with the style's swing and humanization. Every choice comes from
the generator passed in, so a (seed, index) pair always composes the same piece.
"""

from __future__ import annotations

import math

import numpy as np

from jenbridge.data.builtin.captions import article
from jenbridge.data.builtin.drums import DRUM_PATTERNS, drum_notes
from jenbridge.data.builtin.harmony import PROGRESSIONS, Chord, Key, make_chord
from jenbridge.data.builtin.instruments import INSTRUMENTS, instrument_name
from jenbridge.data.builtin.patterns import PATTERNS
from jenbridge.data.builtin.piece import BeatNote, Context, Note, Piece, Track
from jenbridge.data.builtin.styles import DYNAMICS, FORMS, METERS, MOODS, STYLES, Section, Style

# Role -> (preferred MIDI register, level in dB, pan magnitude range, reverb send).
ROLE_MIX: dict[str, tuple[tuple[int, int], float, tuple[float, float], float]] = {
    "drums": ((0, 127), 0.0, (0.0, 0.15), 0.2),
    "bass": ((28, 52), -2.0, (0.0, 0.08), 0.05),
    "chords": ((48, 76), -5.0, (0.25, 0.6), 0.3),
    "pad": ((48, 79), -9.0, (0.1, 0.35), 0.5),
    "lead": ((62, 88), -3.0, (0.05, 0.35), 0.3),
    "arp": ((55, 88), -7.0, (0.3, 0.7), 0.4),
    "counter": ((55, 79), -5.0, (0.25, 0.6), 0.35),
    "timpani": ((40, 55), -4.0, (0.2, 0.45), 0.4),
}
SHAPE_WEIGHTS = {"steady": 0.4, "crescendo": 0.25, "swell": 0.2, "decrescendo": 0.15}


def _pick(rng: np.random.Generator, table: dict[str, float]) -> str:
    names = sorted(table)
    weights = np.array([table[n] for n in names], dtype=float)
    return names[int(rng.choice(len(names), p=weights / weights.sum()))]


def _layout(form: list[Section], bars: int, rng: np.random.Generator) -> list[int]:
    """Section index (into `form`) for every bar; short pieces take a run of the form."""
    count = max(1, min(len(form), bars // 2))
    first = int(rng.integers(0, len(form) - count + 1))
    chosen = list(range(first, first + count))
    weights = np.array([form[i][1] for i in chosen], dtype=float)
    lengths = np.maximum(1, np.floor(weights / weights.sum() * bars)).astype(int)
    lengths[int(np.argmax(weights))] += bars - int(lengths.sum())
    while lengths.min() < 1:  # the remainder was negative: take bars back from the longest
        lengths[int(np.argmax(lengths))] -= 1
        lengths[int(np.argmin(lengths))] += 1
    return [i for i, n in zip(chosen, lengths) for _ in range(int(n))]


def _chords(style: Style, key: Key, form: list[Section], ids: list[int], bar_beats: int,
            rng: np.random.Generator) -> tuple[list[tuple[float, Chord]], str, str]:
    """Chord list (start beat, Chord); sections of the same name share a progression."""
    family = str(rng.choice(style.progressions))
    shape = _pick(rng, style.shapes)
    span = int(rng.choice(style.chord_bars))
    options = PROGRESSIONS[family][key.mode]
    by_name: dict[str, tuple[int, ...]] = {}
    chords: list[tuple[float, Chord]] = []
    start = 0
    for bar, sid in enumerate(ids):
        name = form[sid][0].rstrip("'")
        prog = by_name.setdefault(name, options[int(rng.integers(len(options)))])
        if bar == 0 or ids[bar - 1] != sid:
            start = bar
        if (bar - start) % span == 0:
            degree = prog[((bar - start) // span) % len(prog)]
            chords.append((bar * bar_beats, make_chord(key, degree, shape, style.harmonic_minor)))
    return chords, family, shape


def _register(program: int, role: str) -> tuple[int, int]:
    inst = INSTRUMENTS[program]
    lo, hi = ROLE_MIX[role][0]
    low, high = max(inst.low, lo), min(inst.high, hi)
    return (low, high) if high - low >= 12 else (inst.low, inst.high)


def _to_seconds(notes: list[BeatNote], beat_s: float, swing: float, swing16: bool,
                humanize_s: float, end_s: float, rng: np.random.Generator) -> list[Note]:
    """Beats -> seconds, delaying off-beat eighths (or sixteenths) by `swing` of a beat."""
    out = []
    for n in sorted(notes):
        frac = n.start % 1.0
        shift = 0.0
        if swing and not swing16 and abs(frac - 0.5) < 1e-6:
            shift = swing
        elif swing and swing16 and min(abs(frac - 0.25), abs(frac - 0.75)) < 1e-6:
            shift = swing / 2
        start = (n.start + shift) * beat_s
        if humanize_s:
            start += float(np.clip(rng.normal(0, humanize_s), -2.5 * humanize_s, 2.5 * humanize_s))
        start = max(0.0, start)
        if start >= end_s:
            continue
        vel = int(np.clip(n.velocity + rng.integers(-4, 5) * (humanize_s > 0), 1, 127))
        out.append(Note(start, start + max(0.03, n.length * beat_s), int(n.pitch), vel))
    return out


def compose(style_name: str, seconds: float, rng: np.random.Generator, piece_id: str) -> Piece:
    """Compose a piece of style `style_name` lasting at least `seconds`."""
    style = STYLES[style_name]
    mood = str(rng.choice(style.moods))
    energy = MOODS[mood].energy
    meter_name = _pick(rng, style.meters)
    meter = METERS[meter_name]
    lo, hi = style.bpm
    u = float(np.clip(energy + rng.normal(0, 0.25), 0, 1))
    bpm = float(round(lo + u * (hi - lo)) * meter.unit // 4)
    key = None
    if style.pitched:
        mode = MOODS[mood].mode or ("major" if rng.random() < style.major else "minor")
        key = Key(int(rng.integers(12)), mode)
    level = str(rng.choice(style.dynamics))
    shape = _pick(rng, SHAPE_WEIGHTS)
    beat_s = 60.0 / bpm
    bars = math.ceil(seconds / (meter.beats * beat_s)) + 1
    form_name = str(rng.choice(style.forms))
    form = FORMS[form_name]
    ids = _layout(form, bars, rng)
    chords: list[tuple[float, Chord]] = []
    family = chord_shape = ""
    if key is not None:
        chords, family, chord_shape = _chords(style, key, form, ids, meter.beats, rng)
    swing = float(rng.uniform(*style.swing)) if meter.unit == 4 else 0.0
    ctx = Context(meter, bars, chords, [form[i] for i in ids], ids, DYNAMICS[level][0], shape,
                  swing)

    tracks: list[Track] = []
    programs: dict[str, int] = {}
    patterns: dict[str, str] = {}
    side = 1.0 if rng.random() < 0.5 else -1.0
    for part in style.parts:
        if rng.random() >= part.prob:
            continue
        if part.same_as is not None:
            program = programs[part.same_as]
        else:
            program = int(rng.choice(part.programs))
        programs[part.role] = program
        pattern = str(rng.choice(part.patterns))
        is_drum = part.role == "drums"
        if is_drum:
            beat_notes = drum_notes(ctx, pattern, rng)
            phrase = DRUM_PATTERNS[pattern].phrase
        else:
            low, high = _register(program, part.role)
            phrase_tpl, generate = PATTERNS[pattern]
            beat_notes = generate(ctx, rng, part.role, low, high)
            name = instrument_name(program)
            phrase = phrase_tpl.format(inst=name, a=article(name))
        notes = _to_seconds(beat_notes, beat_s, swing, style.swing16, style.humanize_ms / 1000,
                            bars * meter.beats * beat_s, rng)
        if not notes:
            continue
        patterns[part.role] = pattern
        _, level_db, (p_lo, p_hi), send = ROLE_MIX[part.role]
        pan = float(rng.uniform(p_lo, p_hi)) * side
        side = -side
        tracks.append(Track(part.role, program, is_drum, instrument_name(program, is_drum),
                            notes, pan, level_db + float(rng.uniform(-1.5, 1.5)),
                            send, phrase))
    facts = {"noun": style.noun, "mood": mood, "dynamics": level, "shape": shape,
             "meter_name": meter_name, "form": form_name,
             "sections": [(round(bar * meter.beats * beat_s, 3), form[ids[bar]][0])
                          for bar in range(bars) if bar == 0 or ids[bar] != ids[bar - 1]],
             "key_display": key.display if key else "none", "progression": family,
             "chord_shape": chord_shape, "swing": round(swing, 3), "patterns": patterns,
             "flavor": str(rng.choice(style.flavors)) if style.flavors and rng.random() < 0.5
             else ""}
    room = float(rng.uniform(*style.reverb))
    return Piece(piece_id, piece_id, "procedural", style_name, bpm,
                 key.name if key else "none", meter.beats, seconds, tracks, room, facts)
