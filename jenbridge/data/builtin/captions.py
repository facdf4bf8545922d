"""Captions and structured tags for built-in pieces.

A caption is one of several sentence templates filled from the piece's facts (style, mood,
instruments and what they play, dynamics, tempo, key, meter; composer, title and ensemble for
music21 works). Tempo, key and meter are each left out of some captions on purpose, so the model
also learns them from the separate bpm/key/meter conditions rather than only from text. Tags
carry the same facts as fields, always complete.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import numpy as np

from jenbridge.data.builtin.piece import Piece
from jenbridge.data.builtin.styles import DYNAMICS

P_TEMPO, P_KEY, P_METER_44, P_METER_OTHER = 0.7, 0.65, 0.15, 0.6
SHAPE_WORDS = {"steady": "", "crescendo": "building gradually",
               "decrescendo": "settling down as it goes", "swell": "swelling and receding"}
CORPUS_MOODS = {("minor", False): ("solemn", "mournful", "sombre"),
                ("minor", True): ("restless", "urgent", "driving"),
                ("major", False): ("serene", "gentle", "stately"),
                ("major", True): ("lively", "cheerful", "bright")}
_AN_EXCEPTIONS = ("eu", "uni", "one", "use")


def article(word: str) -> str:
    """"a" or "an" for the word that follows."""
    w = word.lower()
    vowel = w[:1] in "aeiou" and not w.startswith(_AN_EXCEPTIONS)
    return "an" if vowel or w.startswith(("8", "11", "18")) else "a"


def join(items: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    items = [i for i in items if i]
    if not items:
        return ""
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _speed(qpm: float) -> str:
    return "slow" if qpm < 80 else "mid-tempo" if qpm < 112 else "fast"


def _instrument_phrases(piece: Piece) -> list[str]:
    out = []
    for t in piece.tracks:
        if piece.source == "procedural":
            out.append(f"{t.phrase} on {article(t.instrument)} {t.instrument}" if t.is_drum
                       else t.phrase)
    return out


def _conditions(piece: Piece, rng: np.random.Generator) -> dict[str, str]:
    """Tempo, key and meter: as clauses ("at 120 BPM") and bare ("120 BPM") for tag-style
    captions; each is empty when this caption leaves it out."""
    meter_name = piece.facts["meter_name"]
    p_meter = P_METER_44 if meter_name == "4/4" else P_METER_OTHER
    bpm = f"{piece.bpm:g} BPM"
    out = dict.fromkeys(("tempo", "key", "meter", "tempo_tag", "key_tag", "meter_tag"), "")
    if rng.random() < P_TEMPO:
        out["tempo_tag"] = bpm
        out["tempo"] = str(rng.choice([f"at {bpm}", f"at a tempo of {bpm}",
                                       f"at {piece.bpm:g} beats per minute"]))
    if piece.key != "none" and rng.random() < P_KEY:
        display = piece.facts["key_display"]
        out["key_tag"] = display
        out["key"] = str(rng.choice([f"in {display}", f"in the key of {display}"]))
    if rng.random() < p_meter:
        out["meter_tag"] = f"{meter_name} time"
        out["meter"] = f"in {meter_name} time"
    return out


def _where(c: dict[str, str]) -> str:
    return ", ".join(x for x in (c["tempo"], c["key"], c["meter"]) if x)


def _procedural(piece: Piece, rng: np.random.Generator) -> str:
    f = piece.facts
    c = _conditions(piece, rng)
    words = [f["mood"]] + ([f["flavor"]] if f["flavor"] else [])
    head = " ".join([*words, f["noun"]])
    dyn = str(rng.choice(DYNAMICS[f["dynamics"]][1]))
    shape = SHAPE_WORDS[f["shape"]] if f.get("shape_heard", True) else ""
    parts = _instrument_phrases(piece)
    where = _where(c)
    templates: list[Callable[[], str]] = [
        lambda: f"{_cap(article(head))} {head}{' ' + where if where else ''}, with "
                f"{join(parts)}.{' ' + _cap(shape) + '.' if shape else ''}",
        lambda: f"{_cap(join(parts))} in {article(f['mood'])} {f['mood']} {f['noun']}"
                f"{' ' + where if where else ''}; the playing is {dyn}"
                f"{', ' + shape if shape else ''}.",
        lambda: f"{_cap(article(dyn))} {dyn}, {f['mood']} {piece.style} piece"
                f"{' ' + where if where else ''}. Featuring {join(parts)}.",
        lambda: ", ".join(x for x in [piece.style, f["mood"],
                                      *dict.fromkeys(t.instrument for t in piece.tracks),
                                      c["tempo_tag"], c["key_tag"], c["meter_tag"]] if x),
        lambda: f"{_cap(f['noun'])}, {f['mood']} and {dyn}: {join(parts)}"
                f"{'. Played ' + where if where else ''}.",
    ]
    return templates[int(rng.integers(len(templates)))]()


def _music21(piece: Piece, rng: np.random.Generator) -> str:
    f = piece.facts
    c = _conditions(piece, rng)
    where = _where(c)
    qpm = piece.bpm * 4 / int(f["meter_name"].split("/")[1])
    mode = "minor" if piece.key.endswith("minor") else "major"
    mood = str(rng.choice(CORPUS_MOODS[(mode, qpm >= 100)]))
    players = [t.instrument for t in piece.tracks]
    if f["ensemble"] == "folk":
        ensemble = f"{players[0]} with {players[-1]} accompaniment"
    else:
        ensemble = f["ensemble"]
    by = "a traditional" if f["composer"] == "traditional" else f"{f['composer']}'s"
    form = f["form"]
    extra = "an excerpt of " if f["excerpt"] else ""
    times = {1: "", 2: ", played twice through", 3: ", played three times through"}
    templates: list[Callable[[], str]] = [
        lambda: f"{extra}{by} {form} \"{f['title']}\" arranged for {ensemble}"
                f"{', ' + where if where else ''}{times[f['repeats']]}.",
        lambda: f"{_cap(article(mood))} {mood}, {_speed(qpm)} rendition of {by} {form} "
                f"\"{f['title']}\" performed by {article(ensemble)} {ensemble}"
                f"{' ' + where if where else ''}.",
        lambda: f"{_cap(article(ensemble))} {ensemble} plays {extra}\"{f['title']}\", "
                f"{article(form)} {form}"
                f"{' by ' + f['composer'] if f['composer'] != 'traditional' else ''}"
                f"{'; ' + where if where else ''}.",
        lambda: ", ".join(x for x in [form, f["composer"], *dict.fromkeys(players), mood,
                                      c["tempo_tag"], c["key_tag"], c["meter_tag"]] if x),
    ]
    return _cap(templates[int(rng.integers(len(templates)))]())


CAPTIONERS: dict[str, Callable[[Piece, np.random.Generator], str]] = {
    "procedural": _procedural, "music21": _music21}


def clip_view(piece: Piece, start: float, end: float) -> Piece:
    """The piece as heard in [start, end) seconds: only the tracks that play there, and (for
    procedural pieces) only the sections it spans, so a clip's caption and tags describe it.
    The piece's dynamic shape is only worth a caption when the clip is most of the piece."""
    tracks = [t for t in piece.tracks if any(n.start < end and n.end > start for n in t.notes)]
    facts = dict(piece.facts, shape_heard=end - start >= 0.5 * piece.seconds)
    if "sections" in facts:
        marks = facts["sections"]
        facts["sections"] = [name for i, (t, name) in enumerate(marks)
                             if t < end and (i + 1 == len(marks) or marks[i + 1][0] > start)]
    return replace(piece, tracks=tracks or piece.tracks, facts=facts)


def caption(piece: Piece, rng: np.random.Generator) -> str:
    """A natural-language caption of the piece (templates and omissions drawn from rng)."""
    return CAPTIONERS[piece.source](piece, rng)


def tags(piece: Piece) -> dict[str, Any]:
    """Structured facts of the piece: always complete, whatever the caption left out."""
    f = piece.facts
    out: dict[str, Any] = {
        "source": piece.source, "style": piece.style,
        "instruments": list(dict.fromkeys(t.instrument for t in piece.tracks)),
        "bpm": piece.bpm, "key": piece.key, "meter": piece.meter,
        "time_signature": f["meter_name"], "dynamics": f["dynamics"]}
    if piece.source == "procedural":
        roles = {t.role: t.instrument for t in piece.tracks}
        out.update(mood=f["mood"], dynamics_shape=f["shape"], form=f["form"],
                   sections=f["sections"], swing=f["swing"], roles=roles,
                   patterns={r: p for r, p in f["patterns"].items() if r in roles})
    else:
        out.update(composer=f["composer"], title=f["title"], form=f["form"],
                   ensemble=f["ensemble"], collection=f["collection"], work=f["work"],
                   excerpt=f["excerpt"], repeats=f["repeats"])
    return out
