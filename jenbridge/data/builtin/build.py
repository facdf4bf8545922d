"""Build the built-in dataset: plan pieces from a seed, render them in workers, write the folder.

Piece i of a build is a pure function of (seed, i) and the content options: which source and
style it is, how many clips it was planned to give, every musical choice, its audio, its
captions. A build of M minutes takes pieces 0, 1, 2, ... until their clips reach M minutes, so a
bigger build of the same seed starts with exactly the pieces of a smaller one. Pieces whose
record and audio are already in the folder are reused, not rendered again.

Split: a piece goes to "heldout" when the hash of its split key falls under the held-out
fraction, else to "train"; all clips of a piece share it. The split key of a procedural piece is
its id; that of a music21 piece is the corpus work it plays, so two renditions of one chorale
can never sit on both sides. Hash-based, hence stable as the dataset grows.

Folder layout: audio/NNN/<piece>-<clip>.flac, pieces/NNN/<piece>.json (one record per piece:
its manifest rows, skipped works, CPU time), manifest.jsonl, summary.json, build.json (the
content options; reusing a folder with other ones is refused). A smaller build into a bigger
folder lists only its own pieces in the manifest; the other files stay where they are.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

BUILD_VERSION = 1
HELDOUT, TRAIN = "heldout", "train"
FORMATS = {"flac": ("FLAC", "PCM_24"), "wav": ("WAV", "FLOAT")}


@dataclass(frozen=True)
class BuildOptions:
    """What to build. minutes and workers may change between runs into one folder; the rest
    defines the content and must stay the same."""

    out: str
    minutes: float
    seed: int = 0
    clip_seconds: float = 10.0
    workers: int = 1
    heldout_fraction: float = 0.05
    corpus_fraction: float = 0.25      # share of pieces taken from the music21 corpus
    max_clips_per_piece: int = 6       # a piece is planned to give 1..this many clips
    audio_format: str = "flac"
    sound_font: str = ""               # "" = render.default_sound_font()

    def check(self) -> None:
        """Raise ValueError naming the first option out of range."""
        rules = [("minutes", self.minutes > 0, "must be > 0"),
                 ("seed", self.seed >= 0, "must be >= 0"),
                 ("clip_seconds", 1 <= self.clip_seconds <= 120, "must be in 1..120"),
                 ("workers", self.workers >= 1, "must be >= 1"),
                 ("heldout_fraction", 0 <= self.heldout_fraction < 1, "must be in [0, 1)"),
                 ("corpus_fraction", 0 <= self.corpus_fraction <= 1, "must be in [0, 1]"),
                 ("max_clips_per_piece", self.max_clips_per_piece >= 1, "must be >= 1"),
                 ("audio_format", self.audio_format in FORMATS, f"must be one of {list(FORMATS)}")]
        for name, ok, why in rules:
            if not ok:
                raise ValueError(f"{name}={getattr(self, name)!r} {why}")

    def content(self) -> dict[str, Any]:
        """The options that decide what is in the folder (compared on reuse)."""
        font = Path(self.sound_font)
        return {"version": BUILD_VERSION, "seed": self.seed, "clip_seconds": self.clip_seconds,
                "heldout_fraction": self.heldout_fraction,
                "corpus_fraction": self.corpus_fraction,
                "max_clips_per_piece": self.max_clips_per_piece,
                "audio_format": self.audio_format,
                "sound_font": [font.name, font.stat().st_size if font.is_file() else None]}


def split_of(split_key: str, heldout_fraction: float) -> str:
    """HELDOUT or TRAIN from a hash of the key: independent of seed order and dataset size."""
    h = int(hashlib.sha256(split_key.encode()).hexdigest()[:15], 16) / 16 ** 15
    return HELDOUT if h < heldout_fraction else TRAIN


def plan(opts: BuildOptions, index: int) -> tuple[str, str, int]:
    """(source, style or "", planned clips) of piece `index`; styles are dealt round-robin
    from a seeded shuffle so even a small build covers many of them."""
    from jenbridge.data.builtin.styles import STYLES

    cf = opts.corpus_fraction
    corpus = math.floor((index + 1) * cf) > math.floor(index * cf)
    clips = int(np.random.default_rng([opts.seed, index, 0]).integers(
        1, opts.max_clips_per_piece + 1))
    if corpus:
        return "music21", "", clips
    j = index - math.floor(index * cf)  # this is the j-th procedural piece
    names = sorted(STYLES)
    order = np.random.default_rng([opts.seed, j // len(names), 7]).permutation(len(names))
    return "procedural", names[int(order[j % len(names)])], clips


def piece_id(opts: BuildOptions, index: int, source: str) -> str:
    return f"{'proc' if source == 'procedural' else 'm21'}-s{opts.seed}-{index:06d}"


def _paths(out: Path, index: int, pid: str) -> tuple[str, Path]:
    shard = f"{index // 1000:03d}"
    return f"audio/{shard}", out / "pieces" / shard / f"{pid}.json"


def _levels(audio: np.ndarray) -> dict[str, float]:
    rms = float(np.sqrt(np.mean(np.square(audio))))
    corr = float(np.corrcoef(audio[0], audio[1])[0, 1]) if audio[0].std() > 0 else 1.0
    return {"rms_db": round(20 * math.log10(max(rms, 1e-12)), 2),
            "peak": round(float(np.abs(audio).max()), 4), "lr_corr": round(corr, 4)}


def _write_json(path: Path, data: Any, lines: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    text = "".join(json.dumps(r) + "\n" for r in data) if lines else json.dumps(data, indent=1)
    tmp.write_text(text)
    os.replace(tmp, path)


def make_piece(opts_dict: dict[str, Any], index: int) -> dict[str, Any]:
    """Compose or arrange piece `index`, render it, write its clips and record; return the
    record. Runs in a worker process (arguments are plain data)."""
    import soundfile as sf

    from jenbridge.data.builtin.captions import caption, clip_view, tags
    from jenbridge.data.builtin.compose import compose
    from jenbridge.data.builtin.corpus import corpus_piece
    from jenbridge.data.builtin.piece import Piece
    from jenbridge.data.builtin.render import SAMPLE_RATE, render_piece

    cpu0, wall0 = time.process_time(), time.perf_counter()
    opts = BuildOptions(**opts_dict)
    out = Path(opts.out)
    source, style, clips = plan(opts, index)
    pid = piece_id(opts, index, source)
    rng = np.random.default_rng([opts.seed, index, 1])
    seconds = clips * opts.clip_seconds
    skipped: list[str] = []
    piece: Piece | None
    if source == "procedural":
        piece = compose(style, seconds, rng, pid)
    else:
        piece, skipped = corpus_piece(rng, seconds, opts.clip_seconds, pid)
    rows: list[dict[str, Any]] = []
    audio_dir, record_path = _paths(out, index, pid)
    split = TRAIN
    if piece is not None:
        split = split_of(piece.split_key, opts.heldout_fraction)
        audio = render_piece(piece, Path(opts.sound_font), SAMPLE_RATE)
        n = int(round(opts.clip_seconds * SAMPLE_RATE))
        fmt, subtype = FORMATS[opts.audio_format]
        cap_rng = np.random.default_rng([opts.seed, index, 2])
        (out / audio_dir).mkdir(parents=True, exist_ok=True)
        for c in range(int(round(piece.seconds / opts.clip_seconds))):
            clip = audio[:, c * n:(c + 1) * n]
            rel = f"{audio_dir}/{pid}-{c}.{opts.audio_format}"
            tmp = out / f"{rel}.tmp"
            sf.write(str(tmp), clip.T, SAMPLE_RATE, format=fmt, subtype=subtype)
            os.replace(tmp, out / rel)
            heard = clip_view(piece, c * opts.clip_seconds, (c + 1) * opts.clip_seconds)
            rows.append({"path": rel, "caption": caption(heard, cap_rng), "bpm": piece.bpm,
                         "key": piece.key, "meter": piece.meter, "split": split,
                         "seconds": opts.clip_seconds, "source": piece.source,
                         "style": piece.style, "piece_id": pid, "clip": c, "tags": tags(heard),
                         "levels": _levels(clip)})
    record = {"index": index, "piece_id": pid, "source": source, "split": split,
              "rows": rows, "skipped": skipped,
              "cpu_seconds": round(time.process_time() - cpu0, 3),
              "wall_seconds": round(time.perf_counter() - wall0, 3)}
    _write_json(record_path, record)
    return record


def _existing(opts: BuildOptions, index: int) -> dict[str, Any] | None:
    """The record of piece `index` if it and all its audio files are in the folder."""
    out = Path(opts.out)
    source, _, _ = plan(opts, index)
    pid = piece_id(opts, index, source)
    path = _paths(out, index, pid)[1]
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    ok = record.get("piece_id") == pid and all((out / r["path"]).is_file()
                                                for r in record["rows"])
    return record if ok else None


def _seconds(record: dict[str, Any]) -> float:
    return sum(r["seconds"] for r in record["rows"])


def _check_folder(opts: BuildOptions) -> None:
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = out / "build.json"
    content = opts.content()
    if meta.is_file():
        old = json.loads(meta.read_text())
        diff = sorted(k for k in content if old.get(k) != content[k])
        if diff:
            was = ", ".join(f"{k}={old.get(k)!r}" for k in diff)
            raise ValueError(f"{out} holds a built-in dataset built with other options ({was}); "
                             "use another folder")
    else:
        _write_json(meta, content)


def build(opts: BuildOptions, progress: bool = True) -> dict[str, Any]:
    """Build (or grow) the dataset in opts.out; return the summary (also in summary.json)."""
    from tqdm import tqdm

    from jenbridge.data.builtin.render import check_renderer
    from jenbridge.data.builtin.summary import summarize

    opts.check()
    opts = BuildOptions(**{**asdict(opts), "sound_font": str(check_renderer(opts.sound_font))})
    _check_folder(opts)
    target = opts.minutes * 60
    wall0 = time.perf_counter()
    records: dict[int, dict[str, Any]] = {}
    done_s, next_index, rendered = 0.0, 0, 0
    bar = tqdm(total=round(target), unit="s", desc="built-in dataset", disable=not progress)
    pool = (ProcessPoolExecutor(opts.workers, mp_context=get_context("spawn"))
            if opts.workers > 1 else None)
    running: dict[Future, int] = {}
    planned: dict[int, float] = {}
    try:
        while True:
            # plan ahead while what is done plus what is planned falls short of the target
            while done_s + sum(planned.values()) < target and len(running) < 2 * opts.workers:
                i = next_index
                next_index += 1
                old = _existing(opts, i)
                if old is not None:
                    records[i] = old
                    done_s += _seconds(old)
                    bar.update(round(_seconds(old)))
                    continue
                planned[i] = plan(opts, i)[2] * opts.clip_seconds
                if pool is None:
                    running[_Done(make_piece(asdict(opts), i))] = i
                else:
                    running[pool.submit(make_piece, asdict(opts), i)] = i
            if not running:
                break
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in finished:
                i = running.pop(fut)
                records[i] = fut.result()
                planned.pop(i)
                rendered += 1
                done_s += _seconds(records[i])
                bar.update(round(_seconds(records[i])))
    finally:
        bar.close()
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    ordered = [records[i] for i in sorted(records)]
    _write_json(Path(opts.out) / "manifest.jsonl", [r for rec in ordered for r in rec["rows"]],
                lines=True)
    summary = summarize(ordered, opts, rendered, time.perf_counter() - wall0)
    _write_json(Path(opts.out) / "summary.json", summary)
    return summary


class _Done(Future):
    """A future that is already resolved (the single-process path shares the pool's loop)."""

    def __init__(self, value: Any):
        super().__init__()
        self.set_result(value)
