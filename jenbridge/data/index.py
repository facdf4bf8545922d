"""Scan a dataset folder into an index of usable clips and a report of what was skipped and why.

Nothing here is fatal for a single bad file: unreadable, too short or silent files are left out
and counted by reason; files at another sample rate are kept (resampled when read) and counted.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from jenbridge.conditions import BPM_MAX, BPM_MIN
from jenbridge.data.audio import AudioError, probe, read_audio, rms_db
from jenbridge.data.manifest import Entry, read_manifest

SILENCE_DB = -60.0
ESTIMATE_SECONDS = 30.0  # audio read per clip to estimate a missing bpm / key (scan estimate)


@dataclass(frozen=True)
class Clip:
    path: str
    caption: str
    bpm: float
    key: int
    meter: int
    split: str
    sample_rate: int
    frames: int  # at the file's own sample rate
    estimated: tuple[str, ...] = ()  # tags filled in from the audio ("bpm", "key"), not given

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


@dataclass
class DatasetReport:
    files: int = 0
    usable: int = 0
    hours: float = 0.0
    hours_by_split: dict[str, float] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> a few paths
    resampled: int = 0  # files not at the training sample rate (kept, resampled on read)
    missing_caption: int = 0
    unusable_tags: int = 0
    with_bpm: int = 0
    with_key: int = 0
    with_meter: int = 0
    estimated_bpm: int = 0  # clips whose bpm / key were estimated from the audio (scan estimate)
    estimated_key: int = 0

    def skip(self, reason: str, what: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        shown = self.examples.setdefault(reason, [])
        if len(shown) < 3:
            shown.append(what)

    def lines(self) -> list[str]:
        out = [f"files listed: {self.files}   usable: {self.usable}   hours: {self.hours:.3f}"]
        for split, h in sorted(self.hours_by_split.items()):
            out.append(f"  {split}: {h:.3f} h")
        out.append(f"resampled on read: {self.resampled}   missing caption: "
                   f"{self.missing_caption}   unusable bpm/key/meter values: {self.unusable_tags}")
        out.append(f"with bpm: {self.with_bpm}   with key: {self.with_key}   "
                   f"with meter: {self.with_meter}")
        if self.estimated_bpm or self.estimated_key:
            out.append(f"estimated from audio (not in the manifest): bpm {self.estimated_bpm}   "
                       f"key {self.estimated_key}")
        for reason, n in sorted(self.skipped.items()):
            out.append(f"skipped ({reason}): {n}   e.g. {', '.join(self.examples[reason])}")
        return out


@dataclass
class DatasetIndex:
    root: str
    sample_rate: int
    clips: list[Clip]
    report: DatasetReport

    def split(self, name: str) -> list[Clip]:
        return [c for c in self.clips if c.split == name]

    def save(self, path: Path) -> None:
        data = {"root": self.root, "sample_rate": self.sample_rate,
                "clips": [asdict(c) for c in self.clips], "report": asdict(self.report)}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> DatasetIndex:
        data: dict[str, Any] = json.loads(path.read_text())
        clips = [Clip(**{**c, "estimated": tuple(c.get("estimated", ()))}) for c in data["clips"]]
        return cls(data["root"], data["sample_rate"], clips,
                   DatasetReport(**data["report"]))


def _check_levels(path: Path) -> str | None:
    """Decode the file in blocks; return a skip reason or None. Silent = every block quiet."""
    try:
        audio, _ = read_audio(path)
    except AudioError as err:
        return f"undecodable: {str(err).split('(')[-1].rstrip(')')[:60]}"
    if audio.size == 0 or rms_db(audio) < SILENCE_DB or float(np.abs(audio).max()) < 1e-4:
        return "silent"
    return None


def scan_dataset(root: str | Path, sample_rate: int, min_seconds: float,
                 check_audio: bool = True, estimate: bool = False) -> DatasetIndex:
    """Index a dataset folder. check_audio decodes every file (finds silent/corrupt bodies).

    estimate: fill a missing bpm and/or key (0 in the manifest) from the first ESTIMATE_SECONDS
    of each usable clip (jenbridge.music); such clips list the tags in Clip.estimated and are
    counted in report.estimated_bpm / estimated_key. The bpm is the beat tracker's pulse (it
    may be half or double the manifest convention, e.g. eighth notes for x/8 meters).
    """
    entries, problems = read_manifest(root)
    report = DatasetReport(files=len(entries) + sum(len(v) for v in problems.rejected.values()),
                           missing_caption=problems.missing_caption,
                           unusable_tags=problems.bad_tags)
    for reason, rows in problems.rejected.items():
        for row in rows:
            report.skip(reason, row)
    clips: list[Clip] = []
    seen: set[str] = set()
    for e in entries:
        clip = _clip(e, sample_rate, min_seconds, check_audio, report, seen)
        if clip is not None and estimate and (clip.bpm == 0 or clip.key == 0):
            clip = _estimate_tags(clip, report)
        if clip is not None:
            clips.append(clip)
    report.usable = len(clips)
    report.hours = sum(c.seconds for c in clips) / 3600.0
    hours: dict[str, float] = {}
    for c in clips:
        hours.setdefault(c.split, 0.0)
        hours[c.split] += c.seconds / 3600.0
    report.hours_by_split = hours
    report.with_bpm = sum(c.bpm > 0 for c in clips)
    report.with_key = sum(c.key > 0 for c in clips)
    report.with_meter = sum(c.meter > 0 for c in clips)
    return DatasetIndex(str(Path(root).resolve()), sample_rate, clips, report)


def _estimate_tags(clip: Clip, report: DatasetReport) -> Clip:
    """Clip with a missing bpm / key estimated from its audio (unchanged if it can't be)."""
    from jenbridge.music import estimate_key, estimate_tempo

    try:
        audio, sr = read_audio(clip.path, seconds=min(clip.seconds, ESTIMATE_SECONDS))
        bpm = estimate_tempo(audio, sr).bpm if clip.bpm == 0 else clip.bpm
        key = estimate_key(audio, sr).code if clip.key == 0 else clip.key
    except (AudioError, ValueError):
        return clip
    estimated = list(clip.estimated)
    if clip.bpm == 0 and BPM_MIN <= bpm <= BPM_MAX:
        estimated.append("bpm")
        report.estimated_bpm += 1
    else:
        bpm = clip.bpm
    if clip.key == 0 and key != 0:
        estimated.append("key")
        report.estimated_key += 1
    return replace(clip, bpm=round(float(bpm), 2), key=int(key), estimated=tuple(estimated))


def _clip(e: Entry, sample_rate: int, min_seconds: float, check_audio: bool,
          report: DatasetReport, seen: set[str]) -> Clip | None:
    key = str(e.path)
    if key in seen:
        report.skip("duplicate row", key)
        return None
    seen.add(key)
    if not e.path.is_file():
        report.skip("missing file", key)
        return None
    try:
        info = probe(e.path)
    except AudioError:
        report.skip("unreadable", key)
        return None
    if info.seconds < min_seconds:
        report.skip(f"shorter than {min_seconds:g} s", key)
        return None
    if check_audio:
        reason = _check_levels(e.path)
        if reason is not None:
            report.skip(reason, key)
            return None
    if info.sample_rate != sample_rate:
        report.resampled += 1
    return Clip(key, e.caption, e.bpm, e.key, e.meter, e.split, info.sample_rate, info.frames)
