"""Real compositions from the music21 corpus, arranged for a chosen ensemble.

COLLECTIONS says which corpus files make up each collection (Bach chorales, German folk songs
from the Essen collection, Irish and Scottish dance tunes, string quartet movements, Renaissance
polyphony, a few classics), how fast they are played and for which ensembles. A piece takes one
work (or a window of a long one), keeps its notes and time signature, plays it at a tempo drawn
from the collection's range, finds its key from the notes it renders (Krumhansl-Schmuckler), and
gives melody-only tunes a chordal accompaniment harmonized bar by bar from the tune itself.
Works that fail to parse, have no time signature or change their meter are skipped and counted.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from jenbridge.conditions import check_bpm
from jenbridge.data.builtin.harmony import Chord, Key, estimate_key, fit, make_chord, nearest
from jenbridge.data.builtin.instruments import instrument_name
from jenbridge.data.builtin.piece import Note, Piece, Track
from jenbridge.data.builtin.styles import DYNAMICS


@dataclass(frozen=True)
class Collection:
    """A group of corpus works that are played and described alike."""

    form: str                         # caption noun: "chorale"
    pattern: str                      # regex over corpus-relative paths
    numbered: bool                    # ABC files holding many tunes (X: numbers)
    tempo: tuple[float, float]        # quarter notes per minute
    ensembles: tuple[str, ...]
    weight: float
    room: tuple[float, float] = (0.3, 0.6)


COLLECTIONS: dict[str, Collection] = {
    "bach chorales": Collection(
        "chorale", r"^bach/bwv(\d+\.\d+|[2-4]\d\d)\.mxl$", False, (60, 92),
        ("string quartet", "church organ", "brass quartet", "woodwind quartet", "choir",
         "saxophone quartet", "piano", "string orchestra"), 0.3, (0.5, 0.9)),
    "essen folk songs": Collection(
        "German folk song", r"^essenFolksong/.*\.abc$", True, (80, 126), ("folk",), 0.2,
        (0.2, 0.5)),
    "dance tunes": Collection(
        "traditional dance tune", r"^(oneills1850|ryansMammoth|airdsAirs)/.*\.abc$", True,
        (96, 132), ("folk",), 0.2, (0.2, 0.5)),
    "string quartets": Collection(
        "string quartet movement",
        r"^(mozart|haydn)/.*\.mxl$|^beethoven/opus(18|59)no\d/movement\d\.mxl$", False,
        (66, 132), ("string quartet", "string quartet", "string orchestra", "woodwind quartet",
                    "piano"), 0.15, (0.4, 0.7)),
    "renaissance polyphony": Collection(
        "Renaissance polyphonic piece",
        r"^palestrina/.*\.krn$|^monteverdi/madrigal\.\d+\.\d+\.mxl$", False, (70, 110),
        ("choir", "brass quartet", "church organ", "string quartet"), 0.1, (0.6, 0.95)),
    "classics": Collection(
        "classical piece",
        r"^(joplin|chopin|schubert|handel|verdi|beach)/.*\.(mxl|xml|krn|musicxml)$", False,
        (60, 110), ("piano", "clarinet and piano"), 0.05, (0.3, 0.6)),
}

# Ensemble -> GM programs from the top part down (the last repeats for extra parts).
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "string quartet": (40, 40, 41, 42),
    "string orchestra": (48,),
    "church organ": (19,),
    "brass quartet": (56, 60, 57, 58),
    "woodwind quartet": (73, 68, 71, 70),
    "saxophone quartet": (64, 65, 66, 67),
    "choir": (52,),
    "piano": (0,),
    "clarinet and piano": (71, 0),
}
FOLK_MELODY = (110, 73, 78, 21, 22, 68, 71, 40, 105)
FOLK_ACCOMPANIMENT = (25, 24, 0, 46, 21)
COMPOSERS = {"bach": "J. S. Bach", "mozart": "W. A. Mozart", "haydn": "Joseph Haydn",
             "beethoven": "Ludwig van Beethoven", "palestrina": "Palestrina",
             "monteverdi": "Claudio Monteverdi", "joplin": "Scott Joplin",
             "chopin": "Frederic Chopin", "schubert": "Franz Schubert", "handel": "G. F. Handel",
             "verdi": "Giuseppe Verdi", "beach": "Amy Beach"}
TITLES = [(r"^bwv(.+)$", r"BWV \1"), (r"^k(\d+)/movement(\d+)$", r"K. \1, movement \2"),
          (r"^opus(\d+)no(\d+)/movement(\d+)$", r"Op. \1 No. \2, movement \3"),
          (r"^madrigal\.(\d+)\.(\d+)$", r"Madrigal \1.\2")]
DANCES = ("reel", "jig", "hornpipe", "strathspey", "polka", "waltz", "march", "slide", "air")
ATTEMPTS = 6  # works tried for one piece before it is given up


class Unusable(Exception):
    """A work that parsed but cannot be used here (no or changing meter, too short, ...)."""


@functools.lru_cache(maxsize=1)
def catalogue() -> dict[str, list[tuple[str, int | None]]]:
    """Collection -> sorted works (corpus-relative path, tune number or None)."""
    from music21 import common, corpus

    root = Path(common.getCorpusFilePath())
    paths = sorted((Path(p).relative_to(root).as_posix(), Path(p)) for p in corpus.getCorePaths())
    out: dict[str, list[tuple[str, int | None]]] = {}
    for name, col in COLLECTIONS.items():
        works: list[tuple[str, int | None]] = []
        for rel, full in paths:
            if not re.search(col.pattern, rel):
                continue
            if col.numbered:
                text = full.read_text(errors="replace")
                works += [(rel, int(x)) for x in re.findall(r"^X:\s*(\d+)", text, re.M)]
            else:
                works.append((rel, None))
        out[name] = works
    return out


def work_id(path: str, number: int | None) -> str:
    return f"music21:{path}" + (f"#{number}" if number is not None else "")


def _title(path: str, number: int | None, meta_title: str | None) -> str:
    if meta_title and meta_title.strip(' "'):
        title = meta_title.strip(' "').split(" -- ")[0]
        return title.title() if title.isupper() else title
    stem = re.sub(r"\.(mxl|xml|krn|abc|musicxml)$", "", path.split("/", 1)[1])
    for pattern, repl in TITLES:
        stem = re.sub(pattern, repl, stem)
    return stem.replace("_", " ") + (f" no. {number}" if number is not None else "")


def _parts(score) -> tuple[list[list[tuple[float, float, int, int]]], str]:
    """Per part: (start q, length q, pitch, velocity) from the score; and its time signature."""
    from music21 import dynamics, harmony, meter

    sigs = {(ts.numerator, ts.denominator)
            for ts in score.recurse().getElementsByClass(meter.TimeSignature)}
    if len(sigs) != 1:
        raise Unusable("no time signature" if not sigs else "changing time signature")
    num, den = sigs.pop()
    parts = []
    for part in score.parts:
        flat = part.stripTies().flatten()
        marks = [(float(d.offset), d.volumeScalar)
                 for d in flat.getElementsByClass(dynamics.Dynamic) if d.volumeScalar is not None]
        notes = []
        for n in flat.notes:
            length = float(n.duration.quarterLength)
            if isinstance(n, harmony.ChordSymbol) or length <= 0:
                continue
            start = float(n.offset)
            level = next((v for t, v in reversed(marks) if t <= start + 1e-9), None)
            vel = 0 if level is None else int(30 + 90 * level)  # 0 = no marking
            notes += [(start, length, int(p.midi), vel) for p in n.pitches]
        if notes:
            parts.append(sorted(notes))
    if not parts:
        raise Unusable("no notes")
    return parts, f"{num}/{den}"


def _harmonize(melody: list[tuple[float, float, int, int]], key: Key, bar_q: float,
               total_q: float) -> list[tuple[float, Chord]]:
    """A diatonic triad per bar, the one whose tones cover most of that bar's melody."""
    chords = []
    bars = max(1, math.ceil(total_q / bar_q - 1e-9))
    for b in range(bars):
        lo, hi = b * bar_q, (b + 1) * bar_q
        weight = [0.0] * 12
        for s, length, p, _ in melody:
            overlap = min(hi, s + length) - max(lo, s)
            if overlap > 0:
                weight[p % 12] += overlap
        options = [make_chord(key, d, "triad", True) for d in (0, 3, 4, 5, 1)]
        scores = [sum(weight[pc] for pc in c.tones) + (0.3 if c.degree == 0 else 0.0)
                  for c in options]
        chords.append((lo, options[int(np.argmax(scores))]))
    return chords


def _accompany(chords: list[tuple[float, Chord]], num: int, den: int, qpm: float,
               velocity: int) -> list[Note]:
    """Bass note on the first pulse of each bar and the chord on every pulse."""
    pulse_q = 1.5 if den == 8 and num % 3 == 0 else 4 / den
    bar_q = num * 4 / den
    sec = 60.0 / qpm
    out, prev = [], None
    for start, chord in chords:
        bass = fit(nearest(chord.root, 43), 36, 52)
        prev = sorted(nearest(pc, 62) for pc in chord.tones) if prev is None else \
            sorted(min((nearest(pc, q) for q in prev), key=lambda x: abs(x - 62))
                   for pc in chord.tones)
        t = start
        while t < start + bar_q - 1e-9:
            pitches = ([bass] if t == start else []) + list(prev)
            length = min(pulse_q, start + bar_q - t) * 0.9 * sec
            v = velocity if t == start else int(velocity * 0.8)
            out += [Note(t * sec, t * sec + length, p, v) for p in pitches]
            t += pulse_q
    return out


def _load(path: str, number: int | None):
    from music21 import corpus

    with warnings.catch_warnings():  # music21 warns about every overfull measure it repairs
        warnings.simplefilter("ignore")
        return corpus.parse(path, number=number) if number is not None else corpus.parse(path)


def corpus_piece(rng: np.random.Generator, seconds: float, clip_seconds: float,
                 piece_id: str) -> tuple[Piece | None, list[str]]:
    """A piece from the corpus lasting a whole number of clips, at most `seconds`.

    Returns (piece or None, the works skipped on the way as "reason: work id").
    """
    names = sorted(COLLECTIONS)
    weights = np.array([COLLECTIONS[n].weight for n in names])
    skipped: list[str] = []
    for _ in range(ATTEMPTS):
        name = names[int(rng.choice(len(names), p=weights / weights.sum()))]
        works = catalogue()[name]
        if not works:
            skipped.append(f"collection not in this music21 corpus: {name}")
            continue
        path, number = works[int(rng.integers(len(works)))]
        try:
            score = _load(path, number)
            piece = _arrange(score, name, path, number, rng, seconds, clip_seconds, piece_id)
        except Unusable as err:
            skipped.append(f"{err.args[0]}: {work_id(path, number)}")
            continue
        except Exception as err:  # music21 raises many types on odd files: skip and count
            skipped.append(f"parse error ({type(err).__name__}): {work_id(path, number)}")
            continue
        return piece, skipped
    return None, skipped


def _arrange(score, name: str, path: str, number: int | None, rng: np.random.Generator,
             seconds: float, clip_seconds: float, piece_id: str) -> Piece:
    col = COLLECTIONS[name]
    parts, sig = _parts(score)
    num, den = (int(x) for x in sig.split("/"))
    bpm = check_bpm(round(float(rng.uniform(*col.tempo)) * den / 4))
    qpm = bpm * 4 / den
    sec = 60.0 / qpm
    total_q = max(s + length for p in parts for s, length, _, _ in p)
    # a long work gives a window from a bar line; a short one is played up to 3 times through
    bar_q = num * 4 / den
    wanted_q = seconds / sec
    repeats = int(min(3, max(1, math.ceil(wanted_q / total_q))))
    start_q = 0.0
    if total_q > wanted_q:
        start_q = bar_q * int(rng.integers(0, int((total_q - wanted_q) // bar_q) + 1))
    span_q = min(wanted_q, total_q * repeats - start_q)
    clips = int(span_q * sec / clip_seconds + 1e-6)
    if clips < 1:
        raise Unusable("too short for one clip")
    keep_s = clips * clip_seconds

    level = str(rng.choice(["soft", "medium", "medium", "loud"]))
    lo, hi = DYNAMICS[level][0]
    ensemble = "folk" if col.ensembles == ("folk",) else str(rng.choice(col.ensembles))
    melody_only = len(parts) == 1
    programs = ENSEMBLES.get(ensemble, (int(rng.choice(FOLK_MELODY)),))
    width = float(rng.uniform(0.35, 0.8)) * (1 if rng.random() < 0.5 else -1)
    tracks = []
    for i, notes in enumerate(parts):
        program = programs[min(i, len(programs) - 1)]
        out = []
        for r in range(repeats):
            for s, length, pitch, vel in notes:
                t = s + r * total_q - start_q
                if 0 <= t * sec < keep_s:
                    accent = 1.1 if (s % bar_q) < 1e-6 else 1.0
                    v = vel or int((lo + (hi - lo) * rng.uniform(0.5, 0.9)) * accent)
                    out.append(Note(t * sec, (t + length) * sec, pitch, max(1, min(127, v))))
        pan = 0.0 if len(parts) == 1 else width * (2 * i / (len(parts) - 1) - 1)
        tracks.append(Track(f"voice{i + 1}", program, False, instrument_name(program), out,
                            pan, 1.0 if i == 0 else 0.0, 0.35))
    all_notes = [n for t in tracks for n in t.notes]
    if not all_notes:
        raise Unusable("no notes in the window")
    key = estimate_key([n.pitch for n in all_notes], [n.end - n.start for n in all_notes])
    accompaniment = None
    if melody_only:
        melody = [(n.start / sec, (n.end - n.start) / sec, n.pitch, 0) for n in tracks[0].notes]
        program = int(rng.choice([p for p in FOLK_ACCOMPANIMENT if p != programs[0]]))
        chords = _harmonize(melody, key, bar_q, keep_s / sec)
        backing = [n for n in _accompany(chords, num, den, qpm, int((lo + hi) / 2))
                   if n.start < keep_s]
        accompaniment = instrument_name(program)
        tracks.append(Track("accompaniment", program, False, accompaniment, backing,
                            -tracks[0].pan or float(rng.uniform(-0.4, 0.4)), -4.0, 0.3))
    meta = score.metadata
    title = _title(path, number, getattr(meta, "title", None) if meta else None)
    composer = COMPOSERS.get(path.split("/")[0]) or (meta.composer if meta else None) or \
        "traditional"
    raw_title = (getattr(meta, "title", None) if meta else None) or ""
    dance = next((d for d in DANCES if re.search(rf"\b{d}\b", raw_title, re.I)), None)
    facts = {"form": dance or col.form, "collection": name, "title": title,
             "composer": composer, "ensemble": ensemble, "accompaniment": accompaniment,
             "repeats": max(1, math.ceil(keep_s / (total_q * sec) - 1e-9)),
             "excerpt": start_q > 0,
             "dynamics": level, "meter_name": sig, "key_display": key.display,
             "work": work_id(path, number)}
    return Piece(piece_id, work_id(path, number), "music21", name, float(bpm), key.name, num,
                 keep_s, tracks, float(rng.uniform(*col.room)), facts)
