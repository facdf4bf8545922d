"""The clips an evaluation runs on: held-out audio with its caption, tempo, key, meter and style.

    clips, info = load_clips(Path("data/builtin"), 48000, 2, split="heldout", count=32,
                             seconds=10.0)

Clips come from a dataset folder (jenbridge.data.index.scan_dataset). The held-out split is
used when the dataset has one; otherwise every clip, and the report says so. A clip is read
from its start for `seconds` at the model's rate and channel count. Clips that are shorter,
silent, undecodable or without a caption are skipped and counted by reason. Choice is
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


def _labels(root: Path) -> dict[str, str]:
    """Resolved path -> style tag, from the manifest rows that have one."""
    from jenbridge.data.manifest import read_manifest

    entries, _ = read_manifest(root)
    return {str(e.path): str(e.tags["style"]) for e in entries
            if isinstance(e.tags.get("style"), str) and e.tags["style"]}


class ClipSource:
    """A scanned dataset folder that clips are read from (read once per path)."""

    def __init__(self, root: Path, sample_rate: int, channels: int, seconds: float) -> None:
        from jenbridge.data.index import scan_dataset

        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self.root, self.sample_rate, self.channels, self.seconds = (
            Path(root), sample_rate, channels, seconds)
        self.index = scan_dataset(root, sample_rate, min_seconds=0.0, check_audio=False)
        self.styles = _labels(self.root)
        self.skipped: Counter[str] = Counter()

    def candidates(self, split: str) -> list[Any]:
        """Index clips of the split (sorted by path), long enough and with a caption."""
        out = []
        for c in sorted(self.index.split(split), key=lambda c: c.path):
            if c.seconds + 1e-6 < self.seconds:
                self.skipped[f"shorter than {self.seconds:g} s"] += 1
            elif not c.caption:
                self.skipped["no caption"] += 1
            else:
                out.append(c)
        return out

    def read(self, clip: Any) -> EvalClip | None:
        from jenbridge.data.audio import AudioError, read_audio, rms_db

        try:
            audio, _ = read_audio(clip.path, self.sample_rate, self.channels,
                                  seconds=self.seconds)
        except AudioError:
            self.skipped["undecodable"] += 1
            return None
        n = round(self.seconds * self.sample_rate)
        audio = np.pad(audio, ((0, 0), (0, max(0, n - audio.shape[1]))))[:, :n]
        if rms_db(audio) < SILENT_DB:
            self.skipped["silent"] += 1
            return None
        label = self.styles.get(clip.path, clip.caption)
        return EvalClip(clip.path, clip.caption, label, float(clip.bpm), int(clip.key),
                        int(clip.meter), np.ascontiguousarray(audio, dtype=np.float32))

    def pick(self, candidates: list[Any], count: int) -> list[EvalClip]:
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
    by_label: dict[str, list[Any]] = {}
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
