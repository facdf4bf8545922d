"""Long audio: sliding latent windows for the sampler, overlapping chunks for the codec.

**Sampler windows.** A canvas of T latent frames with a mask (1 = generate) is sampled in
windows of at most `window` frames. Windows are placed greedily from the left, each at the first
frame still to generate, with context before it: `overlap` frames at least (what the previous
window made, now *known*: masked latent + mask 0, the in-context conditioning JEN-1 trains), or
more when the span to generate is shorter than the window, split around it when there is known
material after the span (bidirectional) or all before it (causal, or nothing known after). Each
window generates every not-yet-generated frame inside it; generated frames are written into the
canvas and are context for the windows after. A canvas no longer than one window is one window,
so multi-region inpainting of a short clip is a single U-Net batch per step.

Noise is drawn once for the whole canvas (K, T) from the request's seed and sliced per window,
so a result depends only on the seed, the inputs and the window settings.

**Codec chunks.** The encoder and decoder are convolutional with a finite receptive field and
per-frame norms (models/autoencoder.py), so a long signal is processed in chunks of `chunk`
latent frames, each extended by `margin` frames of real neighbours on both sides that are
computed and thrown away. With margin >= the receptive field, the chunked result equals the
one-shot result up to float rounding; `codec_margin` derives a safe margin from the config.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_WINDOW_SECONDS = 10.0  # when the bundle does not say what crop the U-Net trained on
DEFAULT_MARGIN = 16  # latent frames, when the config does not describe the autoencoder


@dataclass(frozen=True)
class Window:
    """Frames [start, end) of the canvas, and which of them this window generates (mask (end -
    start,) float32, 1 = generate; the rest is known context)."""

    start: int
    end: int
    mask: np.ndarray

    @property
    def frames(self) -> int:
        return self.end - self.start


def _first_run(remaining: np.ndarray) -> tuple[int, int]:
    """(first index, length) of the first run of True in a bool array that has one."""
    first = int(np.argmax(remaining))
    rest = remaining[first:]
    stop = int(np.argmin(rest)) if not rest.all() else rest.size
    return first, stop


def plan_windows(mask: np.ndarray, window: int, overlap: int, causal: bool) -> list[Window]:
    """Windows covering every frame with mask 1 (see the module docstring).

    mask (T,) float, 1 = generate; window >= 2 frames; 0 <= overlap < window; causal: context
    only before the generated span. Returns [] when nothing is to be generated.
    """
    if window < 2:
        raise ValueError(f"window must be at least 2 latent frames, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in 0..{window - 1} frames, got {overlap}")
    T = mask.shape[0]
    remaining = mask > 0.5
    plan: list[Window] = []
    while remaining.any():
        if window >= T:
            start, end = 0, T
        else:
            first, run = _first_run(remaining)
            spare = window - min(run, window - overlap)  # context frames the window can hold
            known_after = first + run < T
            if run < window - overlap and known_after and not causal:
                before = max(overlap, spare // 2)  # the whole span fits: context both sides
            else:
                before = spare
            start = min(max(first - before, 0), T - window)
            end = start + window
        local = remaining[start:end].astype(np.float32)
        remaining[start:end] = False
        plan.append(Window(start, end, local))
    return plan


def sample_windows(
    run_window: Callable[[int, int, np.ndarray, np.ndarray, np.ndarray, np.ndarray], np.ndarray],
    known: np.ndarray,
    mask: np.ndarray,
    start: np.ndarray,
    noise: np.ndarray,
    plan: list[Window],
) -> np.ndarray:
    """Sample a canvas window by window; returns the latent (K, T) with every masked frame made.

    known (K, T): clean latent where mask is 0 (anything where 1); mask (T,); start (K, T): the
    sampler's starting latent (noise, or a noised source for variations); noise (K, T): the
    canvas noise (for re-noising known frames). `run_window(index, count, x, context, mask,
    noise)` gets x (1, K, Tw), context (1, K, Tw) (the canvas so far), mask (Tw,) and noise
    (1, K, Tw), and returns the generated latent (1, K, Tw); only its masked frames are kept.
    """
    canvas = np.where(mask[None, :] > 0.5, 0.0, known).astype(np.float32)
    for i, w in enumerate(plan):
        s = slice(w.start, w.end)
        made = run_window(i, len(plan), start[None, :, s], canvas[None, :, s], w.mask,
                          noise[None, :, s])
        keep = w.mask[None, :] > 0.5
        canvas[:, s] = np.where(keep, made[0], canvas[:, s])
    return canvas


def codec_margin(config: dict[str, Any]) -> int:
    """Latent frames of context a codec chunk needs on each side, from the model config.

    One-sided reach in STFT frames: the STFT window (n_fft / 2 samples each side), 3 frames
    per ConvNeXt block (depthwise kernel 7) and one latent frame of the strided (down/up)
    convs; converted to latent frames, plus 2 to spare. DEFAULT_MARGIN when the config lacks
    the autoencoder fields.
    """
    ae: Any = config.get("autoencoder") if isinstance(config, dict) else None
    try:
        stride = math.prod([int(d) for d in ae["downsample"]])
        blocks = max(int(ae["encoder_blocks"]), int(ae["decoder_blocks"]))
        reach = int(ae["n_fft"]) / (2 * int(ae["hop"])) + 3 * blocks + stride
        return int(math.ceil(reach / stride)) + 2
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return DEFAULT_MARGIN


def chunk_plan(frames: int, chunk: int, margin: int) -> list[tuple[int, int, int, int]]:
    """Chunks over `frames` latent frames: (lo, start, end, hi) with [start, end) kept and
    [lo, hi) computed (start - margin .. end + margin, clipped to the canvas)."""
    if chunk < 1:
        raise ValueError(f"chunk must be at least one latent frame, got {chunk}")
    out = []
    for start in range(0, frames, chunk):
        end = min(start + chunk, frames)
        out.append((max(start - margin, 0), start, end, min(end + margin, frames)))
    return out


def encode_chunked(encode: Callable[[np.ndarray], np.ndarray], audio: np.ndarray, hop: int,
                   chunk: int, margin: int) -> np.ndarray:
    """audio (C, T * hop) -> latent (K, T), `chunk` frames at a time with `margin` context."""
    assert audio.ndim == 2 and audio.shape[1] % hop == 0, audio.shape
    frames = audio.shape[1] // hop
    parts = []
    for lo, start, end, hi in chunk_plan(frames, chunk, margin):
        z = encode(audio[None, :, lo * hop : hi * hop])[0]  # (K, hi - lo)
        parts.append(z[:, start - lo : end - lo])
    return np.concatenate(parts, axis=1)


def decode_chunked(decode: Callable[[np.ndarray], np.ndarray], latent: np.ndarray, hop: int,
                   chunk: int, margin: int) -> np.ndarray:
    """latent (K, T) -> audio (C, T * hop), `chunk` frames at a time with `margin` context."""
    parts = []
    for lo, start, end, hi in chunk_plan(latent.shape[1], chunk, margin):
        audio = decode(latent[None, :, lo:hi])[0]  # (C, (hi - lo) * hop)
        parts.append(audio[:, (start - lo) * hop : (end - lo) * hop])
    return np.concatenate(parts, axis=1)
