"""The clips an evaluation runs on: held-out audio with its caption, tempo, key, meter and style.

    clips, probe, info = load_clips(Path("data/builtin"), 48000, 2, count=32, seconds=10.0)

Clips come from a dataset folder (jenbridge.data.index.scan_dataset). The held-out split is
used when the dataset has one; otherwise every clip, and the report says so. A clip is read
from its start for `seconds` at the model's rate and channel count. Where the manifest says
which clips are consecutive parts of one piece (`piece_id`, `clip`: the built-in dataset cuts
every piece into 10-s clips), a clip shorter than `seconds` is joined with the parts that
follow it into one excerpt (spans do not overlap), so a suite can judge longer stretches of
real music than one file holds. Clips that are still shorter, silent, undecodable or without a
caption are skipped and counted by reason. Choice is
deterministic: evenly spaced through the sorted list, so the pick spreads over the dataset's
pieces and styles instead of taking the first few.

A clip's `label` (what text alignment classifies) is its manifest `tags.style` (the built-in
dataset has one per clip), else its caption.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HELDOUT, TRAIN = "heldout", "train"
SILENT_DB = -60.0


@dataclass(frozen=True)
class EvalClip:
    """audio: float32 (C, N) at the model's rate; bpm / key / meter: condition codes, 0 =
    unknown (jenbridge.conditions); label: the style class for text alignment."""

    path: str
    caption: str
    label: str
    bpm: float
    key: int
    meter: int
    audio: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        return Path(self.path).name


def spread(items: list[Any], count: int) -> list[Any]:
    """`count` items evenly spaced through `items` (all of them when fewer)."""
    if count >= len(items):
        return list(items)
    idx = np.linspace(0, len(items) - 1, count).round().astype(int)
    return [items[i] for i in dict.fromkeys(idx.tolist())]


@dataclass(frozen=True)
class Span:
    """Consecutive index clips of one piece (or one clip alone), read as one excerpt; caption,
    tempo, key and meter are its first part's."""

    parts: tuple[Any, ...]  # jenbridge.data.index.Clip

    path = property(lambda self: self.parts[0].path)
    caption = property(lambda self: self.parts[0].caption)
    bpm = property(lambda self: self.parts[0].bpm)
    key = property(lambda self: self.parts[0].key)
    meter = property(lambda self: self.parts[0].meter)
    split = property(lambda self: self.parts[0].split)

    @property
    def seconds(self) -> float:
        return float(sum(p.seconds for p in self.parts))


def _manifest(root: Path) -> tuple[dict[str, str], dict[str, tuple[str, int]]]:
    """Resolved path -> style tag (rows that have one); path -> (piece, part) (rows that have
    both)."""
    from jenbridge.data.manifest import read_manifest

    entries, _ = read_manifest(root)
    styles = {str(e.path): str(e.tags["style"]) for e in entries
              if isinstance(e.tags.get("style"), str) and e.tags["style"]}
    parts = {str(e.path): (e.piece, e.part) for e in entries if e.piece and e.part >= 0}
    return styles, parts


class ClipSource:
    """A scanned dataset folder that clips are read from (read once per path)."""

    def __init__(self, root: Path, sample_rate: int, channels: int, seconds: float) -> None:
        from jenbridge.data.index import scan_dataset

        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.root, self.sample_rate, self.channels, self.seconds = (
            Path(root), sample_rate, channels, seconds)
        self.index = scan_dataset(root, sample_rate, min_seconds=0.0, check_audio=False)
        self.styles, self.parts = _manifest(self.root)
        self.skipped: Counter[str] = Counter()

    def _spans(self, clips: list[Any]) -> list[Span]:
        """Each clip alone when it is long enough, else joined with the next parts of its
        piece (consecutive indices, same split) until long enough; a part used in one span
        starts no other. Clips that stay short are counted as skipped."""
        by_part = {self.parts[c.path]: c for c in clips if c.path in self.parts}
        used: set[str] = set()
        out = []
        for c in clips:  # sorted by path
            if c.path in used:
                continue
            span = [c]
            piece, part = self.parts.get(c.path, ("", -1))
            while (sum(p.seconds for p in span) + 1e-6 < self.seconds and piece
                   and (nxt := by_part.get((piece, part + len(span)))) is not None
                   and nxt.split == c.split and nxt.path not in used):
                span.append(nxt)
            if sum(p.seconds for p in span) + 1e-6 < self.seconds:
                self.skipped[f"shorter than {self.seconds:g} s"] += 1
                continue
            used.update(p.path for p in span)
            out.append(Span(tuple(span)))
        return out

    def candidates(self, split: str) -> list[Span]:
        """Excerpts of the split (sorted by first path), long enough and with a caption."""
        out = []
        for c in self._spans(sorted(self.index.split(split), key=lambda c: c.path)):
            if not c.caption:
                self.skipped["no caption"] += 1
            else:
                out.append(c)
        return out

    def read(self, clip: Span) -> EvalClip | None:
        from jenbridge.data.audio import AudioError, read_audio, rms_db

        pieces, left = [], self.seconds
        try:
            for part in clip.parts:
                audio, _ = read_audio(part.path, self.sample_rate, self.channels,
                                      seconds=min(part.seconds, left))
                pieces.append(audio)
                left -= part.seconds
        except AudioError:
            self.skipped["undecodable"] += 1
            return None
        n = round(self.seconds * self.sample_rate)
        audio = np.concatenate(pieces, axis=1)
        audio = np.pad(audio, ((0, 0), (0, max(0, n - audio.shape[1]))))[:, :n]
        if rms_db(audio) < SILENT_DB:
            self.skipped["silent"] += 1
            return None
        label = self.styles.get(clip.path, clip.caption)
        return EvalClip(clip.path, clip.caption, label, float(clip.bpm), int(clip.key),
                        int(clip.meter), np.ascontiguousarray(audio, dtype=np.float32))

    def pick(self, candidates: list[Span], count: int) -> list[EvalClip]:
        """Up to `count` readable clips, evenly spread through `candidates`."""
        chosen: list[EvalClip] = []
        pool = list(candidates)
        while pool and len(chosen) < count:
            batch = spread(pool, count - len(chosen))
            taken = {c.path for c in batch}
            pool = [c for c in pool if c.path not in taken]
            chosen += [e for e in (self.read(c) for c in batch) if e is not None]
        return chosen


def load_clips(root: Path, sample_rate: int, channels: int, count: int, seconds: float,
               probe_per_class: int = 8) -> tuple[list[EvalClip], list[EvalClip], dict[str, Any]]:
    """(evaluation clips, probe clips, info).

    Evaluation clips: up to `count` from the held-out split (every clip when there is none).
    Probe clips: up to `probe_per_class` training-split clips of each evaluation label (for the
    text-alignment classifier and the real-audio reference of the Fréchet distance); with no
    held-out split they are drawn from the same clips. info: the split used, counts, skips.
    """
    if count < 1:
        raise ValueError(f"clips must be >= 1, got {count}")
    src = ClipSource(root, sample_rate, channels, seconds)
    splits = {c.split for c in src.index.clips}
    split = HELDOUT if HELDOUT in splits else None
    eval_pool = src.candidates(HELDOUT) if split else sorted(
        (c for s in splits for c in src.candidates(s)), key=lambda c: c.path)
    clips = src.pick(eval_pool, count)
    if not clips:
        raise ValueError(f"dataset {root}: no usable clips of at least {seconds:g} s with a "
                         f"caption (skipped: {dict(src.skipped) or 'none listed'})")
    wanted = {c.label for c in clips}
    probe_pool = src.candidates(TRAIN) if split else eval_pool
    by_label: dict[str, list[Span]] = {}
    for c in probe_pool:
        label = src.styles.get(c.path, c.caption)
        if label in wanted:
            by_label.setdefault(label, []).append(c)
    probe: list[EvalClip] = []
    for label in sorted(by_label):
        probe += src.pick(by_label[label], probe_per_class)
    info = {"dataset": str(Path(root).resolve()),
            "split": split or "all (the dataset has no held-out split)",
            "clips": len(clips), "probe_clips": len(probe), "seconds": seconds,
            "labels": dict(Counter(c.label for c in clips)),
            "skipped": dict(src.skipped)}
    return clips, probe, info
