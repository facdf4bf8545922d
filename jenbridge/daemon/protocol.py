"""The OSC argument convention and the validation of every job request.

A job request is `/jb/<task> JOB_ID [KEY VALUE]...`: a client job id (a string; a whole number
is accepted and turned into one, for clients that count), then key/value pairs, the key a
string. Why pairs rather than positional arguments: optional arguments need no filler values,
new keys never shift old ones, a Pd `[list]` or a Max `[sprintf]` builds them with nothing but
`s`, `i` and `f`, and an unknown or misspelled key is refused by name instead of being read as
the wrong field.

Numbers: any numeric tag (`i`, `f`, `d`, `h`) is accepted where a number is expected, then
range-checked; NaN and infinities are refused. Whole numbers (steps, sample offsets) accept a
float with no fractional part, because Pd sends every number as a float32.

Positions (`start`, `end`, `file_at`) are times on the DAW's time line, in one of three forms:
  P           seconds, a number (send a `d`: a float32 `f` is off by samples after ~6 minutes)
  P_samples   a whole number of samples at the output sample rate (`h` for long sessions)
  P_sec + P_offset   whole seconds plus a sample offset (0 <= offset < rate), two `i`: exact
              to the sample for clients that only send `i f s` (Pd, Max)
Durations: `seconds` (a number), or `bars` with `bpm` and `meter` (beats per bar, default 4),
or implied by `start` and `end`.

`validate` turns (task, args) into a `Request` whose every field is checked, the input file
included (inside the allowed folders, an audio file soundfile can read), so nothing reaches
the engine unchecked. Errors are `RequestError(code, message)`; the codes are in docs/osc.md.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jenbridge.conditions import check_meter
from jenbridge.daemon.config import Allowed, DaemonConfig, PathRefused
from jenbridge.data.audio import AudioError, probe
from jenbridge.engine.options import (
    DEFAULT_GROOVE,
    check_crossfade,
    check_groove,
    check_strength,
    resolve_options,
)

TASKS = ("generate", "inpaint", "continue", "extend", "vary")
MAX_PROMPT = 2000  # characters; a DAW prompt is a sentence, not a document
MAX_JOB_ID = 64
MAX_POSITION = 24 * 3600.0  # seconds on the time line
POSITIONS = ("start", "end", "file_at")
SAMPLING_KEYS = ("seed", "steps", "guidance", "sampler", "bpm", "key", "meter")
# `var_<name>` keys (a preset's prompt variables) are accepted wherever "var_*" is listed
COMMON_KEYS = ("prompt", *SAMPLING_KEYS, "sample_rate", "reply_port", "out_dir", "preset",
               "var_*", "variations", "effects", "peak_db", "wav_format")
LENGTH_KEYS = ("seconds", "bars", "grid_lock")
_POSITION_KEYS = tuple(f"{p}{s}" for p in POSITIONS for s in ("", "_samples", "_sec", "_offset"))
TASK_KEYS: dict[str, tuple[str, ...]] = {
    "generate": (*COMMON_KEYS, *LENGTH_KEYS, *_POSITION_KEYS[:8], "channels"),
    "inpaint": (*COMMON_KEYS, "path", *_POSITION_KEYS, "crossfade", "estimate"),
    "continue": (*COMMON_KEYS, "path", *LENGTH_KEYS, *_POSITION_KEYS, "crossfade", "estimate",
                 "groove"),
    "extend": (*COMMON_KEYS, "path", *LENGTH_KEYS, *_POSITION_KEYS, "crossfade", "estimate"),
    "vary": (*COMMON_KEYS, "path", "strength", *_POSITION_KEYS[:4], *_POSITION_KEYS[8:]),
}
MAX_VARIATIONS = 16
REQUIRED: dict[str, tuple[str, ...]] = {
    "generate": (), "inpaint": ("path",), "continue": ("path",), "extend": ("path",),
    "vary": ("path", "strength"),
}


class RequestError(ValueError):
    """A request the daemon refuses; `code` is the machine-readable reason (docs/osc.md)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Request:
    """A validated job request. Sample counts are at `sample_rate` (the output's rate).

    position: where the output's first sample sits on the DAW time line (the bext
    TimeReference). For inpaint, `region` is the span to regenerate in seconds of the input
    file's own time line; `length` is the new audio's length in samples (generate, continue,
    extend) or the output's length (inpaint, vary: the input's). `groove` (continue only, 0..1)
    is how much of the input's last bar, looped, the new audio starts from (Engine.continue_).
    """

    task: str
    job_id: str
    prompt: str
    sampling: dict[str, Any]
    sample_rate: int
    position: int
    length: int
    path: Path | None = None
    input_rate: int = 0
    region: tuple[float, float] | None = None
    crossfade: float = 0.01
    strength: float = 0.0
    groove: float = DEFAULT_GROOVE
    channels: int = 2
    reply_port: int | None = None
    out_dir: Path | None = None
    bars: float | None = None  # a bar-based length (the engine locks it to the grid)
    grid_lock: bool | None = None  # None: the engine's default (on for bar lengths)
    estimate: bool = True  # estimate unset bpm / key from the input (inpaint/continue/extend)
    seeds: tuple[int | None, ...] = (None,)  # one per take (None: a fresh random seed)
    preset: str | None = None
    effects: tuple[dict[str, Any], ...] = ()  # the preset's plugin_host chain
    peak_db: float | None = None
    wav_format: str | None = None  # None: the daemon's


@dataclass(frozen=True)
class Context:
    """What validation needs from the running daemon."""

    config: DaemonConfig
    allowed: Allowed
    sampler_defaults: Any  # jenbridge.bundle.SamplerDefaults of the served bundle
    presets: Any = None  # jenbridge.presets.PresetLibrary (None: no presets)


# ---- single values ------------------------------------------------------------------------

def number(value: Any, key: str, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number in [low, high] from any numeric OSC tag (bools are not numbers)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError("bad_request", f"{key} must be a number, got {_tag(value)}")
    x = float(value)
    if not math.isfinite(x):
        raise RequestError("bad_request", f"{key} must be finite, got {x}")
    if not low <= x <= high:
        raise RequestError("out_of_range", f"{key} {x:g} out of range {low:g}..{high:g}")
    return x


def whole(value: Any, key: str, low: int, high: int) -> int:
    """A whole number in [low, high]: `i`, `h`, or a float with no fractional part (Pd)."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise RequestError("bad_request", f"{key} must be a whole number, got {_tag(value)}")
    if not low <= value <= high:
        raise RequestError("out_of_range", f"{key} {value} out of range {low}..{high}")
    return value


def text(value: Any, key: str, limit: int = MAX_PROMPT) -> str:
    if not isinstance(value, str):
        raise RequestError("bad_request", f"{key} must be a string, got {_tag(value)}")
    if len(value) > limit:
        raise RequestError("out_of_range", f"{key} is {len(value)} characters (limit {limit})")
    return value


def _tag(value: Any) -> str:
    if isinstance(value, bytes):
        return "a blob"
    return f"{type(value).__name__} {value!r}"[:80]


def job_id(args: list[Any]) -> str:
    """The job id of a request (first argument): a short string of printable characters."""
    if not args:
        raise RequestError("bad_request", "missing job id (the first argument)")
    jid = args[0]
    if isinstance(jid, int) and not isinstance(jid, bool):
        jid = str(jid)
    if not isinstance(jid, str) or not jid or len(jid) > MAX_JOB_ID or not jid.isprintable():
        raise RequestError("bad_request", f"job id must be a non-empty printable string of at "
                           f"most {MAX_JOB_ID} characters, got {_tag(jid)}")
    return jid


def pairs(args: list[Any], allowed: tuple[str, ...]) -> dict[str, Any]:
    """KEY VALUE pairs after the job id -> dict; odd counts, unknown or repeated keys refused."""
    rest = args[1:]
    if len(rest) % 2:
        raise RequestError("bad_request", "arguments after the job id must be KEY VALUE pairs "
                           f"(got {len(rest)} values)")
    out: dict[str, Any] = {}
    for k, v in zip(rest[0::2], rest[1::2], strict=True):
        if not isinstance(k, str):
            raise RequestError("bad_request", f"expected a key (string), got {_tag(k)}")
        if k not in allowed and not (k.startswith("var_") and "var_*" in allowed):
            raise RequestError("bad_request", f"unknown key {k!r}")
        if k in out:
            raise RequestError("bad_request", f"key {k!r} given twice")
        out[k] = v
    return out


def position(kv: dict[str, Any], name: str, sr: int) -> int | None:
    """The position `name` in samples at sr from whichever single form was sent (or None)."""
    forms = [f for f in ("", "_samples", "_sec") if f"{name}{f}" in kv]
    if f"{name}_offset" in kv and f"{name}_sec" not in kv:
        raise RequestError("bad_request", f"{name}_offset needs {name}_sec")
    if len(forms) > 1:
        raise RequestError("bad_request", f"give {name} in one form only, got "
                           + ", ".join(f"{name}{f}" for f in forms))
    if not forms:
        return None
    top = int(MAX_POSITION * sr)
    if forms[0] == "":
        return round(number(kv[name], name, 0.0, MAX_POSITION) * sr)
    if forms[0] == "_samples":
        return whole(kv[f"{name}_samples"], f"{name}_samples", 0, top)
    sec = whole(kv[f"{name}_sec"], f"{name}_sec", 0, int(MAX_POSITION))
    off = whole(kv.get(f"{name}_offset", 0), f"{name}_offset", 0, sr - 1)
    return sec * sr + off


def length_seconds(kv: dict[str, Any], limit: float) -> float | None:
    """The requested duration from `seconds` or `bars` (+ bpm, meter), or None if neither."""
    if "seconds" in kv and "bars" in kv:
        raise RequestError("bad_request", "give seconds or bars, not both")
    if "seconds" in kv:
        secs = number(kv["seconds"], "seconds")
    elif "bars" in kv:
        bars = number(kv["bars"], "bars", 0.0, 10000.0)
        if "bpm" not in kv:
            raise RequestError("bad_request", "bars needs bpm")
        bpm = number(kv["bpm"], "bpm", 20.0, 400.0)
        beats = _meter(kv.get("meter", 4)) or 4
        secs = bars * beats * 60.0 / bpm
    else:
        return None
    return _duration(secs, limit)


def _duration(secs: float, limit: float) -> float:
    if secs <= 0.0:
        raise RequestError("out_of_range", f"duration must be positive, got {secs:g} s")
    if secs > limit:
        raise RequestError("out_of_range", f"duration {secs:g} s is longer than the "
                           f"{limit:g} s this daemon allows")
    return secs


def _meter(value: Any) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        value = int(value)
    try:
        return check_meter(value)
    except (ValueError, TypeError) as err:
        raise RequestError("bad_request", f"meter: {err}") from None


def sampling(kv: dict[str, Any], defaults: Any) -> dict[str, Any]:
    """seed, steps, guidance, sampler, bpm, key, meter, checked as the engine will check them."""
    out: dict[str, Any] = {k: None for k in SAMPLING_KEYS}
    if "seed" in kv:
        seed = kv["seed"]
        if isinstance(seed, str) and re.fullmatch(r"\d{1,19}", seed):  # 63-bit seeds from Pd
            seed = int(seed)
        out["seed"] = whole(seed, "seed", 0, 2**63 - 1)
    if "steps" in kv:
        out["steps"] = whole(kv["steps"], "steps", 1, defaults.timesteps)
    if "guidance" in kv:
        out["guidance"] = number(kv["guidance"], "guidance", 0.0, 100.0)
    if "sampler" in kv:
        out["sampler"] = text(kv["sampler"], "sampler", 32)
    if "bpm" in kv:
        out["bpm"] = number(kv["bpm"], "bpm", 0.0, 400.0)
    if "key" in kv:
        key = kv["key"]
        out["key"] = whole(key, "key", 0, 24) if not isinstance(key, str) else text(key, "key", 32)
    if "meter" in kv:
        out["meter"] = _meter(kv["meter"]) or None
    try:
        resolve_options(defaults, **out)
    except ValueError as err:
        raise RequestError("bad_request", str(err)) from None
    return out


# ---- whole requests -----------------------------------------------------------------------

def validate(task: str, args: list[Any], ctx: Context) -> Request:
    """Check a `/jb/<task>` request completely; RequestError names the first problem."""
    jid = job_id(args)
    kv = pairs(args, TASK_KEYS[task])
    preset = None
    if "preset" in kv:
        preset = find_preset(ctx, kv["preset"])
        if preset.task != task:
            raise RequestError("bad_request", f"preset {preset.name!r} is a {preset.task} "
                               f"preset, not one for /jb/{task} (send it to /jb/run)")
        from jenbridge.presets import merge_request

        kv = merge_request(preset, kv, TASK_KEYS[task])
    for key in REQUIRED[task]:
        if key not in kv:
            raise RequestError("bad_request", f"/jb/{task} needs {key!r}")
    cfg = ctx.config
    opts = sampling(kv, ctx.sampler_defaults)
    if "bars" in kv and opts["meter"] is None:
        opts["meter"] = 4  # the length's meter (length_seconds) is the model's too
    common: dict[str, Any] = dict(
        task=task, job_id=jid, prompt=_prompt(kv, preset, opts), sampling=opts,
        reply_port=whole(kv["reply_port"], "reply_port", 1, 65535) if "reply_port" in kv
        else None,
        out_dir=_path(ctx, kv["out_dir"], "out_dir", True) if "out_dir" in kv else None,
        **_finishing(kv, preset, opts))
    rate = whole(kv["sample_rate"], "sample_rate", 8000, 384000) if "sample_rate" in kv else None
    if rate is None and preset is not None:
        rate = preset.output.sample_rate
    if task == "generate":
        sr = rate or cfg.sample_rate
        start, end = position(kv, "start", sr), position(kv, "end", sr)
        secs = length_seconds(kv, cfg.max_request_seconds)
        if secs is None:
            if start is None or end is None:
                raise RequestError("bad_request", "/jb/generate needs seconds, bars, or "
                                   "start and end")
            secs = _duration((end - start) / sr, cfg.max_request_seconds)
        channels = whole(kv.get("channels", 2), "channels", 1, 2)
        return Request(**common, sample_rate=sr, position=start or 0, length=round(secs * sr),
                       channels=channels)
    path = _path(ctx, kv["path"], "path", False)
    info = _probe(path, cfg.max_input_seconds)
    sr = rate or info.sample_rate
    n = round(info.frames * sr / info.sample_rate)  # input length at the output rate
    start, end, at = (position(kv, p, sr) for p in POSITIONS)
    if task == "vary":
        strength = number(kv["strength"], "strength", 0.0, 1.0)
        check_strength(strength)
        pos = start if start is not None else (at or 0)
        return Request(**common, sample_rate=sr, position=pos, length=n, path=path,
                       input_rate=info.sample_rate, strength=strength)
    fade = check_crossfade(number(kv.get("crossfade", 0.01), "crossfade", 0.0, 1.0))
    if task == "inpaint":
        if start is None or end is None:
            raise RequestError("bad_request", "/jb/inpaint needs start and end (the region)")
        at = start if at is None else at
        a, b = (start - at) / sr, (end - at) / sr
        if not 0.0 <= a < b <= n / sr:
            raise RequestError("out_of_range", f"region {start / sr:.6f}..{end / sr:.6f} s is "
                               f"not inside the input file ({at / sr:.6f}..{(at + n) / sr:.6f} "
                               "s on the time line) or is empty")
        return Request(**common, sample_rate=sr, position=at, length=n, path=path,
                       input_rate=info.sample_rate, region=(a, b), crossfade=fade)
    secs = length_seconds(kv, cfg.max_request_seconds)
    if secs is None:
        if start is None or end is None:
            raise RequestError("bad_request", f"/jb/{task} needs seconds, bars, or start and "
                               "end")
        secs = _duration((end - start) / sr, cfg.max_request_seconds)
    new = round(secs * sr)
    if task == "continue":  # new audio right after the input; the file ends at `start`
        pos = start if start is not None else (at + n if at is not None else n)
    else:  # extend: new audio right before the input; the file begins at `end`
        anchor = end if end is not None else at
        if anchor is None:
            anchor = new
        pos = anchor - new
        if pos < 0:
            raise RequestError("out_of_range", f"extending by {secs:g} s would start before "
                               "0 on the time line")
    return Request(**common, sample_rate=sr, position=pos, length=new, path=path,
                   input_rate=info.sample_rate, crossfade=fade,
                   groove=groove(kv) if task == "continue" else DEFAULT_GROOVE)


def groove(kv: dict[str, Any], default: float = DEFAULT_GROOVE) -> float:
    """The request's `groove` (0..1, continuations; `default` when it sends none)."""
    if "groove" not in kv:
        return default
    return check_groove(number(kv["groove"], "groove", 0.0, 1.0))


def flag(value: Any, key: str) -> bool:
    """A 0/1 switch (`i`, or a whole float from Pd)."""
    return whole(value, key, 0, 1) == 1


def find_preset(ctx: Context, name: Any) -> Any:
    """The preset a request names, from the daemon's library; not_found if there is none."""
    from jenbridge.presets import PresetError

    if ctx.presets is None:
        raise RequestError("not_found", "this daemon serves no presets")
    try:
        return ctx.presets.get(text(name, "preset", 64))
    except PresetError as err:
        code = "not_found" if str(err).startswith("unknown preset") else "bad_request"
        raise RequestError(code, str(err)) from None


def _prompt(kv: dict[str, Any], preset: Any, opts: dict[str, Any]) -> str:
    """The request's prompt; else the preset's template filled from `var_*` and the request's
    bpm / key / meter."""
    variables = {k[4:]: text(v, k, 200) for k, v in kv.items() if k.startswith("var_")}
    if "prompt" in kv or preset is None:
        if variables:
            raise RequestError("bad_request", "var_* keys fill a preset's prompt: send a preset "
                               "(and no prompt)")
        return text(kv.get("prompt", ""), "prompt")
    from jenbridge.presets import PresetError, render_prompt

    try:
        return render_prompt(preset, variables, opts)
    except PresetError as err:
        raise RequestError("bad_request", str(err)) from None


def _finishing(kv: dict[str, Any], preset: Any, opts: dict[str, Any]) -> dict[str, Any]:
    """Takes, seeds, effects, output level and format, grid lock and estimation switches."""
    from jenbridge.presets import PresetError, take_seeds

    default = preset.variations if preset is not None else 1
    variations = whole(kv.get("variations", default), "variations", 1, MAX_VARIATIONS)
    try:
        seeds = take_seeds(preset, variations, opts["seed"])
    except PresetError as err:
        raise RequestError("bad_request", str(err)) from None
    out: dict[str, Any] = dict(seeds=tuple(seeds), preset=getattr(preset, "name", None))
    if preset is not None and preset.effects and flag(kv.get("effects", 1), "effects"):
        out["effects"] = tuple(preset.effects)
    elif "effects" in kv:
        flag(kv["effects"], "effects")
    out["peak_db"] = number(kv["peak_db"], "peak_db", -60.0, 0.0) if "peak_db" in kv \
        else getattr(getattr(preset, "output", None), "peak_db", None)
    fmt = text(kv["wav_format"], "wav_format", 16) if "wav_format" in kv \
        else getattr(getattr(preset, "output", None), "format", None)
    if fmt not in (None, "float32", "pcm24"):
        raise RequestError("bad_request", f"wav_format must be float32 or pcm24, got {fmt!r}")
    out["wav_format"] = fmt
    if "grid_lock" in kv:
        out["grid_lock"] = flag(kv["grid_lock"], "grid_lock")
    if "estimate" in kv:
        out["estimate"] = flag(kv["estimate"], "estimate")
    if "bars" in kv:
        out["bars"] = number(kv["bars"], "bars", 0.0, 10000.0)
    return out


def _path(ctx: Context, raw: Any, key: str, want_dir: bool) -> Path:
    try:
        return ctx.allowed.check(text(raw, key, 4096), key, want_dir)
    except PathRefused as err:
        raise RequestError(err.code, str(err)) from None


def _probe(path: Path, limit: float) -> Any:
    try:
        info = probe(path)
    except AudioError as err:
        raise RequestError("bad_audio", str(err)) from None
    if info.seconds > limit:
        raise RequestError("out_of_range", f"{path.name} is {info.seconds:.0f} s long (this "
                           f"daemon reads at most {limit:g} s)")
    return info
