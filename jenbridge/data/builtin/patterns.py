"""Pitched pattern generators: bass lines, accompaniment, melodies, riffs, counter-lines.

Each generator is registered in PATTERNS under the name styles.py uses, with the caption phrase
that describes it ("{inst}" becomes the instrument name, "{a}" its article). One signature:

    generate(ctx, rng, role, low, high) -> list[BeatNote]

ctx is the piece's Context (bars, meter, chords, sections, dynamics), role names the part (so
sections can rest it), [low, high] is the MIDI range to play in. Times are in beats.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from jenbridge.data.builtin.harmony import Chord, fit, nearest, scale_pitches, voicing
from jenbridge.data.builtin.piece import BeatNote, Context

Generator = Callable[[Context, np.random.Generator, str, int, int], list[BeatNote]]
PATTERNS: dict[str, tuple[str, Generator]] = {}


def _register(name: str, phrase: str) -> Callable[[Generator], Generator]:
    def add(fn: Generator) -> Generator:
        PATTERNS[name] = (phrase, fn)
        return fn
    return add


# One-bar rhythms on the 4/4 sixteenth grid; other meters use their pulses instead.
GROOVES = ["x..x..x.x...x.x.", "x.....x.x..x....", "x..x...xx.x..x..", "x.x...x...x.x..."]
STABS = ["..x...x...x...x.", "x..x..x...x..x..", "..x..x....x..x..", ".x..x.x..x..x.x."]
BOSSA = "x..x..x...x..x.."


def _segments(ctx: Context, bar: int) -> list[tuple[float, float, Chord]]:
    """(start, end, chord) spans of `bar`, split where the chord changes."""
    b0, b1 = bar * ctx.bar_beats, (bar + 1) * ctx.bar_beats
    starts = [float(b0)] + [s for s, _ in ctx.chords if b0 < s < b1]
    return [(s, e, ctx.chord_at(s)) for s, e in zip(starts, [*starts[1:], float(b1)])]


def _hits(ctx: Context, grid: str) -> list[float]:
    """Beat offsets within a bar: from a 4/4 sixteenth grid, else the meter's pulses and offs."""
    if ctx.meter.name == "4/4":
        return [i / 4 for i, c in enumerate(grid) if c == "x"]
    pulses = list(ctx.meter.pulses)
    offs = [(a + b) / 2 for a, b in zip(pulses, [*pulses[1:], ctx.bar_beats])]
    return sorted(pulses + offs[1::2])


def _offbeats(ctx: Context) -> list[float]:
    pulses = list(ctx.meter.pulses)
    return [(a + b) / 2 for a, b in zip(pulses, [*pulses[1:], ctx.bar_beats])]


def _root(chord: Chord, low: int, high: int) -> int:
    return fit(nearest(chord.root, low + 7), low, high)


def _bars(ctx: Context, role: str) -> list[int]:
    return [bar for bar in range(ctx.bars) if ctx.active(role, bar)]


@_register("root_pulse", "a driving {inst} pulsing on the root")
def root_pulse(ctx, rng, role, low, high):
    step = 0.5 * ctx.q
    out = []
    for bar in _bars(ctx, role):
        for s, e, chord in _segments(ctx, bar):
            pitch, t = _root(chord, low, high), s
            while t < e - 1e-9:
                weight = 1.0 if (t - bar * ctx.bar_beats) % ctx.q < 1e-9 else 0.8
                out.append(BeatNote(t, step * 0.85, pitch, ctx.velocity(t, weight)))
                t += step
    return out


@_register("offbeat_bass", "an off-beat {inst} line")
def offbeat_bass(ctx, rng, role, low, high):
    out = []
    for bar in _bars(ctx, role):
        for off in _offbeats(ctx):
            t = bar * ctx.bar_beats + off
            pitch = _root(ctx.chord_at(t), low, high)
            out.append(BeatNote(t, 0.4 * ctx.q, pitch, ctx.velocity(t)))
    return out


@_register("sub", "a deep {inst}")
def sub(ctx, rng, role, low, high):
    again = rng.random() < 0.5  # re-strike late in the bar for a rolling feel
    out = []
    for bar in _bars(ctx, role):
        for s, e, chord in _segments(ctx, bar):
            pitch = _root(chord, low, high)
            split = s + 2.5 * ctx.q
            if again and split < e - 0.5:
                out += [BeatNote(s, split - s, pitch, ctx.velocity(s)),
                        BeatNote(split, e - split, pitch, ctx.velocity(split, 0.85))]
            else:
                out.append(BeatNote(s, e - s, pitch, ctx.velocity(s)))
    return out


@_register("sustain", "sustained {inst} notes on the chord roots")
def sustain(ctx, rng, role, low, high):
    out = []
    for bar in _bars(ctx, role):
        marks = [bar * ctx.bar_beats + b for b in ctx.meter.strong]
        for s, e, chord in _segments(ctx, bar):
            starts = sorted({s, *[m for m in marks if s < m < e]})
            for a, b in zip(starts, [*starts[1:], e]):
                out.append(BeatNote(a, b - a, _root(chord, low, high), ctx.velocity(a, 0.9)))
    return out


@_register("walking", "a walking {inst} line")
def walking(ctx, rng, role, low, high):
    hi = min(high, low + 21)
    out = []
    for bar in _bars(ctx, role):
        pulses = [bar * ctx.bar_beats + p for p in ctx.meter.pulses]
        chord = ctx.chord_at(pulses[0])
        target = _root(ctx.chord_at((bar + 1) * ctx.bar_beats), low, hi)
        line = scale_pitches(chord.scale, low, hi)
        pitch = _root(chord, low, hi)
        for i, t in enumerate(pulses):
            if i == len(pulses) - 1 and i > 0:
                pitch = target + (1 if rng.random() < 0.5 else -1)  # chromatic approach
            elif i > 0:
                toward = 1 if target > pitch else -1
                idx = min(range(len(line)), key=lambda j: abs(line[j] - pitch))
                idx = int(np.clip(idx + toward * int(rng.integers(1, 3)), 0, len(line) - 1))
                pitch = line[idx]
            end = pulses[i + 1] if i + 1 < len(pulses) else (bar + 1) * ctx.bar_beats
            out.append(BeatNote(t, (end - t) * 0.9, pitch, ctx.velocity(t, 0.9 + 0.1 * (i == 0))))
    return out


@_register("bossa", "{a} {inst} playing root-and-fifth bossa figures")
def bossa_bass(ctx, rng, role, low, high):
    figure = [(0.0, 1.5, 0), (1.5, 0.5, 7), (2.0, 1.5, 7), (3.5, 0.5, 0)]  # quarters, interval
    out = []
    for bar in _bars(ctx, role):
        for start, length, interval in figure:
            t = bar * ctx.bar_beats + start * ctx.q
            if t - bar * ctx.bar_beats >= ctx.bar_beats:
                continue
            pitch = fit(_root(ctx.chord_at(t), low, high) + interval, low, high)
            out.append(BeatNote(t, length * ctx.q * 0.9, pitch, ctx.velocity(t, 0.9)))
    return out


@_register("groove", "a syncopated {inst} groove")
def groove(ctx, rng, role, low, high):
    hits = _hits(ctx, GROOVES[int(rng.integers(len(GROOVES)))])
    out = []
    for bar in _bars(ctx, role):
        for i, off in enumerate(hits):
            t = bar * ctx.bar_beats + off
            nxt = hits[i + 1] if i + 1 < len(hits) else ctx.bar_beats
            root = _root(ctx.chord_at(t), low, high)
            move = 0 if i == 0 else int(rng.choice([0, 12, 7, -2], p=[0.5, 0.2, 0.2, 0.1]))
            out.append(BeatNote(t, min(nxt - off, ctx.q) * 0.85, fit(root + move, low, high),
                                ctx.velocity(t, 1.0 if i == 0 else 0.85)))
    return out


def _chords_at(ctx: Context, role: str, offsets: Callable[[int], list[float]], length: float,
               center: float, rootless: bool = False) -> list[BeatNote]:
    """A voiced chord at each offsets(bar) of every active bar, voice-led from the last one."""
    out: list[BeatNote] = []
    prev = None
    for bar in _bars(ctx, role):
        for off in offsets(bar):
            t = bar * ctx.bar_beats + off
            chord = ctx.chord_at(t)
            if rootless and len(chord.tones) >= 4:
                chord = Chord(chord.degree, chord.tones[1:], chord.scale)
            prev = voicing(chord, center, prev)
            out += [BeatNote(t, length, p, ctx.velocity(t, 0.8)) for p in prev]
    return out


@_register("block", "sustained {inst} chords")
def block(ctx, rng, role, low, high):
    out, prev = [], None
    center = (low + high) / 2
    for bar in _bars(ctx, role):
        for s, e, chord in _segments(ctx, bar):
            prev = voicing(chord, center, prev)
            out += [BeatNote(s, e - s, p, ctx.velocity(s, 0.75)) for p in prev]
    return out


@_register("stabs", "{inst} chord stabs")
def stabs(ctx, rng, role, low, high):
    hits = _hits(ctx, STABS[int(rng.integers(len(STABS)))])
    return _chords_at(ctx, role, lambda bar: hits, 0.22 * ctx.q, (low + high) / 2)


@_register("offbeat", "{inst} chords skanking on the off-beats")
def offbeat(ctx, rng, role, low, high):
    offs = _offbeats(ctx)
    return _chords_at(ctx, role, lambda bar: offs, 0.3 * ctx.q, (low + high) / 2)


@_register("bossa_comp", "{inst} comping in a bossa rhythm")
def bossa_comp(ctx, rng, role, low, high):
    hits = _hits(ctx, BOSSA)
    return _chords_at(ctx, role, lambda bar: hits, 0.45 * ctx.q, (low + high) / 2)


@_register("pulse", "{inst} chords pulsing in eighth notes")
def pulse(ctx, rng, role, low, high):
    offsets = [float(x) for x in np.arange(0, ctx.bar_beats, 0.5 * ctx.q)]
    return _chords_at(ctx, role, lambda bar: offsets, 0.45 * ctx.q, (low + high) / 2)


@_register("comp", "comping {inst}")
def comp(ctx, rng, role, low, high):
    eighths = np.arange(0, ctx.bar_beats, 0.5 * ctx.q)
    weights = np.array([1.0 if i % 2 == 0 else 2.0 for i in range(len(eighths))])
    length = float(rng.choice([0.4, 0.9])) * ctx.q

    def picks(bar: int) -> list[float]:
        k = min(int(rng.integers(2, 4)), len(eighths))
        return sorted(float(x) for x in rng.choice(eighths, size=k, replace=False,
                                                   p=weights / weights.sum()))
    center = float(np.clip(60, low + 6, high - 6))
    return _chords_at(ctx, role, picks, length, center, rootless=True)


@_register("strum", "strummed {inst}")
def strum(ctx, rng, role, low, high):
    out, prev = [], None
    step = 0.5 * ctx.q
    for bar in _bars(ctx, role):
        for s, e, chord in _segments(ctx, bar):
            prev = voicing(chord, (low + high) / 2 - 4, prev, size=max(3, len(chord.tones)))
            t = s
            while t < e - 1e-9:
                weight = 0.95 if ((t - s) / step) % 2 < 1e-9 else 0.7  # down / up stroke
                out += [BeatNote(t + 0.01 * i, step * 0.9, p, ctx.velocity(t, weight))
                        for i, p in enumerate(prev)]
                t += step
    return out


@_register("arpeggio", "arpeggiated {inst}")
def arpeggio(ctx, rng, role, low, high):
    step = float(rng.choice([0.25, 0.5])) * ctx.q
    order = str(rng.choice(["up", "updown", "down"]))
    out = []
    for bar in _bars(ctx, role):
        for s, e, chord in _segments(ctx, bar):
            base = voicing(chord, (low + high) / 2 - 3)
            tones = base + [p + 12 for p in base[: max(1, 5 - len(base))]]
            seq = {"up": tones, "down": tones[::-1], "updown": tones + tones[-2:0:-1]}[order]
            t, i = s, 0
            while t < e - 1e-9:
                out.append(BeatNote(t, step * 1.6, fit(seq[i % len(seq)], low, high),
                                    ctx.velocity(t, 0.85 if i % len(seq) else 0.95)))
                t, i = t + step, i + 1
    return out


@_register("alberti", "{inst} with a broken-chord accompaniment")
def alberti(ctx, rng, role, low, high):
    step = 0.5 * ctx.q
    out = []
    for bar in _bars(ctx, role):
        for s, e, chord in _segments(ctx, bar):
            v = voicing(chord, max(low + 12, 55), size=3)
            figure = [v[0], v[2], v[1], v[2]]
            t, i = s, 0
            while t < e - 1e-9:
                out.append(BeatNote(t, step, figure[i % 4], ctx.velocity(t, 0.8 if i % 4 else 0.9)))
                t, i = t + step, i + 1
    return out


def _phrase_rhythm(ctx: Context, rng: np.random.Generator, bars: int) -> list[tuple[float, float]]:
    """(offset, length) in beats over `bars` bars; negative length = a rest."""
    values = np.array([0.5, 1.0, 1.5, 2.0, 0.25]) * ctx.q
    weights = np.array([0.35, 0.3, 0.12, 0.13, 0.1])
    out, t, end = [], 0.0, bars * ctx.bar_beats
    while t < end - 1e-9:
        length = min(float(rng.choice(values, p=weights)), end - t)
        out.append((t, -length if rng.random() < 0.12 and t > 0 else length))
        t += length
    return out


@_register("melody", "{a} {inst} melody")
def melody(ctx, rng, role, low, high):
    center = float(np.clip((low + high) / 2, low + 7, high - 7))
    lo, hi = int(center - 10), int(center + 10)
    motif: list[tuple[float, float]] = []
    contour: list[int] = []
    out, pitch = [], nearest(ctx.chord_at(0).root, center)
    for start in range(0, ctx.bars, 2):
        fresh = not motif or rng.random() < 0.4
        if fresh:
            motif, contour = _phrase_rhythm(ctx, rng, 2), []
        for n, (off, length) in enumerate(motif):
            t = start * ctx.bar_beats + off
            bar = int(t // ctx.bar_beats)
            chord = ctx.chord_at(t)
            line = scale_pitches(chord.scale, lo, hi) or [pitch]
            idx = min(range(len(line)), key=lambda j: abs(line[j] - pitch))
            strong = (t % ctx.bar_beats) in ctx.meter.strong
            if n < len(contour):
                idx += contour[n]
            else:
                move = int(rng.choice([-2, -1, 1, 2, 0], p=[0.15, 0.3, 0.3, 0.15, 0.1]))
                contour.append(move)
                idx += move
            pitch = line[int(np.clip(idx, 0, len(line) - 1))]
            if strong and pitch % 12 not in chord.tones:
                pitch = min((nearest(pc, pitch) for pc in chord.tones),
                            key=lambda p: abs(p - pitch))
            if length > 0 and ctx.active(role, bar):
                out.append(BeatNote(t, length * 0.95, fit(pitch, low, high),
                                    ctx.velocity(t, 1.0 if strong else 0.88)))
    return out


@_register("riff", "a repeating {inst} riff")
def riff(ctx, rng, role, low, high):
    step = float(rng.choice([0.25, 0.5])) * ctx.q
    n = int(round(ctx.bar_beats / step))
    shape = [(i, int(rng.choice([0, 2, 4, 7, 1, -1]))) for i in range(n)
             if i == 0 or rng.random() < 0.55]
    center = float(np.clip((low + high) / 2 - 5, low + 5, high - 12))
    out = []
    for bar in _bars(ctx, role):
        for i, degree_step in shape:
            t = bar * ctx.bar_beats + i * step
            chord = ctx.chord_at(t)
            line = scale_pitches(chord.scale, low, high)
            root = nearest(chord.root, center)
            idx = min(range(len(line)), key=lambda j: abs(line[j] - root)) + degree_step
            out.append(BeatNote(t, step * 0.8, line[int(np.clip(idx, 0, len(line) - 1))],
                                ctx.velocity(t, 0.95 if i == 0 else 0.82)))
    return out


@_register("sparse", "sparse {inst} phrases")
def sparse(ctx, rng, role, low, high):
    out, center = [], float(np.clip(high - 12, low, high))
    for bar in _bars(ctx, role):
        if rng.random() < 0.35:
            continue
        t = bar * ctx.bar_beats + float(rng.choice(ctx.meter.pulses))
        length = float(rng.choice([1.0, 2.0, 3.0])) * ctx.q
        chord = ctx.chord_at(t)
        pitch = nearest(int(rng.choice(chord.tones)), center)
        out.append(BeatNote(t, length, fit(pitch, low, high), ctx.velocity(t, 0.8)))
    return out


@_register("counter", "{inst} counter-lines")
def counter(ctx, rng, role, low, high):
    out, pitch = [], int((low + high) / 2)
    for bar in _bars(ctx, role):
        marks = [bar * ctx.bar_beats + b for b in ctx.meter.strong]
        for s, e, chord in _segments(ctx, bar):
            starts = sorted({s, *[m for m in marks if s < m < e]})
            for a, b in zip(starts, [*starts[1:], e]):
                upper = chord.tones[1:] or chord.tones
                pitch = min((nearest(pc, pitch) for pc in upper), key=lambda p: abs(p - pitch))
                out.append(BeatNote(a, b - a, fit(pitch, low, high), ctx.velocity(a, 0.8)))
    return out


@_register("timpani", "rolling {inst}")
def timpani(ctx, rng, role, low, high):
    out = []
    for bar in _bars(ctx, role):
        t0 = bar * ctx.bar_beats
        root = _root(ctx.chord_at(t0), low, high)
        if ctx.section_start(bar) or (ctx.sections[bar][2] >= 0.9 and bar % 2 == 0):
            out.append(BeatNote(t0, ctx.q, root, ctx.velocity(t0, 1.05)))
        if ctx.section_end(bar) and bar < ctx.bars - 1:
            roll = ctx.q / 4
            t = t0 + ctx.bar_beats - ctx.q
            for i in range(4):
                out.append(BeatNote(t + i * roll, roll, root, ctx.velocity(t, 0.6 + 0.12 * i)))
    return out
