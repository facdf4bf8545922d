"""Dataset manifests: which audio files, with which captions and musical tags.

A dataset is a folder of audio files plus a sidecar manifest, `manifest.jsonl` (one JSON object
per line) or `manifest.csv`, with at least `path` (relative to the folder) and `caption`, and
optionally `tags`, `bpm`, `key`, `meter`, `split` ("train" / "heldout"), and `piece_id` + `clip`
(the clip's index in its piece: clips k and k + 1 of one piece are contiguous audio, which the
evaluation joins into longer excerpts). Other fields are ignored. A folder with no manifest is
still usable: every audio file below it is listed with an empty caption (trained as
unconditional, and counted in the report).
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jenbridge.conditions import check_bpm, check_meter, key_code
from jenbridge.data.audio import AUDIO_EXTENSIONS

MANIFEST_NAMES = ("manifest.jsonl", "manifest.csv")


@dataclass(frozen=True)
class Entry:
    """One manifest row after validation; bpm/key/meter are condition codes (0 = unset);
    piece / part: the piece it was cut from and its index there ("" / -1: not given)."""

    path: Path
    caption: str
    bpm: float = 0.0
    key: int = 0
    meter: int = 0
    split: str = "train"
    tags: dict[str, Any] = field(default_factory=dict)
    piece: str = ""
    part: int = -1


@dataclass
class ManifestProblems:
    """Rows that could not be used as given, by reason (kept for the dataset report)."""

    rejected: dict[str, list[str]] = field(default_factory=dict)  # reason -> row descriptions
    missing_caption: int = 0
    bad_tags: int = 0  # rows whose bpm/key/meter were unusable and dropped to unset

    def reject(self, reason: str, what: str) -> None:
        self.rejected.setdefault(reason, []).append(what)


def find_manifest(root: Path) -> Path | None:
    for name in MANIFEST_NAMES:
        if (root / name).is_file():
            return root / name
    return None


def _rows(manifest: Path) -> list[dict[str, Any]]:
    if manifest.suffix == ".csv":
        with manifest.open(newline="") as f:
            return [dict(r) for r in csv.DictReader(f)]
    rows = []
    for n, line in enumerate(manifest.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            row = {"__error__": f"line {n}: invalid JSON ({err.msg})"}
        rows.append(row if isinstance(row, dict) else {"__error__": f"line {n}: not an object"})
    return rows


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _entry(root: Path, row: dict[str, Any], problems: ManifestProblems) -> Entry | None:
    if "__error__" in row:
        problems.reject("bad manifest row", row["__error__"])
        return None
    rel = row.get("path")
    if _blank(rel):
        problems.reject("row without path", json.dumps(row)[:120])
        return None
    path = (root / str(rel)).resolve()
    caption = "" if _blank(row.get("caption")) else str(row["caption"]).strip()
    if not caption:
        problems.missing_caption += 1
    codes: dict[str, Any] = {}
    for name, parse in (("bpm", check_bpm), ("key", key_code), ("meter", check_meter)):
        value = row.get(name)
        if _blank(value):
            codes[name] = parse(None)
            continue
        try:
            if name == "bpm":
                value = float(value)  # type: ignore[arg-type]  # str or number; ValueError below
            elif name == "meter" and isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            codes[name] = parse(value)
        except (TypeError, ValueError):
            problems.bad_tags += 1
            codes[name] = parse(None)
    tags = row.get("tags")
    if isinstance(tags, str):
        tags = {"labels": [t.strip() for t in tags.split(";") if t.strip()]}
    split = str(row.get("split") or "train")
    piece, part = row.get("piece_id"), row.get("clip")
    if isinstance(part, str) and part.strip().isdigit():  # CSV manifests hold strings
        part = int(part)
    if _blank(piece) or isinstance(part, bool) or not isinstance(part, int) or part < 0:
        piece, part = "", -1  # both or neither: a part index means nothing without its piece
    return Entry(path, caption, codes["bpm"], codes["key"], codes["meter"], split,
                 tags if isinstance(tags, dict) else {}, str(piece), part)


def read_manifest(root: str | Path) -> tuple[list[Entry], ManifestProblems]:
    """Entries of the dataset folder `root` (manifest rows, or every audio file if none)."""
    root = Path(root)
    if not root.is_dir():
        raise ValueError(f"dataset folder {root} does not exist")
    problems = ManifestProblems()
    manifest = find_manifest(root)
    if manifest is None:
        files = sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        problems.missing_caption = len(files)
        return [Entry(p.resolve(), "") for p in files], problems
    entries = [e for row in _rows(manifest) if (e := _entry(root, row, problems)) is not None]
    return entries, problems
