"""Audio in the caller's domain: checks, regions in seconds, crossfaded splicing, seams.

The engine's model runs at the bundle's rate and channel count (48 kHz stereo); callers hand
audio at their own rate (44.1, 48, 88.2, 96 kHz, or any other soxr can convert) and channel
count. Everything the caller gets back is built in the caller's domain: the model's audio is
converted back (soxr VHQ, channels mapped) and *spliced* into a copy of the caller's samples,
so samples outside the edited spans are copied, never round-tripped through a resampler.

Conventions: audio is float32 (C, N), channels first; times are seconds on the input's time
line; sample spans are half-open [start, end). Regions are (start_s, end_s) with
0 <= start_s < end_s <= duration.

Splice rules (`splice_weights`): inside a region the output is the model's audio, exactly;
a *linear* crossfade of `crossfade` seconds runs *outside* each region edge, from the input to
the model; beyond it the input is copied bit for bit. Linear (gains summing to 1) rather than
equal-power because the two signals there are the input and the model's re-synthesis of that
same input (the latent frames around a region are the input's own, only the region is
generated): strongly correlated signals, which an equal-power fade would lift by up to 3 dB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from jenbridge.data.audio import match_channels, resample

MAX_CHANNELS = 2  # mono or stereo in and out (the model's stereo maps onto either)
MIN_RATE, MAX_RATE = 8000, 768000
DEFAULT_CROSSFADE = 0.01  # seconds: 10 ms, short enough to keep timing, long enough to hide


def check_rate(sr: object, what: str = "sample rate") -> int:
    """A sample rate as int; ValueError unless a whole number in [MIN_RATE, MAX_RATE] Hz."""
    if isinstance(sr, bool) or not isinstance(sr, (int, np.integer, float)):
        raise ValueError(f"{what} must be a whole number of Hz, got {sr!r}")
    if isinstance(sr, float) and not sr.is_integer():
        raise ValueError(f"{what} must be a whole number of Hz, got {sr}")
    rate = int(sr)
    if not MIN_RATE <= rate <= MAX_RATE:
        raise ValueError(f"{what} {rate} Hz out of range {MIN_RATE}..{MAX_RATE} Hz")
    return rate


def check_seconds(seconds: object, what: str, max_seconds: float) -> float:
    """A positive, finite duration in seconds, at most `max_seconds`."""
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float, np.floating, np.integer)):
        raise ValueError(f"{what} must be a number of seconds, got {seconds!r}")
    value = float(seconds)
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{what} must be a positive number of seconds, got {value}")
    if value > max_seconds:
        raise ValueError(f"{what} {value:g} s is longer than the {max_seconds:g} s limit")
    return value


def check_audio(audio: object) -> np.ndarray:
    """The caller's audio as a float32 (C, N) array: (N,) is mono; NaN/inf, empty, integer
    samples and a (N, C) layout are ValueErrors (float64 is converted to float32)."""
    if not isinstance(audio, np.ndarray):
        raise ValueError(f"audio must be a numpy array (C, N) or (N,), got {type(audio).__name__}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"audio must hold float samples in [-1, 1], got dtype {audio.dtype} "
                         "(divide integer PCM by its full scale first)")
    if audio.ndim == 1:
        audio = audio[None, :]
    if audio.ndim != 2:
        raise ValueError(f"audio must be (C, N) or (N,), got shape {audio.shape}")
    if audio.shape[0] > MAX_CHANNELS:
        hint = (" (it looks like (N, C): pass audio.T)" if audio.shape[1] <= MAX_CHANNELS
                else "; mix it down to stereo first")
        raise ValueError(f"audio has {audio.shape[0]} channels, at most {MAX_CHANNELS}{hint}")
    if audio.shape[1] == 0:
        raise ValueError("audio is empty (0 samples)")
    if not np.isfinite(audio).all():
        raise ValueError("audio contains NaN or infinite samples")
    return np.ascontiguousarray(audio, dtype=np.float32)


def to_model(audio: np.ndarray, sr: int, model_rate: int, model_channels: int) -> np.ndarray:
    """Caller's (C, N) at sr -> (model_channels, N') at model_rate (soxr VHQ), float32."""
    return resample(match_channels(audio, model_channels), sr, model_rate).astype(np.float32)


def from_model(audio: np.ndarray, model_rate: int, sr: int, channels: int) -> np.ndarray:
    """Model's (C_m, N') at model_rate -> (channels, N) at sr: stereo to mono averages."""
    return np.ascontiguousarray(
        match_channels(resample(audio, model_rate, sr), channels), dtype=np.float32)


def fit_length(audio: np.ndarray, n: int) -> np.ndarray:
    """(C, M) -> (C, n): cut, or pad with zeros (resamplers may land a sample short)."""
    if audio.shape[1] >= n:
        return audio[:, :n]
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def check_regions(regions: object, duration: float) -> list[tuple[float, float]]:
    """Validate regions [(start_s, end_s), ...] against an input of `duration` seconds.

    Each must be two finite numbers with 0 <= start < end <= duration (a rounding slack of one
    microsecond at the end is accepted and clipped). Overlapping regions are allowed (their
    union is generated). Returns them as float pairs, sorted by start.
    """
    if isinstance(regions, (str, bytes)) or not isinstance(regions, Sequence):
        raise ValueError(f"regions must be a list of (start_s, end_s) pairs, got {regions!r}")
    if len(regions) == 0:
        raise ValueError("regions is empty: give at least one (start_s, end_s) region")
    out = []
    for region in regions:
        if isinstance(region, (str, bytes)) or not isinstance(region, Sequence) or len(region) != 2:
            raise ValueError(f"region {region!r} is not a (start_s, end_s) pair")
        try:
            start, end = float(region[0]), float(region[1])
        except (TypeError, ValueError):
            raise ValueError(f"region {region!r} is not a pair of numbers (seconds)") from None
        if not (math.isfinite(start) and math.isfinite(end)):
            raise ValueError(f"region {region!r} is not finite")
        if end <= start:
            raise ValueError(f"region {start:g}..{end:g} s is empty or reversed (end must be "
                             "after start)")
        if start < 0.0 or end > duration + 1e-6:
            raise ValueError(f"region {start:g}..{end:g} s lies outside the audio "
                             f"(0..{duration:g} s)")
        out.append((start, min(end, duration)))
    return sorted(out)


def region_samples(regions: Sequence[tuple[float, float]], sr: int,
                   n: int) -> list[tuple[int, int]]:
    """Regions in seconds -> half-open sample spans at rate sr, each at least one sample long."""
    spans = []
    for start, end in regions:
        a = min(int(round(start * sr)), n - 1)
        b = max(min(int(round(end * sr)), n), a + 1)
        spans.append((a, b))
    return spans


def region_frames(regions: Sequence[tuple[float, float]], frame_rate: float,
                  frames: int) -> np.ndarray:
    """Mask (frames,) float32, 1 on every latent frame that overlaps a region (1 = generate).

    Frame t covers [t, t + 1) / frame_rate seconds; a region touching part of a frame claims it.
    """
    mask = np.zeros(frames, dtype=np.float32)
    for start, end in regions:
        a = max(int(math.floor(start * frame_rate + 1e-9)), 0)
        b = min(int(math.ceil(end * frame_rate - 1e-9)), frames)
        mask[a : max(b, a + 1)] = 1.0
    return mask


def splice_weights(spans: Sequence[tuple[int, int]], n: int, fade: int) -> np.ndarray:
    """Per-sample model weight w (n,) float32: 1 inside the spans, a linear ramp over `fade`
    samples outside each edge (0 -> 1 towards the span), 0 elsewhere. Overlaps take the max."""
    w = np.zeros(n, dtype=np.float32)
    ramp = (np.arange(1, fade + 1, dtype=np.float64) / (fade + 1)).astype(np.float32)  # (0, 1)
    for a, b in spans:
        w[a:b] = 1.0
        if fade > 0:
            lo = max(a - fade, 0)  # left fade ends at a - 1 just below 1
            w[lo:a] = np.maximum(w[lo:a], ramp[fade - (a - lo):])
            hi = min(b + fade, n)  # right fade starts at b just below 1
            w[b:hi] = np.maximum(w[b:hi], ramp[::-1][: hi - b])
    return w


def splice(original: np.ndarray, model: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """original, model (C, N); weights (N,) from splice_weights -> (C, N) float32.

    Where w == 0 the original samples are copied (bit-identical); where w == 1 the model's;
    between, (1 - w) * original + w * model.
    """
    assert original.shape == model.shape and weights.shape == (original.shape[1],)
    out = original.copy()
    fade = (weights > 0.0) & (weights < 1.0)
    full = weights >= 1.0
    out[:, full] = model[:, full]
    w = weights[fade]
    out[:, fade] = (1.0 - w) * original[:, fade] + w * model[:, fade]
    return out


def smooth_seam(new: np.ndarray, offset: np.ndarray, fade: int, at_start: bool) -> np.ndarray:
    """Remove the step at a join between kept input and new audio (continuation, extension).

    new (C, M) is the model's audio next to the join; offset (C,) = input's edge sample minus the
    model's own sample at that same position. The offset is added in full at the join and
    faded linearly to zero over `fade` samples away from it, so the waveform has no jump and
    the kept input samples stay untouched. at_start: the join is at new[:, 0] (continuation),
    else at new[:, -1] (left extension). Returns a new array.
    """
    out = new.astype(np.float32, copy=True)
    m = min(fade, out.shape[1])
    if m == 0:
        return out
    ramp = (1.0 - np.arange(m, dtype=np.float64) / m).astype(np.float32)  # 1 -> 1/m
    if at_start:
        out[:, :m] += offset[:, None] * ramp
    else:
        out[:, out.shape[1] - m :] += offset[:, None] * ramp[::-1]
    return out
