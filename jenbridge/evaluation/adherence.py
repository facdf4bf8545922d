"""The control suites (issue 9): tempo adherence, key adherence, variation strength.

Each suite is `suite(ctx) -> dict` like those in tasks.py. Prompts are the evaluation clips'
labels (their style in the built-in dataset), cycled over the grid; generation j uses seed
ctx.settings.seed + j for every model, with and without grid lock alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jenbridge.conditions import key_name
from jenbridge.evaluation import baselines as bl
from jenbridge.evaluation import metrics as mt
from jenbridge.evaluation.context import Context, MetricSpec, Scores, encode
from jenbridge.evaluation.tasks import _key, _tempo

TEMPO_TOLERANCE = 0.02  # ±2 %
LOCKED = " + grid lock"


def _prompts(ctx: Context, want: str) -> list[str]:
    """Style prompts, from clips that have the property the suite asks for ("bpm" / "key")
    when any do."""
    have = [c for c in ctx.clips if (c.bpm > 0 if want == "bpm" else 1 <= c.key <= 24)]
    return list(dict.fromkeys(c.label for c in (have or ctx.clips)))


# ---- tempo ---------------------------------------------------------------------------------

TEMPO_SPECS = {
    "within_2pct": MetricSpec("fraction", "higher", "measured tempo (librosa) within ±2 % of "
                              "the requested bpm"),
    "octave_error": MetricSpec("fraction", "lower", "measured tempo ±2 % of x2, x1/2, x3/2, "
                               "x2/3, x3 or x1/3 the requested bpm (counted apart)"),
}


def tempo(ctx: Context) -> dict[str, Any]:
    """Generate tempo_bars bars at every (bpm, meter) of the grid, grid lock off and on, and
    measure the tempo. Baselines: the held-out clips against their manifest bpm (how far the
    estimator itself is right on real music) and white noise."""
    s, sr, scores = ctx.settings, ctx.sample_rate, Scores()
    prompts = _prompts(ctx, "bpm")
    grid = [(bpm, meter) for meter in s.meters for bpm in s.bpms]
    rows: list[dict[str, Any]] = []
    for m in ctx.models:
        for j, (bpm, meter) in enumerate(grid):
            for lock in (False, True):
                res = m.engine.generate(prompts[j % len(prompts)], bars=s.tempo_bars, bpm=bpm,
                                        meter=meter, grid_lock=lock, seed=s.seed + j,
                                        steps=s.steps, sample_rate=sr, channels=ctx.channels)
                system = m.label + (LOCKED if lock else "")
                measured = _tempo(res.audio, sr)
                _score(scores, system, measured, bpm)
                rows.append({"system": system, "bpm": bpm, "meter": meter,
                             "measured": round(measured, 2),
                             "relation": mt.tempo_relation(measured, bpm, TEMPO_TOLERANCE)})
    for clip in (c for c in ctx.clips if c.bpm > 0):
        _score(scores, "real (held-out)", _tempo(clip.audio, sr), clip.bpm)
    for j, (bpm, meter) in enumerate(grid):
        n = round(s.tempo_bars * meter * 60.0 / bpm * sr)
        noise = bl.white_noise(np.full((ctx.channels, n), 0.1, np.float32), ctx.rng(5, j))
        _score(scores, "white noise", _tempo(noise, sr), bpm)
    return {"clips": len(grid), "metrics": scores.summary(TEMPO_SPECS),
            "grid": {"bpms": list(s.bpms), "meters": list(s.meters), "bars": s.tempo_bars},
            "tolerance": TEMPO_TOLERANCE, "runs": rows, "prompts": prompts}


def _score(scores: Scores, system: str, measured: float, bpm: float) -> None:
    rel = mt.tempo_relation(measured, bpm, TEMPO_TOLERANCE)
    scores.add("within_2pct", system, float(rel == "match"))
    scores.add("octave_error", system, float(rel == "octave"))


# ---- key -----------------------------------------------------------------------------------

KEY_SPECS = {
    "accuracy": MetricSpec("fraction", "higher", "chroma key estimate equals the requested key"),
    "relative": MetricSpec("fraction", "lower", "the relative major / minor instead"),
    "fifth": MetricSpec("fraction", "lower", "a fifth away, same mode"),
    "parallel": MetricSpec("fraction", "lower", "same tonic, other mode"),
    "no_key": MetricSpec("fraction", "lower", "no key found (unpitched)"),
}
KEY_CHANCE = 1.0 / 24.0


def key(ctx: Context) -> dict[str, Any]:
    """Generate `seconds` in each requested key and estimate the key by chroma
    (jenbridge.music.estimate_key). Chance: 1/24. Baselines: held-out clips against their
    manifest key (the estimator on real music), white noise."""
    s, sr, scores = ctx.settings, ctx.sample_rate, Scores()
    prompts = _prompts(ctx, "key")
    rows: list[dict[str, Any]] = []
    for m in ctx.models:
        for j, code in enumerate(s.keys):
            res = m.engine.generate(prompts[j % len(prompts)], s.seconds, key=code,
                                    seed=s.seed + j, steps=s.steps, sample_rate=sr,
                                    channels=ctx.channels)
            found = _key(res.audio, sr)
            rel = _key_score(scores, m.label, found, code)
            rows.append({"system": m.label, "key": key_name(code),
                         "found": key_name(found), "relation": rel})
    for clip in (c for c in ctx.clips if 1 <= c.key <= 24):
        _key_score(scores, "real (held-out)", _key(clip.audio, sr), clip.key)
    for j, code in enumerate(s.keys):
        like = np.full((ctx.channels, round(s.seconds * sr)), 0.1, np.float32)
        _key_score(scores, "white noise", _key(bl.white_noise(like, ctx.rng(6, j)), sr), code)
    summary = scores.summary(KEY_SPECS)
    summary["accuracy"]["chance"] = KEY_CHANCE
    return {"clips": len(s.keys), "metrics": summary, "runs": rows, "prompts": prompts}


def _key_score(scores: Scores, system: str, found: int, code: int) -> str:
    rel = mt.key_relation(found, code)
    for metric, what in (("accuracy", "exact"), ("relative", "relative"), ("fifth", "fifth"),
                         ("parallel", "parallel"), ("no_key", "none")):
        scores.add(metric, system, float(rel == what))
    return rel


# ---- variation -----------------------------------------------------------------------------

VARY_SPECS = {
    "latent_at_half": MetricSpec("relative L2", "", "latent distance to the source at "
                                 "strength 0.5: |z - z_src| / |z_src| (the model's encoder)"),
    "latent_at_full": MetricSpec("relative L2", "", "latent distance at strength 1"),
    "mel_at_half": MetricSpec("", "", "log-mel L1 distance to the source at strength 0.5"),
    "mel_at_full": MetricSpec("", "", "log-mel L1 distance at strength 1"),
}


def variation(ctx: Context) -> dict[str, Any]:
    """Engine.vary over the strength sweep on the first vary_clips clips: distance to the
    source in latent and mel, per strength. References: another held-out clip (unrelated
    music: where strength 1 should land) and white noise at the clip's loudness."""
    s, sr = ctx.settings, ctx.sample_rate
    clips = ctx.clips[: max(1, s.vary_clips)]
    curves: dict[str, dict[str, dict[str, float]]] = {}
    scores = Scores()
    for m in ctx.models:
        per: dict[float, list[tuple[float, float]]] = {v: [] for v in s.strengths}
        for i, clip in enumerate(clips):
            z0 = encode(m.engine, clip.audio, sr)
            for v in s.strengths:
                y = m.engine.vary(clip.audio, sr, v, clip.caption, seed=s.seed + i,
                                  steps=s.steps).audio
                per[v].append(_distances(m.engine, y, clip.audio, z0, sr))
        curves[m.label] = {f"{v:g}": {"latent": float(np.mean([d[0] for d in ds])),
                                      "mel": float(np.mean([d[1] for d in ds]))}
                           for v, ds in per.items()}
        for name, v in (("half", 0.5), ("full", 1.0)):
            if v in per:
                for lat, mel in per[v]:
                    scores.add(f"latent_at_{name}", m.label, lat)
                    scores.add(f"mel_at_{name}", m.label, mel)
    engine = ctx.models[0].engine
    refs: dict[str, list[tuple[float, float]]] = {"another clip": [], "white noise": []}
    for i, clip in enumerate(clips):
        z0 = encode(engine, clip.audio, sr)
        other = ctx.clips[(i + 1) % len(ctx.clips)].audio
        if len(ctx.clips) > 1:
            refs["another clip"].append(_distances(engine, other, clip.audio, z0, sr))
        noise = bl.white_noise(clip.audio, ctx.rng(7, i))
        refs["white noise"].append(_distances(engine, noise, clip.audio, z0, sr))
    for name, ds in refs.items():
        for lat, mel in ds:
            for which in ("half", "full"):
                scores.add(f"latent_at_{which}", name, lat)
                scores.add(f"mel_at_{which}", name, mel)
    references = {name: {"latent": float(np.mean([d[0] for d in ds])),
                         "mel": float(np.mean([d[1] for d in ds]))}
                  for name, ds in refs.items() if ds}
    return {"clips": len(clips), "metrics": scores.summary(VARY_SPECS), "curves": curves,
            "references": references, "strengths": list(s.strengths)}


def _distances(engine: Any, y: np.ndarray, x: np.ndarray, z0: np.ndarray,
               sr: int) -> tuple[float, float]:
    """(relative latent L2, log-mel L1) of y from the source x (latent z0)."""
    z = encode(engine, y, sr)
    t = min(z.shape[1], z0.shape[1])
    ref = float(np.linalg.norm(z0[:, :t]))
    lat = float(np.linalg.norm(z[:, :t] - z0[:, :t])) / max(ref, 1e-9)
    return lat, mt.mel_distance(y, x, sr)
