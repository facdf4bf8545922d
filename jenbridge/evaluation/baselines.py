"""Baselines the model is compared with: floors (silence, noise at the music's loudness) and
naive musical fills (repeat the previous bar, crossfade across a hole).

Audio is float32 (C, N); positions are samples. Every function returns new arrays.
"""

from __future__ import annotations

import numpy as np

from jenbridge.engine import regions as rg
from jenbridge.engine.musical import bar_samples, loop_tail

__all__ = ["bar_samples", "crossfade_fill", "pink_noise", "repeat_bar_continuation",
           "repeat_bar_fill", "silence", "spliced", "white_noise"]


def silence(like: np.ndarray) -> np.ndarray:
    return np.zeros_like(like, dtype=np.float32)


def _match_rms(noise: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Scale each channel of `noise` to the RMS of the same channel of `like`."""
    target = np.sqrt(np.mean(np.square(like, dtype=np.float64), axis=-1, keepdims=True))
    have = np.sqrt(np.mean(np.square(noise), axis=-1, keepdims=True))
    return (noise * (target / np.maximum(have, 1e-12))).astype(np.float32)


def white_noise(like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise with the RMS of `like`, per channel."""
    return _match_rms(rng.standard_normal(like.shape), like)


def pink_noise(like: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """1/f (pink) noise with the RMS of `like`, per channel: white noise shaped by 1/sqrt(f)
    in the frequency domain (DC removed)."""
    n = like.shape[-1]
    spec = np.fft.rfft(rng.standard_normal(like.shape), axis=-1)
    f = np.arange(spec.shape[-1], dtype=np.float64)
    f[0] = np.inf  # no DC
    return _match_rms(np.fft.irfft(spec / np.sqrt(f), n=n, axis=-1), like)


def repeat_bar_fill(audio: np.ndarray, start: int, end: int, bar: int) -> np.ndarray:
    """The hole [start, end) filled by repeating the bar before it (audio[start - bar:start],
    tiled; the material before `start` when it is shorter than a bar). Hard edges."""
    out = audio.copy()
    src = audio[:, max(0, start - bar) : start]
    if src.shape[1] == 0:
        raise ValueError("no audio before the hole to repeat")
    reps = -(-(end - start) // src.shape[1])
    out[:, start:end] = np.tile(src, (1, reps))[:, : end - start]
    return out


def repeat_bar_continuation(context: np.ndarray, n: int, bar: int) -> np.ndarray:
    """n samples after `context` made by repeating its last bar (the engine's groove sketch)."""
    return loop_tail(context, n, bar)


def crossfade_fill(audio: np.ndarray, start: int, end: int) -> np.ndarray:
    """The hole [start, end) filled by a plain linear crossfade from the audio before it to the
    audio after it: with L = end - start, sample start + i is (1 - w) audio[start - L + i] +
    w audio[end + i], w rising 0 -> 1 across the hole (so the material on each side runs into
    the hole, fading). Needs L samples on both sides of the hole. Hard edges."""
    length = end - start
    if start - length < 0 or end + length > audio.shape[1]:
        raise ValueError("crossfade fill needs as much audio on each side as the hole is long")
    w = np.linspace(0.0, 1.0, length, dtype=np.float32)
    out = audio.copy()
    out[:, start:end] = ((1.0 - w) * audio[:, start - length : start]
                         + w * audio[:, end : end + length])
    return out


def spliced(original: np.ndarray, filled: np.ndarray, start: int, end: int,
            fade: int) -> np.ndarray:
    """`filled` inside [start, end), `original` elsewhere, joined with the engine's own
    crossfades (`fade` samples outside each edge; jenbridge.engine.regions): every system's
    seams are then made the same way as Engine.inpaint makes the model's."""
    weights = rg.splice_weights([(start, end)], original.shape[1], fade)
    return rg.splice(original, filled, weights)
