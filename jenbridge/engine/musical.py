"""Musical control of engine calls: lengths in bars, grid lock to the DAW, and conditions
estimated from the context audio.

- bars: with bpm and meter, seconds = bars * meter * 60 / bpm (fractions of a bar allowed).
- grid lock: the new audio of a call (generate: all of it; continue_ / extend_left: the new
  part) is passed through jenbridge.music.grid_lock so its beat 1 sits at the region's start and
  its beats on the DAW's grid at bpm; the length is kept. Audio already on the grid comes back
  bit-identical (`GridLock.applied` False).
- groove: continue_ can start its new audio from a sketch, the context's last bar looped, noised
  to a level and denoised with the prompt (as vary does): the beat grid and the groove carry
  over, the prompt decides what is played on them.
- estimation: inpaint / continue_ / extend_left without an explicit bpm or key measure the
  context's tempo and key (jenbridge.music.estimate_tempo / estimate_key, on up to
  ANALYSIS_SECONDS of the input next to the new audio) and condition on them.

librosa and pedalboard are imported only when a lock or an estimate is really made.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from jenbridge.conditions import BPM_MAX, BPM_MIN, KEY_UNSET, key_name
from jenbridge.engine.options import Options, bars_seconds

GRID_TOLERANCE_MS = 5.0  # drift from the DAW grid that is left alone (gridlock.grid_lock)
ANALYSIS_SECONDS = 30.0  # context measured for estimation: the input's end / start / regions
MIN_ANALYSIS_SECONDS = 0.5  # shorter audio is neither measured nor locked (music.estimate)


@dataclass(frozen=True)
class GridLock:
    """The grid lock of one call's new audio.

    bpm, meter, bars: the DAW grid it was locked to (region start = beat 1; bars may be a
    fraction when the length was given in seconds). stretch_ratio: output / input duration of
    the material (1.0 = none). offset_s: where the measured beat 1 sat in the new audio
    (removed when applied). measured_bpm: its tempo after octave resolution (0.0 = no pulse
    found or too short to measure). applied: whether the audio was stretched and/or shifted
    (False = left bit-identical).
    """

    bpm: float
    meter: int
    bars: float
    stretch_ratio: float
    offset_s: float
    measured_bpm: float
    applied: bool

    def describe(self) -> str:
        grid = f"{self.bars:g} bar(s) of {self.meter} at {self.bpm:g} BPM"
        if not self.applied:
            found = (f"measured {self.measured_bpm:.2f} BPM, offset "
                     f"{1000 * self.offset_s:+.1f} ms" if self.measured_bpm > 0
                     else "no pulse measured")
            return f"grid lock to {grid}: already on the grid, left as is ({found})"
        return (f"grid lock to {grid}: stretched x{self.stretch_ratio:.4f} "
                f"({self.measured_bpm:.2f} -> {self.bpm:g} BPM), shifted "
                f"{-1000 * self.offset_s:+.1f} ms")


def resolve_length(seconds: object, bars: float | None, opts: Options,
                   max_seconds: float) -> tuple[float, float | None]:
    """(seconds, bars) of a request's new audio. bars needs bpm and meter; when seconds is given
    too, both must agree to within a millisecond."""
    from jenbridge.engine.regions import check_seconds

    c = opts.conditions
    if bars is None:
        if seconds is None:
            raise ValueError("seconds or bars is required")
        return check_seconds(seconds, "seconds", max_seconds), None
    if c.bpm <= 0 or c.meter <= 0:
        raise ValueError("bars needs a bpm and a meter (seconds = bars * meter * 60 / bpm)")
    secs = check_seconds(bars_seconds(bars, c.bpm, c.meter), f"{bars:g} bars", max_seconds)
    if seconds is not None:
        given = check_seconds(seconds, "seconds", max_seconds)
        if abs(given - secs) > 1e-3:
            raise ValueError(f"seconds {given:g} and bars {bars:g} ({secs:g} s at {c.bpm:g} BPM, "
                             f"{c.meter} beats per bar) disagree: give one of them")
    return secs, bars


def lock_bars(grid_lock: bool | None, seconds: float, bars: float | None,
              opts: Options) -> float | None:
    """Bars to lock the new audio to, or None when the lock is off. Default: on when the request
    is bar-based. On needs a bpm and a meter."""
    on = (bars is not None) if grid_lock is None else grid_lock
    if not on:
        return None
    c = opts.conditions
    if c.bpm <= 0 or c.meter <= 0:
        raise ValueError("grid_lock needs a bpm and a meter (the DAW's grid)")
    return bars if bars is not None else seconds * c.bpm / (60.0 * c.meter)


def lock(audio: np.ndarray, sr: int, opts: Options, bars: float) -> tuple[np.ndarray, GridLock]:
    """Lock (C, N) new audio at sr to `bars` bars of the request's bpm and meter, keeping N.

    Returns (audio, GridLock); the audio is the input array itself when left alone (also
    when it cannot be measured: shorter than 0.5 s, silent or not finite).
    """
    from jenbridge.music.gridlock import grid_lock

    c = opts.conditions
    n = audio.shape[1]
    if n < MIN_ANALYSIS_SECONDS * sr or not np.any(audio) or not np.isfinite(audio).all():
        return audio, GridLock(c.bpm, c.meter, bars, 1.0, 0.0, 0.0, False)
    beats = bars * c.meter
    if float(bars).is_integer():
        whole_bars, meter = int(bars), c.meter
    elif abs(beats - round(beats)) < 1e-6:
        whole_bars, meter = max(int(round(beats)), 1), 1  # a bar of one beat: same grid
    else:
        whole_bars, meter = max(math.ceil(beats), 1), 1  # locked over whole beats, then cut
    res = grid_lock(audio, sr, c.bpm, whole_bars, meter, tolerance_ms=GRID_TOLERANCE_MS)
    info = GridLock(c.bpm, c.meter, bars, float(res.stretch_ratio), float(res.offset_s),
                    float(res.measured_bpm), bool(res.applied))
    if not res.applied:
        return audio, info  # bit-identical: grid_lock only fitted the length
    out = res.audio
    if out.shape[1] != n:
        out = out[:, :n] if out.shape[1] > n else np.pad(out, ((0, 0), (0, n - out.shape[1])))
    return np.ascontiguousarray(out, dtype=np.float32), info


def estimate(context: np.ndarray, sr: int, opts: Options,
             enabled: bool) -> tuple[Options, dict[str, Any]]:
    """Fill an unset bpm and/or key of `opts` from the context audio (C, N) at sr.

    Returns (options, estimated) where estimated maps "bpm" (float) and/or "key" (a name such
    as "A minor", or "none" for unpitched material) to the values used. Explicit values are
    never replaced; nothing is estimated when disabled, when both are given, or when the
    context is shorter than 0.5 s or silent. A tempo outside 20..400 BPM is not used.
    """
    c = opts.conditions
    want_bpm, want_key = c.bpm <= 0, c.key == KEY_UNSET
    if (not enabled or not (want_bpm or want_key)
            or context.shape[1] < MIN_ANALYSIS_SECONDS * sr or not np.any(context)):
        return opts, {}
    from jenbridge.music.estimate import estimate_key, estimate_tempo

    found: dict[str, Any] = {}
    bpm, key = c.bpm, c.key
    if want_bpm:
        tempo = estimate_tempo(context, sr)
        if BPM_MIN <= tempo.bpm <= BPM_MAX:
            bpm = round(float(tempo.bpm), 2)
            found["bpm"] = bpm
    if want_key:
        k = estimate_key(context, sr)
        key = int(k.code)
        found["key"] = key_name(key)
    if not found:
        return opts, {}
    return replace(opts, conditions=replace(c, bpm=bpm, key=key)), found


def bar_samples(bpm: float, meter: int, sr: int) -> int:
    """Samples in one bar: `meter` beats at `bpm` (bpm counts the meter's beat unit, as the
    data manifest does). ValueError without a tempo or meter."""
    if bpm <= 0 or meter <= 0:
        raise ValueError("a bar needs a bpm and a meter")
    return max(1, round(meter * 60.0 / bpm * sr))


def loop_tail(audio: np.ndarray, n: int, period: int) -> np.ndarray:
    """n samples that go on from `audio` (C, N) by looping its last `period` samples (all of
    it when shorter): sample i is audio[N - period + (i mod period)], so a period of one bar
    keeps every beat at its place on the grid."""
    src = audio[:, -period:] if audio.shape[1] >= period else audio
    if src.shape[1] == 0:
        raise ValueError("no audio to loop")
    reps = -(-n // src.shape[1])
    return np.ascontiguousarray(np.tile(src, (1, reps))[:, :n])

