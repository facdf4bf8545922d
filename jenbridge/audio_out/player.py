"""Sample-accurate clip playback through one ``sounddevice.OutputStream``.

Time is the stream's clock: **sample 0 is the first frame the stream ever output** and the
position is the number of frames output so far (``status().position``). Clips are scheduled at
absolute samples on that clock.

Threads:

- the PortAudio callback only copies the next block out of a :class:`RingBuffer` (zeros when it
  is empty), counts underruns and xruns in plain ints, and applies the stop fade with a
  precomputed ramp. It takes no lock, allocates no array and never logs;
- a feeder thread renders the timeline (the sum of the scheduled clips, silence between them)
  into the ring buffer, keeping ``lead_frames`` frames ahead of the callback. Because slot and
  absolute frame are tied, a clip starting at sample ``S`` begins exactly at output frame ``S``,
  in the middle of a callback block if need be.

Frames up to ``status().committed`` are already in the ring buffer, so a clip must start at or
after it (``lead_frames`` past the position, about 85 ms at the defaults): "now" means there.
Overlapping clips are summed.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from time import monotonic as _monotonic

import numpy as np

from jenbridge.audio_out.devices import AudioUnavailable, find_output_device, load_sounddevice
from jenbridge.audio_out.ringbuffer import RingBuffer


def bar_length(bpm: float, meter: str | tuple[int, int], sample_rate: int) -> float:
    """Frames per bar (may be fractional). ``bpm`` counts quarter notes per minute; ``meter`` is
    ``"7/8"`` or ``(7, 8)``: a bar lasts ``num * 4 / den`` quarter notes.
    """
    num, den = (int(x) for x in meter.split("/")) if isinstance(meter, str) else meter
    if bpm <= 0 or num <= 0 or den <= 0:
        raise ValueError(f"bpm and meter must be positive, got {bpm}, {num}/{den}")
    return sample_rate * 60.0 / bpm * num * 4.0 / den


@dataclass(frozen=True)
class PlayerStatus:
    """``position``: frames output so far; ``committed``: frames already in the ring buffer
    (earliest schedulable start); ``queued_clips``: clips not finished rendering; ``underruns``:
    callbacks that lacked data while a clip was scheduled; ``xruns``: callbacks PortAudio flagged.
    """

    position: int
    committed: int
    queued_clips: int
    underruns: int
    xruns: int
    sample_rate: int


@dataclass
class _Clip:
    start: int
    frames: np.ndarray  # (N, channels) float32

    @property
    def end(self) -> int:
        return self.start + len(self.frames)


class Player:
    """Plays (C, N) float32 clips at absolute samples of one output stream.

    ``device``: ``None`` (PortAudio's default), an index, or a name / unique substring (see
    :func:`find_output_device`, restricted to host API ``hostapi`` if given). ``blocksize``: frames
    per callback, 0 lets the host choose (JACK: its period). ``lead_frames``: how far the feeder
    keeps the ring buffer ahead of playback. ``fade_ms``: ``stop()`` fade-out length.
    Raises :class:`AudioUnavailable` when PortAudio is missing or the stream cannot be opened.
    """

    def __init__(self, device: int | str | None = None, sample_rate: int = 48000,
                 channels: int = 2, blocksize: int = 0, lead_frames: int = 4096,
                 fade_ms: float = 5.0, hostapi: str | None = None,
                 latency: float | str | None = None, start: bool = True) -> None:
        sd = load_sounddevice()
        if isinstance(device, str):
            device = find_output_device(device, hostapi).index
        self.sample_rate = int(sample_rate)
        self.channels = int(channels)
        self.lead_frames = int(lead_frames)
        self._ring = RingBuffer(max(4 * self.lead_frames, self.sample_rate // 2), self.channels)
        self._scratch = np.zeros((self.lead_frames, self.channels), dtype=np.float32)
        fade = max(1, round(fade_ms * self.sample_rate / 1000))
        self._ramp = np.cos(np.linspace(0, np.pi / 2, fade, dtype=np.float32))[:, None] ** 2
        self._clips: list[_Clip] = []
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._closed = False
        # Plain ints shared with the callback (single writer each, atomic under the GIL).
        self._scheduled_until = 0
        self._underruns = 0
        self._xruns = 0
        self._stop_request = (0, 0)  # (request id, mute frames before this sample): one store
        self._stop_seen = 0
        self._fade_at = -(1 << 62)
        self._feeder = threading.Thread(target=self._feed_loop, name="jenbridge-feeder",
                                        daemon=True)
        self._feeder.start()
        try:
            self._stream = sd.OutputStream(
                device=device, samplerate=self.sample_rate, channels=self.channels,
                dtype="float32", blocksize=blocksize, latency=latency, callback=self._callback)
        except sd.PortAudioError as e:
            self._stop_feeder()
            raise AudioUnavailable(f"cannot open output stream on device {device!r}: {e}") from e
        self._latency = float(self._stream.latency or 0.0)
        # the output clock: time.monotonic() of sample 0, one estimate per callback (~2 s)
        self._clock_offsets = np.full(256, np.inf)
        self._clock_n = 0
        if start:
            self._stream.start()

    # ---- audio callback: copy only --------------------------------------------------------------
    def _callback(self, outdata: np.ndarray, frames: int, time, status) -> None:
        if status:
            self._xruns += 1
        pos = self._ring.read_pos
        # when this block's first frame reaches the DAC, on time.monotonic(), as the offset of
        # sample 0; a late callback only makes it larger, so readers take the window's minimum
        dac = time.outputBufferDacTime - time.currentTime if time is not None else 0.0
        k = self._clock_n
        self._clock_offsets[k % len(self._clock_offsets)] = (
            _monotonic() + (dac if 0.0 < dac < 1.0 else self._latency) - pos / self.sample_rate)
        self._clock_n = k + 1
        got = self._ring.read_into(outdata)
        if got < frames and pos + got < self._scheduled_until:
            self._underruns += 1
        req, mute_until = self._stop_request
        if req != self._stop_seen:
            self._stop_seen = req
            if pos - self._fade_at >= len(self._ramp):
                self._fade_at = pos
        if pos < mute_until:
            m = min(frames, mute_until - pos)
            off = pos - self._fade_at
            k = min(m, max(0, len(self._ramp) - off))
            if k:
                outdata[:k] *= self._ramp[off : off + k]
            outdata[k:m] = 0.0

    # ---- feeder thread --------------------------------------------------------------------------
    def _feed_loop(self) -> None:
        period = self.lead_frames / 4 / self.sample_rate
        while not self._closed:
            with self._lock:
                self._fill()
            self._wake.wait(period)
            self._wake.clear()

    def _fill(self) -> None:
        """Render the timeline into the ring buffer up to ``lead_frames`` past the position."""
        ring = self._ring
        while True:
            start = ring.writable_from()
            n = min(ring.read_pos + self.lead_frames - start, len(self._scratch))
            if n <= 0:
                return
            block = self._scratch[:n]
            block[:] = 0.0
            for c in self._clips:
                s, e = max(start, c.start), min(start + n, c.end)
                if s < e:
                    block[s - start : e - start] += c.frames[s - c.start : e - c.start]
            written = ring.write(block)
            self._clips = [c for c in self._clips if c.end > start + written]
            if written < n:
                return

    # ---- public API -----------------------------------------------------------------------------
    def _as_frames(self, audio: np.ndarray) -> np.ndarray:
        a = np.asarray(audio, dtype=np.float32)
        if a.ndim == 1:
            a = a[None, :]
        if a.ndim != 2 or a.shape[0] not in (1, self.channels):
            raise ValueError(f"audio must be (channels={self.channels} or 1, N), got {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("audio contains NaN or inf")
        return np.ascontiguousarray(np.broadcast_to(a, (self.channels, a.shape[1])).T)

    def _zero_time(self) -> float:
        if self._clock_n == 0:
            raise ValueError("the output stream has not started yet")
        return float(self._clock_offsets.min())

    def sample_at(self, t: float) -> float:
        """The stream sample that reaches the output at time.monotonic() `t` (from the DAC
        times of the recent callbacks); ValueError before the stream has run."""
        return (t - self._zero_time()) * self.sample_rate

    def time_of(self, sample: int) -> float:
        """The time.monotonic() at which stream sample `sample` reaches the output."""
        return self._zero_time() + sample / self.sample_rate

    def earliest_start(self) -> int:
        """First sample a new clip can start at (the end of what is already buffered)."""
        return self._ring.writable_from()

    @property
    def position(self) -> int:
        """Frames output so far (the stream clock, in samples)."""
        return self._ring.read_pos

    def play(self, audio: np.ndarray, at_sample: int | None = None,
             trim_late: bool = False) -> int:
        """Queue ``audio`` (C, N) float32 in [-1, 1] to start at stream sample ``at_sample``
        (``None``: as soon as possible). Return the start sample. If ``at_sample`` is before
        :meth:`earliest_start` (already buffered or played), raise ``ValueError``, or with
        ``trim_late`` drop the late head and start at :meth:`earliest_start` (returned) so the
        rest stays on its original grid.
        """
        frames = self._as_frames(audio)
        with self._lock:
            earliest = self._ring.writable_from()
            start = earliest if at_sample is None else int(at_sample)
            if start < earliest and trim_late:
                frames, start = frames[earliest - start :], earliest
            if start < earliest:
                raise ValueError(f"at_sample {start} is already buffered or played; the earliest "
                                 f"schedulable sample is {earliest}")
            if len(frames):
                self._clips.append(_Clip(start, frames))
                self._scheduled_until = max(self._scheduled_until, start + len(frames))
        self._wake.set()
        return start

    def next_bar(self, bpm: float, meter: str | tuple[int, int], origin_sample: int = 0) -> int:
        """First bar line at or after :meth:`earliest_start` on the grid through
        ``origin_sample`` (bar lines are rounded to whole samples)."""
        bar = bar_length(bpm, meter, self.sample_rate)
        earliest = self.earliest_start()
        k = math.ceil((earliest - origin_sample) / bar)
        while origin_sample + round(k * bar) < earliest:
            k += 1
        return origin_sample + round(k * bar)

    def schedule_at_next_bar(self, audio: np.ndarray, bpm: float, meter: str | tuple[int, int],
                             origin_sample: int = 0) -> int:
        """Queue ``audio`` (C, N) at the next bar line (see :meth:`next_bar`); return its start."""
        with self._lock:
            return self.play(audio, self.next_bar(bpm, meter, origin_sample))

    def stop(self) -> None:
        """Drop every queued clip and fade what is buffered out over ``fade_ms`` (no click)."""
        with self._lock:
            self._clips.clear()
            self._scheduled_until = min(self._scheduled_until, self._ring.write_pos)
            self._stop_request = (self._stop_request[0] + 1, self._ring.write_pos)

    def status(self) -> PlayerStatus:
        with self._lock:
            queued = len(self._clips)
        return PlayerStatus(self._ring.read_pos, self._ring.writable_from(), queued,
                            self._underruns, self._xruns, self.sample_rate)

    def _stop_feeder(self) -> None:
        self._closed = True
        self._wake.set()
        self._feeder.join()

    def close(self) -> None:
        """Stop the stream and the feeder thread (idempotent)."""
        if self._closed:
            return
        self._stop_feeder()
        self._stream.stop()
        self._stream.close()

    def __enter__(self) -> Player:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
