"""The torch-free JEN-1 engine: text-to-music, inpainting, continuation, extension, variation.

    engine = Engine("path/to/bundle")              # sessions created once, kept warm
    result = engine.generate("warm lo-fi piano", 10.0, seed=1, bpm=80, key="A minor")
    result.audio                                   # (2, 480000) float32 at 48 kHz

Data flow of every call (DESIGN §3): caller's audio -> channels mapped and resampled to the
bundle's rate (soxr) -> encoder.onnx in overlapping chunks -> canvas (known latent + mask,
1 = generate) -> text_encoder.onnx -> sampler over unet.onnx in sliding windows with
classifier-free guidance -> decoder.onnx in overlapping chunks -> back to the caller's rate and
channels -> spliced into the caller's samples (regions.py) -> Result.

Conventions:
- Audio is float32 (C, N), channels first; (N,) is accepted as mono. Any rate soxr converts
  (44.1, 48, 88.2, 96 kHz, ...), mono or stereo; results come back at the caller's rate
  and channel count (generate: `sample_rate`, `channels`). Times are seconds.
- Conditioning: the prompt (text), bpm / key / meter (None or 0 = unset, jenbridge.conditions).
- Guidance, in-context masks and windows: denoise.py (the unconditional branch drops the text
  *and* bpm / key / meter; both branches share one U-Net call of batch 2).
- Long inputs: inpaint, continue_ and extend_left only process the part of the input a window
  can see (the regions, or the input's end or start, plus one window and the codec's margin
  of context); the rest of the input is copied, never resampled or encoded.
- Reproducible: the seed drives one numpy Generator, which draws the whole canvas noise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jenbridge.conditions import MusicalConditions
from jenbridge.diffusion.schedule import DDPMSchedule, start_step_for_strength
from jenbridge.engine import musical
from jenbridge.engine import regions as rg
from jenbridge.engine.denoise import Cancelled, poll, sample_canvas
from jenbridge.engine.musical import GridLock
from jenbridge.engine.options import (
    DEFAULT_GROOVE,
    Options,
    Progress,
    ShouldStop,
    check_bars,
    check_callbacks,
    check_crossfade,
    check_flag,
    check_groove,
    check_prompt,
    check_strength,
    resolve_options,
)
from jenbridge.engine.sessions import BundleSessions, Timings
from jenbridge.engine.windows import (
    DEFAULT_WINDOW_SECONDS,
    codec_margin,
    decode_chunked,
    encode_chunked,
)

__all__ = ["Cancelled", "Engine", "GridLock", "Result"]

MAX_SECONDS = 3600.0  # longest output or extension one call makes
DEFAULT_CODEC_CHUNK = 512  # latent frames per encoder/decoder call (22 s for `small`)


@dataclass(frozen=True)
class Result:
    """What an engine call returns.

    audio: float32 (C, N) at `sample_rate` (the caller's rate and channel count).
    seed: the seed used (the random one drawn when None was given).
    steps: sampler steps run per window (0 when nothing needed sampling: vary at strength 0).
    windows: latent windows sampled (1 unless the canvas is longer than the engine's window).
    timings: wall seconds per stage: "text", "encoder", "unet" (sum), "decoder", "resample",
        "total"; unet_calls: every U-Net call's seconds, in order.
    providers: the execution providers the sessions really ran on, best first.
    conditions: the musical conditions the model was given (explicit or estimated).
    estimated: the conditions measured from the context audio and used, by name: "bpm"
        (float) and/or "key" (a name, "none" for unpitched material); empty when none were.
    grid_lock: how the new audio was locked to the DAW grid (musical.GridLock), or None
        when the lock was off.
    groove: the groove continue_ really started from (0.0 when none was applied).
    """

    audio: np.ndarray
    sample_rate: int
    seed: int
    steps: int
    windows: int
    timings: dict[str, float]
    unet_calls: tuple[float, ...]
    providers: tuple[str, ...]
    conditions: MusicalConditions = field(default_factory=MusicalConditions)
    estimated: dict[str, Any] = field(default_factory=dict)
    grid_lock: GridLock | None = None
    groove: float = 0.0

    @property
    def seconds(self) -> float:
        return self.audio.shape[1] / self.sample_rate


class Engine:
    """A model bundle loaded into warm ONNX Runtime sessions, with task-named calls.

    Args:
        bundle: folder of a model bundle (jenbridge.bundle); its hashes are verified.
        providers: execution providers to try, best first ("cuda", "coreml", "cpu"); None =
            CUDA -> CoreML -> CPU where each really works. `providers` tells what runs.
        threads: intra-op CPU threads per session (None: this process's cores, at most 8).
        window_frames: most latent frames the U-Net sees at once (None: the crop the model
            was trained on, from the bundle's config; else 10 s). Longer canvases are sampled
            in sliding windows conditioned on the previous window's last `overlap_frames`.
        overlap_frames: context frames carried between windows (None: a quarter window).
        codec_chunk_frames: latent frames per encoder/decoder call (None: 512); chunks overlap
            by the codec's receptive field, so results do not depend on it.
        verify: check every bundle file's sha256 (a corrupt bundle raises BundleError).
    """

    def __init__(
        self,
        bundle: str | Path,
        *,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        window_frames: int | None = None,
        overlap_frames: int | None = None,
        codec_chunk_frames: int | None = None,
        verify: bool = True,
    ) -> None:
        self.sessions = BundleSessions(bundle, providers=providers, threads=threads,
                                       verify=verify)
        m = self.sessions.manifest
        self.manifest = m
        self.sample_rate, self.channels, self.hop = m.sample_rate, m.channels, m.latent_hop
        self.latent_channels = m.latent_channels
        self.schedule = DDPMSchedule(m.sampler.timesteps, m.sampler.beta_start,
                                     m.sampler.beta_end)
        if window_frames is None:
            crop = m.config.get("diffusion_training", {}).get("crop_seconds",
                                                             DEFAULT_WINDOW_SECONDS)
            window_frames = max(math.ceil(float(crop) * m.latent_rate), 2)
        self.window_frames = _positive_int(window_frames, "window_frames", 2)
        if overlap_frames is None:
            overlap_frames = self.window_frames // 4
        if isinstance(overlap_frames, bool) or not isinstance(overlap_frames, int) \
                or not 0 <= overlap_frames < self.window_frames:
            raise ValueError(f"overlap_frames must be in 0..{self.window_frames - 1}, "
                             f"got {overlap_frames!r}")
        self.overlap_frames = overlap_frames
        self.codec_chunk_frames = _positive_int(
            DEFAULT_CODEC_CHUNK if codec_chunk_frames is None else codec_chunk_frames,
            "codec_chunk_frames", 1)
        self.codec_margin = codec_margin(m.config)

    @property
    def providers(self) -> tuple[str, ...]:
        """Execution providers the sessions really run on, best first."""
        return tuple(self.sessions.active_providers)

    def __repr__(self) -> str:
        return (f"Engine({self.manifest.name!r}, {self.sample_rate} Hz x{self.channels}, "
                f"window {self.window_frames} frames, providers {list(self.providers)})")

    # ---- public calls --------------------------------------------------------------------

    def generate(self, prompt: str, seconds: float | None = None, *, seed: int | None = None,
                 steps: int | None = None, guidance: float | None = None,
                 sampler: str | None = None, bpm: float | None = None,
                 key: str | int | None = None, meter: int | str | None = None,
                 bars: float | None = None, grid_lock: bool | None = None,
                 sample_rate: int = 48000, channels: int = 2,
                 progress: Progress | None = None,
                 should_stop: ShouldStop | None = None) -> Result:
        """Text-to-music: `seconds` of new audio, float32 (channels, round(seconds * sample_rate)).

        bars: the length in bars instead (needs bpm and meter: seconds = bars * meter * 60 /
        bpm; given with seconds, they must agree). grid_lock: lock the audio to the DAW's grid
        (beat 1 at the start, beats at bpm; musical.py), reported in Result.grid_lock; None =
        on when the length is in bars. Needs bpm and meter.

        Canvases longer than the window are made in sliding windows, each continuing the last.
        `progress(fraction, stage)` is called after every sampler step (fraction in (0, 1]);
        `should_stop()` is polled before every step and raises Cancelled when True.
        """
        start = time.perf_counter()
        check_prompt(prompt)
        bars_v, lock_flag = check_bars(bars), check_flag(grid_lock, "grid_lock")
        sr = rg.check_rate(sample_rate)
        ch = _positive_int(channels, "channels", 1, rg.MAX_CHANNELS)
        opts = self._options(progress, should_stop, seed, steps, guidance, sampler, bpm, key,
                             meter)
        secs, bars_v = musical.resolve_length(seconds, bars_v, opts, MAX_SECONDS)
        lock_to = musical.lock_bars(lock_flag, secs, bars_v, opts)
        timings = Timings()
        frames = self._frames_for(secs, sr)
        known = np.zeros((self.latent_channels, frames), np.float32)
        mask = np.ones(frames, np.float32)
        latent, windows = self._sample(prompt, opts, known, mask, False, None, 0, timings,
                                       progress, should_stop)
        audio = self._decode(latent, sr, ch, round(secs * sr), timings, should_stop)
        audio, locked = self._lock(audio, sr, opts, lock_to, timings)
        return self._result(audio, sr, opts, opts.steps, windows, timings, start,
                            grid_lock=locked)

    def inpaint(self, audio: np.ndarray, sr: int, regions: Sequence[tuple[float, float]],
                prompt: str, *, crossfade: float = rg.DEFAULT_CROSSFADE,
                seed: int | None = None, steps: int | None = None,
                guidance: float | None = None, sampler: str | None = None,
                bpm: float | None = None, key: str | int | None = None,
                meter: int | str | None = None, estimate_conditions: bool = True,
                progress: Progress | None = None,
                should_stop: ShouldStop | None = None) -> Result:
        """Regenerate `regions` [(start_s, end_s), ...] of `audio` (C, N) or (N,) at `sr` Hz.

        Returns (C, N) at sr. Inside each region: the model's audio; over `crossfade` seconds
        outside each region edge: a linear crossfade from the input to the model; everywhere
        else: the input's samples, bit-identical. Frames touching a region are generated with
        the rest of the clip as in-context conditioning (bidirectional). The sampling
        options (seed, ..., should_stop) are generate's. Without an explicit bpm or key, the
        context's are estimated and used (Result.estimated) unless estimate_conditions=False.
        No grid lock is applied.
        """
        start = time.perf_counter()
        check_prompt(prompt)
        src, sr = rg.check_audio(audio), rg.check_rate(sr)
        n = src.shape[1]
        spans_s = rg.check_regions(regions, n / sr)
        fade = round(check_crossfade(crossfade) * sr)
        opts = self._options(progress, should_stop, seed, steps, guidance, sampler, bpm, key,
                             meter)
        timings = Timings()
        spans = rg.region_samples(spans_s, sr, n)
        ctx = self._context_samples(sr) + fade  # input beyond this cannot reach a region
        a = max(min(s0 for s0, _ in spans) - ctx, 0)
        b = min(max(e0 for _, e0 in spans) + ctx, n)
        part = src[:, a:b]
        reach = round(musical.ANALYSIS_SECONDS / 2 * sr)  # context measured around the regions
        around = src[:, max(min(s0 for s0, _ in spans) - reach, 0) :
                     min(max(e0 for _, e0 in spans) + reach, n)]
        opts, found = self._estimate(around, sr, opts, estimate_conditions, timings)
        known = self._encode(part, sr, timings, should_stop)
        mask = rg.region_frames([(s0 - a / sr, e0 - a / sr) for s0, e0 in spans_s],
                                self.manifest.latent_rate, known.shape[1])
        latent, windows = self._sample(prompt, opts, known, mask, False, None, 0, timings,
                                       progress, should_stop)
        model = self._decode(latent, sr, src.shape[0], b - a, timings, should_stop)
        weights = rg.splice_weights([(s0 - a, e0 - a) for s0, e0 in spans], b - a, fade)
        out = src.copy()
        out[:, a:b] = rg.splice(part, model, weights)
        return self._result(out, sr, opts, opts.steps, windows, timings, start, estimated=found)

    def continue_(self, audio: np.ndarray, sr: int, seconds: float | None, prompt: str, *,
                  crossfade: float = rg.DEFAULT_CROSSFADE, seed: int | None = None,
                  steps: int | None = None, guidance: float | None = None,
                  sampler: str | None = None,
                  bpm: float | None = None, key: str | int | None = None,
                  meter: int | str | None = None, bars: float | None = None,
                  grid_lock: bool | None = None, estimate_conditions: bool = True,
                  groove: float = DEFAULT_GROOVE, progress: Progress | None = None,
                  should_stop: ShouldStop | None = None) -> Result:
        """Append `seconds` of music after `audio` (C, N) or (N,) at `sr` Hz (JEN-1 continuation,
        unidirectional: causal U-Net). Returns (C, N + round(seconds * sr)); the first N samples
        are the input's, bit-identical. The step between the input's last sample and the new
        audio is faded out over `crossfade` seconds of the new audio (regions.smooth_seam).
        The sampling options, bars and grid_lock are generate's (the new audio is the region
        locked: it starts on beat 1). Without an explicit bpm or key, the context's are
        estimated from the input's end and used, also for bars (Result.estimated), unless
        estimate_conditions=False.
        groove in [0, 1]: how much of the context's last bar, looped, the new audio starts
        from (a sketch noised to the level 1 - groove sets and denoised with the prompt, as in
        vary): 0 = from pure noise (plain JEN-1 continuation), 1 = the loop itself. It needs a
        bpm and a meter (given or estimated; an estimated meter defaults to 4); without a
        bpm it is not applied (Result.groove 0).
        """
        start = time.perf_counter()
        check_prompt(prompt)
        src, sr = rg.check_audio(audio), rg.check_rate(sr)
        bars_v, lock_flag = check_bars(bars), check_flag(grid_lock, "grid_lock")
        if seconds is not None:
            rg.check_seconds(seconds, "seconds", MAX_SECONDS)
        fade = round(check_crossfade(crossfade) * sr)
        groove_v = check_groove(groove)
        opts = self._options(progress, should_stop, seed, steps, guidance, sampler, bpm, key,
                             meter)
        timings = Timings()
        part = src[:, max(src.shape[1] - self._context_samples(sr), 0) :]  # what a window sees
        analysed = src[:, max(src.shape[1] - round(musical.ANALYSIS_SECONDS * sr), 0) :]
        opts, found = self._estimate(analysed, sr, opts, estimate_conditions, timings)
        secs, bars_v = musical.resolve_length(seconds, bars_v, opts, MAX_SECONDS)
        lock_to = musical.lock_bars(lock_flag, secs, bars_v, opts)
        extra = round(secs * sr)
        n = part.shape[1]
        x = self._to_model(part, sr, timings)
        known_frames = x.shape[1] // self.hop  # frames the input covers completely
        if known_frames < 1:
            raise ValueError(f"audio is too short to continue: at least {self.hop} samples at "
                             f"{self.sample_rate} Hz ({1000 * self.hop / self.sample_rate:.1f} "
                             "ms) are needed")
        frames = self._frames_for(n / sr + secs, sr)
        known = np.zeros((self.latent_channels, frames), np.float32)
        known[:, :known_frames] = self._encode_model(x[:, : known_frames * self.hop], timings)
        mask = np.zeros(frames, np.float32)
        mask[known_frames:] = 1.0
        source, first = self._groove_sketch(src, part.shape[1], sr, frames, opts, groove_v,
                                            timings)
        if source is not None and first == opts.steps:  # groove 1: the loop itself
            latent, windows = np.where(mask > 0.5, source, known), 0
        else:
            latent, windows = self._sample(prompt, opts, known, mask, True, source, first,
                                           timings, progress, should_stop)
        model = self._decode(latent, sr, src.shape[0], n + extra, timings, should_stop)
        new, locked = self._lock(model[:, n:], sr, opts, lock_to, timings)
        # the step at the join: against the model's own sample before it, or (moved by the
        # lock) against the new audio's first sample
        joined = model[:, n - 1] if locked is None or not locked.applied else new[:, 0]
        new = rg.smooth_seam(new, part[:, -1] - joined, fade, True)
        out = np.concatenate([src, new], axis=1)
        return self._result(out, sr, opts, opts.steps - first, windows, timings, start,
                            estimated=found, grid_lock=locked,
                            groove=groove_v if source is not None else 0.0)

    def _groove_sketch(self, src: np.ndarray, part: int, sr: int, frames: int, opts: Options,
                       groove: float, timings: Timings) -> tuple[np.ndarray | None, int]:
        """The groove sketch of continue_: the canvas's latent (K, frames) when its window's
        context (the last `part` samples of `src`, caller rate) goes on with the input's last
        bar looped; and the sampler step it starts at. (None, 0) when groove is off, rounds to
        no step, or there is no tempo to find a bar by. The bar comes from the whole input, so
        a bar longer than the model's context window still loops whole."""
        first = start_step_for_strength(opts.steps, 1.0 - groove)
        bpm = opts.conditions.bpm
        if first == 0 or bpm <= 0:
            return None, 0
        bar = musical.bar_samples(bpm, opts.conditions.meter or 4, sr)
        need = frames * self.hop  # model-rate samples of the canvas
        more = math.ceil(need * sr / self.sample_rate) - part + sr // 10  # + resampler margin
        with timings.stage("groove"):
            sketch = np.concatenate([src[:, src.shape[1] - part :],
                                     musical.loop_tail(src, max(more, 1), bar)], axis=1)
            x = rg.fit_length(self._to_model(sketch, sr, timings), need)
            latent = self._encode_model(x, timings)
        return latent[:, :frames], first

    def extend_left(self, audio: np.ndarray, sr: int, seconds: float | None, prompt: str, *,
                    crossfade: float = rg.DEFAULT_CROSSFADE, seed: int | None = None,
                    steps: int | None = None, guidance: float | None = None,
                    sampler: str | None = None,
                    bpm: float | None = None, key: str | int | None = None,
                    meter: int | str | None = None, bars: float | None = None,
                    grid_lock: bool | None = None, estimate_conditions: bool = True,
                    progress: Progress | None = None,
                    should_stop: ShouldStop | None = None) -> Result:
        """Prepend `seconds` of music before `audio` (C, N) or (N,) at `sr` Hz (bidirectional,
        the input as right context). Returns (C, round(seconds * sr) + N); the last N samples
        are the input's, bit-identical; the seam is smoothed as in continue_. The sampling
        options, bars, grid_lock and estimate_conditions are continue_'s (estimated from the
        input's start; the new audio is the region locked, so the input starts on a bar line).
        """
        start = time.perf_counter()
        check_prompt(prompt)
        src, sr = rg.check_audio(audio), rg.check_rate(sr)
        bars_v, lock_flag = check_bars(bars), check_flag(grid_lock, "grid_lock")
        if seconds is not None:
            rg.check_seconds(seconds, "seconds", MAX_SECONDS)
        fade = round(check_crossfade(crossfade) * sr)
        opts = self._options(progress, should_stop, seed, steps, guidance, sampler, bpm, key,
                             meter)
        timings = Timings()
        opts, found = self._estimate(src[:, : round(musical.ANALYSIS_SECONDS * sr)], sr, opts,
                                     estimate_conditions, timings)
        secs, bars_v = musical.resolve_length(seconds, bars_v, opts, MAX_SECONDS)
        lock_to = musical.lock_bars(lock_flag, secs, bars_v, opts)
        extra = round(secs * sr)
        pre = self._frames_for(secs, sr)  # the input starts on a latent frame boundary
        x = self._to_model(src[:, : self._context_samples(sr)], sr, timings)  # what windows see
        src_latent = self._encode_model(_pad_to(x, self.hop), timings)
        known = np.concatenate(
            [np.zeros((self.latent_channels, pre), np.float32), src_latent], axis=1)
        mask = np.zeros(known.shape[1], np.float32)
        mask[:pre] = 1.0
        latent, windows = self._sample(prompt, opts, known, mask, False, None, 0, timings,
                                       progress, should_stop)
        at = round(pre * self.hop * sr / self.sample_rate)  # input's first sample, caller rate
        model = self._decode(latent, sr, src.shape[0], at + 1, timings, should_stop)
        new, locked = self._lock(model[:, at - extra : at], sr, opts, lock_to, timings)
        joined = model[:, at] if locked is None or not locked.applied else new[:, -1]
        new = rg.smooth_seam(new, src[:, 0] - joined, fade, False)
        out = np.concatenate([new, src], axis=1)
        return self._result(out, sr, opts, opts.steps, windows, timings, start,
                            estimated=found, grid_lock=locked)

    def vary(self, audio: np.ndarray, sr: int, strength: float, prompt: str, *,
             seed: int | None = None, steps: int | None = None,
             guidance: float | None = None, sampler: str | None = None,
             bpm: float | None = None, key: str | int | None = None,
             meter: int | str | None = None, progress: Progress | None = None,
             should_stop: ShouldStop | None = None) -> Result:
        """A variation of `audio` (C, N) or (N,) at `sr` Hz: its latent is noised to the level
        `strength` in [0, 1] sets (schedule.start_step_for_strength) and denoised with the
        prompt. Returns (C, N). strength 0 (or any strength that rounds to no step) returns
        the input exactly; strength 1 is exactly `generate` of N / sr seconds with the same
        seed (the source is forgotten). The sampling options are generate's.
        """
        start = time.perf_counter()
        check_prompt(prompt)
        src, sr = rg.check_audio(audio), rg.check_rate(sr)
        value = check_strength(strength)
        opts = self._options(progress, should_stop, seed, steps, guidance, sampler, bpm, key,
                             meter)
        first = start_step_for_strength(opts.steps, value)
        if first == opts.steps:
            return self._result(src.copy(), sr, opts, 0, 0, Timings(), start)
        if first == 0:
            return self.generate(prompt, src.shape[1] / sr, seed=opts.seed, steps=steps,
                                 guidance=guidance, sampler=sampler, bpm=bpm, key=key,
                                 meter=meter, sample_rate=sr, channels=src.shape[0],
                                 progress=progress, should_stop=should_stop)
        timings = Timings()
        source = self._encode(src, sr, timings, should_stop)
        mask = np.ones(source.shape[1], np.float32)
        latent, windows = self._sample(prompt, opts, np.zeros_like(source), mask, False, source,
                                       first, timings, progress, should_stop)
        out = self._decode(latent, sr, src.shape[0], src.shape[1], timings, should_stop)
        return self._result(out, sr, opts, opts.steps - first, windows, timings, start)

    # ---- stages --------------------------------------------------------------------------

    def encode(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """The autoencoder alone: (C, N) or (N,) audio at `sr` Hz -> the normalized latent
        (K, ceil(N' / hop)) the diffusion model works on (N' at the model's rate; the end is
        zero-padded to a whole hop)."""
        return self._encode(rg.check_audio(audio), rg.check_rate(sr), Timings(), None)

    def decode(self, latent: np.ndarray, sr: int = 48000, channels: int = 2,
               frames: int | None = None) -> np.ndarray:
        """A normalized latent (K, T) -> float32 audio (channels, frames) at `sr` Hz (frames
        default: the latent's whole length at sr)."""
        latent = np.asarray(latent, dtype=np.float32)
        if latent.ndim != 2 or latent.shape[0] != self.latent_channels:
            raise ValueError(f"latent must be ({self.latent_channels}, T), got "
                             f"{latent.shape}")
        sr = rg.check_rate(sr)
        if frames is None:
            frames = round(latent.shape[1] * self.hop * sr / self.sample_rate)
        return self._decode(latent, sr, channels, frames, Timings(), None)

    def _options(self, progress: Any = None, should_stop: Any = None, seed: Any = None,
                 steps: Any = None, guidance: Any = None, sampler: Any = None, bpm: Any = None,
                 key: Any = None, meter: Any = None) -> Options:
        check_callbacks(progress, should_stop)
        return resolve_options(self.manifest.sampler, seed, steps, guidance, sampler, bpm,
                               key, meter)

    def _context_samples(self, sr: int) -> int:
        """Input samples (at sr) that can matter to generated frames beside them: one window,
        the codec's margin on both sides and 50 ms for the resampler's filter."""
        frames = self.window_frames + 2 * self.codec_margin + 2
        return round((frames * self.hop / self.sample_rate + 0.05) * sr)

    def _frames_for(self, seconds: float, sr: int) -> int:
        """Latent frames whose decoded audio covers `seconds` at rate sr after resampling
        (one spare sample of each rate, so rounding never leaves the output short)."""
        samples = seconds * self.sample_rate + 2.0 * self.sample_rate / sr + 1.0
        return max(int(math.ceil(samples / self.hop)), 1)

    def _to_model(self, audio: np.ndarray, sr: int, timings: Timings) -> np.ndarray:
        with timings.stage("resample"):
            return rg.to_model(audio, sr, self.sample_rate, self.channels)

    def _encode_model(self, x: np.ndarray, timings: Timings) -> np.ndarray:
        """Model-domain audio (C_m, T * hop) -> latent (K, T), in overlapping chunks."""
        return encode_chunked(lambda a: self.sessions.encode(a, timings), x, self.hop,
                              self.codec_chunk_frames, self.codec_margin)

    def _encode(self, audio: np.ndarray, sr: int, timings: Timings,
                should_stop: ShouldStop | None) -> np.ndarray:
        """Caller's audio -> latent (K, ceil(N' / hop)) of the whole clip (zero-padded end)."""
        poll(should_stop, "before encoding")
        return self._encode_model(_pad_to(self._to_model(audio, sr, timings), self.hop), timings)

    def _decode(self, latent: np.ndarray, sr: int, channels: int, n: int, timings: Timings,
                should_stop: ShouldStop | None) -> np.ndarray:
        """Latent (K, T) -> caller-domain audio (channels, n) at sr."""
        poll(should_stop, "before decoding")
        audio = decode_chunked(lambda z: self.sessions.decode(z, timings), latent, self.hop,
                               self.codec_chunk_frames, self.codec_margin)
        with timings.stage("resample"):
            return rg.fit_length(rg.from_model(audio, self.sample_rate, sr, channels), n)

    def _sample(self, prompt: str, opts: Options, known: np.ndarray, mask: np.ndarray,
                causal: bool, source: np.ndarray | None, first_step: int, timings: Timings,
                progress: Progress | None,
                should_stop: ShouldStop | None) -> tuple[np.ndarray, int]:
        """denoise.sample_canvas with this engine's sessions, schedule and windows."""
        return sample_canvas(self.sessions, self.schedule, opts, prompt, known, mask, causal,
                             self.window_frames, self.overlap_frames, timings, source,
                             first_step, progress, should_stop)

    def _estimate(self, context: np.ndarray, sr: int, opts: Options, enabled: object,
                  timings: Timings) -> tuple[Options, dict[str, Any]]:
        """Unset bpm / key filled from the context audio (musical.estimate)."""
        if check_flag(enabled, "estimate_conditions") is False:
            return opts, {}
        with timings.stage("estimate"):
            return musical.estimate(context, sr, opts, True)

    def _lock(self, audio: np.ndarray, sr: int, opts: Options, bars: float | None,
              timings: Timings) -> tuple[np.ndarray, GridLock | None]:
        """New audio locked to `bars` bars of the DAW grid (musical.lock); as is when None."""
        if bars is None:
            return audio, None
        with timings.stage("grid_lock"):
            return musical.lock(audio, sr, opts, bars)

    def _result(self, audio: np.ndarray, sr: int, opts: Options, steps: int, windows: int,
                timings: Timings, start: float, estimated: dict[str, Any] | None = None,
                grid_lock: GridLock | None = None, groove: float = 0.0) -> Result:
        stages = dict(timings.stages)
        stages["total"] = time.perf_counter() - start
        return Result(audio=np.ascontiguousarray(audio, dtype=np.float32), sample_rate=sr,
                      seed=opts.seed, steps=steps, windows=windows, timings=stages,
                      unet_calls=tuple(timings.unet_calls), providers=self.providers,
                      conditions=opts.conditions, estimated=dict(estimated or {}),
                      grid_lock=grid_lock, groove=groove)


def _positive_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"{low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return int(value)


def _pad_to(audio: np.ndarray, hop: int) -> np.ndarray:
    """(C, N) -> (C, ceil(N / hop) * hop), zeros at the end."""
    return np.pad(audio, ((0, 0), (0, (-audio.shape[1]) % hop)))
