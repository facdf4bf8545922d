"""Audio file I/O shared by datasets, the engine and the daemon (numpy, soundfile, soxr; no torch).

Arrays are float32, channels first: (C, N). Reading resamples with soxr (VHQ) and converts
mono <-> stereo; a file that cannot be decoded raises AudioError with the path and the reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".aifc", ".opus")


class AudioError(ValueError):
    """An audio file is missing, unreadable, or unusable; the message names it."""


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    frames: int

    @property
    def seconds(self) -> float:
        return self.frames / self.sample_rate


def probe(path: str | Path) -> AudioInfo:
    """Header information without decoding the whole file."""
    path = Path(path)
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises several types; all mean "not readable audio"
        raise AudioError(f"{path}: not a readable audio file ({err})") from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise AudioError(f"{path}: empty or invalid audio header")
    return AudioInfo(path, int(info.samplerate), int(info.channels), int(info.frames))


def match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    """(C, N) -> (channels, N): mono is duplicated, more channels are averaged down."""
    if audio.shape[0] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=0, keepdims=True)
    if audio.shape[0] == 1:
        return np.repeat(audio, channels, axis=0)
    if channels == 2:  # e.g. 5.1 -> stereo: average all into both sides is crude but safe
        mono = audio.mean(axis=0, keepdims=True)
        return np.repeat(mono, 2, axis=0)
    raise AudioError(f"cannot map {audio.shape[0]} channels to {channels}")


def resample(audio: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """(C, N) at sr_in -> (C, N') at sr_out with soxr's very-high-quality filter."""
    if sr_in == sr_out:
        return audio
    out = soxr.resample(np.ascontiguousarray(audio.T), sr_in, sr_out, quality="VHQ")
    return np.ascontiguousarray(out.T, dtype=np.float32)


def read_audio(path: str | Path, sample_rate: int | None = None, channels: int | None = None,
               start: float = 0.0, seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read (a part of) a file as float32 (C, N), optionally resampled and channel-mapped.

    start and seconds are in seconds of the file's own time line. Returns (audio, sample_rate).
    """
    info = probe(path)
    first = int(round(start * info.sample_rate))
    count = -1 if seconds is None else int(round(seconds * info.sample_rate))
    try:
        data, sr = sf.read(str(path), start=first, frames=count, dtype="float32", always_2d=True)
    except Exception as err:
        raise AudioError(f"{path}: could not decode ({err})") from None
    audio = np.ascontiguousarray(data.T)  # (C, N)
    if not np.isfinite(audio).all():
        raise AudioError(f"{path}: contains NaN or infinite samples")
    if channels is not None:
        audio = match_channels(audio, channels)
    if sample_rate is not None and sr != sample_rate:
        audio = resample(audio, sr, sample_rate)
        sr = sample_rate
    return audio, sr


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dBFS (-inf for digital silence)."""
    rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    return -np.inf if rms == 0.0 else 20.0 * np.log10(rms)


def normalize_loudness(audio: np.ndarray, target_db: float = -20.0,
                       peak: float = 0.99) -> np.ndarray:
    """Scale to an RMS level of target_db dBFS, then down if the peak would pass `peak`.

    RMS rather than K-weighted LUFS: training only needs consistent levels, and this avoids a
    dependency; near-silent input (< -70 dBFS) is returned unchanged.
    """
    level = rms_db(audio)
    if level < -70.0:
        return audio
    gain = 10.0 ** ((target_db - level) / 20.0)
    top = float(np.abs(audio).max()) * gain
    if top > peak:
        gain *= peak / top
    return (audio * gain).astype(np.float32)
