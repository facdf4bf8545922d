"""One engine call per job task, and what happens to its audio before it is written.

`TASK_CALLS[task](engine, request, source, options)` -> (audio to write, engine Result):
generate, continue and extend write the new audio only (the DAW places it next to the region);
inpaint and vary write the whole file. `finish_audio` applies the request's preset effect
chain (plugin_host; third-party plugins run in their own process) and peak level;
`describe_result` is the text that goes into the file's metadata.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jenbridge.daemon.jobs import JobFailed


def _length(req: Any) -> dict[str, Any]:
    """seconds / bars / grid_lock for the engine: a bar length is passed as bars, so the
    engine's grid lock (on by default for bars) measures against the DAW's grid."""
    out: dict[str, Any] = {"grid_lock": req.grid_lock}
    if req.bars is not None:
        out["bars"] = req.bars
        out["seconds"] = None
    else:
        out["seconds"] = req.length / req.sample_rate
    return out


def _generate(engine: Any, req: Any, src: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    length = _length(req)
    secs = length.pop("seconds")
    r = engine.generate(req.prompt, secs, sample_rate=req.sample_rate, channels=req.channels,
                        **length, **opts)
    return r.audio, r


def _inpaint(engine: Any, req: Any, src: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    r = engine.inpaint(src, req.sample_rate, [req.region], req.prompt, crossfade=req.crossfade,
                       estimate_conditions=req.estimate, **opts)
    return r.audio, r


def _continue(engine: Any, req: Any, src: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    length = _length(req)
    secs = length.pop("seconds")
    r = engine.continue_(src, req.sample_rate, secs, req.prompt, crossfade=req.crossfade,
                         estimate_conditions=req.estimate, groove=req.groove, **length, **opts)
    return r.audio[:, src.shape[1]:], r  # the new audio only: it goes after the region


def _extend(engine: Any, req: Any, src: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    length = _length(req)
    secs = length.pop("seconds")
    r = engine.extend_left(src, req.sample_rate, secs, req.prompt, crossfade=req.crossfade,
                           estimate_conditions=req.estimate, **length, **opts)
    return r.audio[:, : r.audio.shape[1] - src.shape[1]], r  # the new audio only


def _vary(engine: Any, req: Any, src: Any, opts: dict[str, Any]) -> tuple[Any, Any]:
    r = engine.vary(src, req.sample_rate, req.strength, req.prompt, **opts)
    return r.audio, r


TASK_CALLS = {"generate": _generate, "inpaint": _inpaint, "continue": _continue,
              "extend": _extend, "vary": _vary}


def finish_audio(req: Any, audio: np.ndarray, src: np.ndarray | None) -> np.ndarray:
    """The preset's effect chain, then its peak level. Inpainting keeps the input outside the
    region bit-identical: the processed audio is spliced back with the engine's seam weights."""
    if req.effects:
        from plugin_host import ChainError, EffectChain, parse_chain

        try:
            spec = parse_chain(list(req.effects), source=f"preset {req.preset}")
            with EffectChain(spec, req.sample_rate, channels=audio.shape[0]) as chain:
                wet = chain.process(np.ascontiguousarray(audio, dtype=np.float32))
        except (ChainError, RuntimeError, OSError) as err:
            raise JobFailed("effect_error", f"effect chain failed: {err}") from None
        if req.task == "inpaint" and src is not None and req.region is not None:
            from jenbridge.engine import regions as rg

            spans = rg.region_samples([req.region], req.sample_rate, audio.shape[1])
            w = rg.splice_weights(spans, audio.shape[1], round(req.crossfade * req.sample_rate))
            wet = rg.splice(audio, wet, w)
        audio = wet
    if req.peak_db is not None:
        from jenbridge.presets import peak_normalize

        audio = peak_normalize(audio, req.peak_db)
    return audio


def describe_result(req: Any, result: Any, take: int) -> str:
    """The notes for the file's metadata: preset, take, conditions, estimated conditions, the
    groove a continuation started from, grid lock."""
    notes = []
    if req.preset:
        notes.append(f"preset={req.preset}")
    if len(req.seeds) > 1:
        notes.append(f"take={take + 1}/{len(req.seeds)}")
    described = describe_conditions(getattr(result, "conditions", None))
    if described:
        notes.append(described)
    if describe_groove(result):
        notes.append(describe_groove(result))
    if getattr(result, "estimated", None):
        notes.append("estimated " + ", ".join(f"{k}={v:g}" if isinstance(v, float) else
                                              f"{k}={v}" for k, v in result.estimated.items()))
    lock = getattr(result, "grid_lock", None)
    if lock is not None:
        notes.append(lock.describe())
    return "; ".join(notes)


def describe_groove(result: Any) -> str:
    """"groove=0.7" when a continuation started from its groove sketch ("" when it did not:
    groove 0, another task, or no tempo to loop a bar by)."""
    groove = getattr(result, "groove", 0.0)
    return f"groove={groove:g}" if groove > 0 else ""


def describe_conditions(c: Any) -> str:
    """The musical conditions the model was given, e.g. "bpm=120 key=A minor meter=4" ("" when
    none was set)."""
    if c is None:
        return ""
    from jenbridge.conditions import key_name

    parts = []
    if c.bpm > 0:
        parts.append(f"bpm={c.bpm:g}")
    if key_name(c.key) is not None:
        parts.append(f"key={key_name(c.key)}")
    if c.meter > 0:
        parts.append(f"meter={c.meter}")
    return " ".join(parts)
