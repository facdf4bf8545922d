"""The summary of a built-in dataset folder: hours, counts, coverage, render cost, levels."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np


def summarize(records: list[dict[str, Any]], opts: Any, rendered: int,
              wall_seconds: float) -> dict[str, Any]:
    """Summary of the pieces `records` (in index order) of a build with options `opts`."""
    rows = [r for rec in records for r in rec["rows"]]
    hours: Counter[str] = Counter({"train": 0.0, "heldout": 0.0})
    clips: Counter[str] = Counter({"train": 0, "heldout": 0})
    pieces: Counter[str] = Counter({"train": 0, "heldout": 0})
    for rec in records:
        if rec["rows"]:
            pieces[rec["split"]] += 1
    styles: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    instruments: Counter[str] = Counter()
    meters: Counter[str] = Counter()
    modes: Counter[str] = Counter()
    for r in rows:
        hours[r["split"]] += r["seconds"] / 3600
        clips[r["split"]] += 1
        sources[r["source"]] += 1
        styles[r["style"]] += 1
        instruments.update(r["tags"]["instruments"])
        meters[r["tags"]["time_signature"]] += 1
        modes[r["key"].split()[-1]] += 1
    skipped: Counter[str] = Counter()
    for rec in records:
        skipped.update(s.split(":")[0] for s in rec["skipped"])
    cpu = sum(rec["cpu_seconds"] for rec in records)
    total_h = sum(hours.values())
    levels = [r["levels"] for r in rows]
    return {
        "seed": opts.seed, "clip_seconds": opts.clip_seconds, "minutes_requested": opts.minutes,
        "hours": round(total_h, 4),
        "hours_by_split": {k: round(v, 4) for k, v in hours.items()},
        "clips_by_split": dict(clips), "pieces_by_split": dict(pieces),
        "pieces": len(records), "pieces_without_audio": sum(not rec["rows"] for rec in records),
        "clips_by_source": dict(sources.most_common()),
        "clips_by_style": dict(styles.most_common()),
        "clips_by_instrument": dict(instruments.most_common()),
        "clips_by_time_signature": dict(meters.most_common()),
        "clips_by_mode": dict(modes.most_common()),
        "bpm_range": [min(r["bpm"] for r in rows), max(r["bpm"] for r in rows)] if rows else [],
        "skipped_works": dict(skipped.most_common()),
        "render": {
            "cpu_seconds": round(cpu, 2),
            "hours_per_cpu_minute": round(total_h / (cpu / 60), 4) if cpu else None,
            "pieces_rendered_this_run": rendered,
            "pieces_reused": len(records) - rendered,
            "wall_seconds_this_run": round(wall_seconds, 2), "workers": opts.workers},
        "levels": {
            "rms_db_mean": round(float(np.mean([x["rms_db"] for x in levels])), 2)
            if levels else None,
            "peak_max": max((x["peak"] for x in levels), default=None),
            "lr_corr_mean": round(float(np.mean([x["lr_corr"] for x in levels])), 3)
            if levels else None,
            "lr_corr_max": max((x["lr_corr"] for x in levels), default=None)},
    }


def summary_lines(s: dict[str, Any]) -> list[str]:
    """The summary as a few readable lines for the terminal."""
    r = s["render"]
    lines = [
        f"hours: {s['hours']:.3f} (train {s['hours_by_split']['train']:.3f}, "
        f"heldout {s['hours_by_split']['heldout']:.3f})   "
        f"clips: {sum(s['clips_by_split'].values())}   pieces: {s['pieces']} "
        f"(heldout {s['pieces_by_split']['heldout']})",
        f"sources: {s['clips_by_source']}",
        f"styles: {s['clips_by_style']}",
        f"instruments: {len(s['clips_by_instrument'])} "
        f"({', '.join(list(s['clips_by_instrument'])[:12])}, ...)",
        f"time signatures: {s['clips_by_time_signature']}   modes: {s['clips_by_mode']}   "
        f"bpm {s['bpm_range']}",
        f"render: {r['pieces_rendered_this_run']} pieces rendered, {r['pieces_reused']} reused, "
        f"{r['wall_seconds_this_run']:.1f} s wall with {r['workers']} worker(s); "
        f"{r['hours_per_cpu_minute']} h of audio per CPU-minute overall",
        f"levels: mean RMS {s['levels']['rms_db_mean']} dBFS, max peak {s['levels']['peak_max']},"
        f" mean L/R correlation {s['levels']['lr_corr_mean']}",
    ]
    if s["skipped_works"]:
        lines.append(f"music21 works skipped: {s['skipped_works']}")
    return lines
