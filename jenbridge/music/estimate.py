"""Tempo and key estimation from audio (librosa, imported lazily).

    est = estimate_tempo(audio, 48000)      # TempoEstimate(bpm=117.0, confidence=0.8, beats=...)
    key = estimate_key(audio, 48000)        # KeyEstimate(code=22, name="A minor", ...)

Audio is float (C, N) channels first, or (N,) mono, at `sr` Hz; it is mixed to mono and
resampled to ANALYSIS_SR before analysis. Tempo is the beat tracker's pulse (its prior centres
on 120 BPM), so half/double-time answers are possible: callers that know the target tempo
resolve the octave (gridlock.py). Key codes are jenbridge.conditions codes (1..12 C..B major,
13..24 minor, 25 none).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jenbridge.conditions import KEY_NONE, key_name

ANALYSIS_SR = 22050
HOP = 256  # onset-envelope hop at ANALYSIS_SR: 11.6 ms frames
FRAME_RATE = ANALYSIS_SR / HOP  # onset-envelope frames per second
MIN_SECONDS = 0.5

# Krumhansl–Kessler tonal hierarchy profiles, tonic first (C major / C minor).
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
# A chroma whose peak-to-mean ratio is below this is treated as unpitched (drums, noise):
# a single triad gives about 3, white noise about 1.3.
MIN_CHROMA_PEAK = 1.8
MIN_KEY_CORRELATION = 0.5


@dataclass(frozen=True)
class TempoEstimate:
    """bpm: beats per minute (0.0 when no pulse was found); confidence: 0..1, the onset
    envelope's normalized autocorrelation at the beat period; beats: (B,) float64 beat times
    in seconds from the start of the audio."""

    bpm: float
    confidence: float
    beats: np.ndarray


@dataclass(frozen=True)
class KeyEstimate:
    """code: key code (1..24, or 25 = none for unpitched audio); name: "A minor" / "none";
    confidence: 0..1, the Pearson correlation of the mean chroma with the chosen key profile
    (0 for "none")."""

    code: int
    name: str
    confidence: float


def to_mono(audio: np.ndarray, sr: int) -> np.ndarray:
    """Validate (C, N) or (N,) audio and return float32 (N,) mono at `sr`.

    Raises ValueError for a bad rate, shape, empty, too short (< 0.5 s) or non-finite audio.
    """
    if not isinstance(sr, (int, np.integer)) or isinstance(sr, bool) or sr <= 0:
        raise ValueError(f"sample rate must be a positive integer, not {sr!r}")
    x = np.asarray(audio)
    if x.ndim not in (1, 2) or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"audio must be numeric (C, N) or (N,), got shape {x.shape} {x.dtype}")
    if x.size == 0:
        raise ValueError("audio is empty")
    if not np.isfinite(x).all():
        raise ValueError("audio contains NaN or infinite samples")
    mono = x.astype(np.float32) if x.ndim == 1 else x.astype(np.float32).mean(axis=0)
    if mono.shape[0] < MIN_SECONDS * sr:
        raise ValueError(f"audio is {mono.shape[0] / sr:.3f} s long; need at least "
                         f"{MIN_SECONDS} s to estimate tempo or key")
    return mono


def _analysis(audio: np.ndarray, sr: int) -> np.ndarray:
    mono = to_mono(audio, sr)
    if sr == ANALYSIS_SR:
        return mono
    import soxr

    return soxr.resample(mono, sr, ANALYSIS_SR, quality="HQ").astype(np.float32)


def estimate_tempo(audio: np.ndarray, sr: int) -> TempoEstimate:
    """Tempo (BPM) and beat times (s) of `audio` (C, N) or (N,) at `sr` Hz.

    librosa's onset-strength envelope and dynamic-programming beat tracker; the BPM is then
    refined by a least-squares line through the beat times (the tracker's own tempo is
    quantized to whole frames, up to ~3% off at 170 BPM), and that period by the onset
    envelope's autocorrelation peaks at 1, 2 and 4 periods (refine_period): the beat times
    are whole frames and the tracker bends its beats toward its 120-BPM prior, so the line
    alone can stay a few percent off. Measured on 96 held-out contexts of the built-in dataset
    (6 s each, octave errors folded): within 1 % of the manifest tempo 0.667 with the line
    alone, 0.812 refined (47 contexts of 12 s: 0.596 and 0.809).
    """
    import librosa

    y = _analysis(audio, sr)
    env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_SR, hop_length=HOP)
    if not np.any(env > 0):
        return TempoEstimate(0.0, 0.0, np.zeros(0))
    tempo, frames = librosa.beat.beat_track(onset_envelope=env, sr=ANALYSIS_SR,
                                            hop_length=HOP, units="frames")
    bpm = float(np.atleast_1d(tempo)[0])
    beats = librosa.frames_to_time(frames, sr=ANALYSIS_SR, hop_length=HOP).astype(np.float64)
    if len(beats) >= 4:
        slope = np.polyfit(np.arange(len(beats)), beats, 1)[0]
        if slope > 0:
            bpm = 60.0 / float(slope)
    if bpm <= 0:
        return TempoEstimate(0.0, 0.0, beats)
    period = refine_period(env, FRAME_RATE * 60.0 / bpm)
    return TempoEstimate(FRAME_RATE * 60.0 / period, pulse_strength(env, period), beats)


def pulse_strength(envelope: np.ndarray, period_frames: float) -> float:
    """Normalized autocorrelation (0..1) of an onset envelope at a beat period given in frames
    (the best of the two whole lags around it): ~0.05 for noise, 0.3-0.8 for music with a
    beat."""
    e = np.asarray(envelope, dtype=np.float64)
    e = e - e.mean()
    denom = float(np.dot(e, e))
    lags = [k for k in {int(np.floor(period_frames)), int(np.ceil(period_frames))}
            if 0 < k < len(e)]
    if denom <= 0 or not lags:
        return 0.0
    return float(np.clip(max(float(np.dot(e[:-k], e[k:])) for k in lags) / denom, 0.0, 1.0))


def refine_period(envelope: np.ndarray, period_frames: float,
                  multiples: tuple[int, ...] = (1, 2, 4)) -> float:
    """A beat period (frames) refined below one frame: the peak of the onset envelope's
    autocorrelation (per overlapping frame, so long lags are not penalized) within m / 2 + 1
    frames of each whole multiple m of the period found so far (so a start a few percent off
    walks to the peak) that fits twice in the envelope, located by parabolic interpolation
    and divided by m; the longest such multiple wins (its frame rounding is m times smaller).
    Written here because librosa's tempo estimators return whole-lag bins: at 86 frames/s a
    120-BPM beat sits between lags of 120.2 and 117.5 BPM, coarser than a DAW's grid needs."""
    e = np.asarray(envelope, dtype=np.float64)
    e = e - e.mean()
    n, best = len(e), float(period_frames)
    if period_frames <= 1 or not np.any(e):
        return best
    for m in multiples:
        centre = m * best
        reach = int(np.ceil(0.5 * m + 1))
        lo, hi = int(np.floor(centre)) - reach, int(np.ceil(centre)) + reach
        if lo < 2 or 2 * hi >= n:
            break
        ks = np.arange(lo - 1, hi + 2)
        ac = np.array([np.dot(e[:-k], e[k:]) / (n - k) for k in ks])
        j = int(np.argmax(ac[1:-1])) + 1
        a, b, c = ac[j - 1], ac[j], ac[j + 1]
        curve = a - 2 * b + c
        shift = 0.5 * (a - c) / curve if curve < 0 else 0.0
        best = (ks[j] + float(np.clip(shift, -0.5, 0.5))) / m
    return best


def warm_up() -> None:
    """Run both estimators once on 2 s of clicks, so that librosa's imports and numba's
    compilation (~9 s the first time on a busy 2-core machine, 0.04 s after) are not paid by
    the first request that needs them (a live loop's first iteration has one loop to be made).
    """
    sr = ANALYSIS_SR
    x = np.zeros(2 * sr, np.float32)
    x[:: sr // 2] = 1.0
    estimate_tempo(x, sr)
    estimate_key(x, sr)


def estimate_key(audio: np.ndarray, sr: int) -> KeyEstimate:
    """Key of `audio` (C, N) or (N,) at `sr` Hz by the Krumhansl–Schmuckler method.

    The mean constant-Q chroma is correlated with the 24 rotated Krumhansl–Kessler major/minor
    profiles; the best is the key. Audio whose chroma is nearly flat (drums, noise) or fits no
    profile returns code 25 ("none").
    """
    import librosa

    y = _analysis(audio, sr)
    chroma = librosa.feature.chroma_cqt(y=y, sr=ANALYSIS_SR, hop_length=2048)  # (12, T)
    mean = chroma.mean(axis=1)
    if not np.any(y) or mean.sum() <= 0 or mean.max() / mean.mean() < MIN_CHROMA_PEAK:
        return KeyEstimate(KEY_NONE, "none", 0.0)
    scores = np.empty(24)
    for tonic in range(12):
        rotated = np.roll(mean, -tonic)  # pitch class `tonic` first
        scores[tonic] = np.corrcoef(rotated, KK_MAJOR)[0, 1]
        scores[12 + tonic] = np.corrcoef(rotated, KK_MINOR)[0, 1]
    best = int(np.argmax(scores))
    r = float(scores[best])
    if not np.isfinite(r) or r < MIN_KEY_CORRELATION:
        return KeyEstimate(KEY_NONE, "none", 0.0)
    code = best + 1
    return KeyEstimate(code, str(key_name(code)), float(np.clip(r, 0.0, 1.0)))
