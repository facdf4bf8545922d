"""Streaming: chain items as fixed-delay stages, and the chunk processor built from them.

Two facts about pedalboard's `process(..., reset=False)` shape this file (both pinned by
tests/test_plugin_host.py):

1. A call longer than every call since the last reset re-prepares the effect, which clears
   its state (a reverb tail, a delay line, an LFO): chunks of 2000 then 4096 frames click.
   So a stream calls every effect with blocks of exactly `block` frames.
2. pedalboard compensates an effect's latency by returning fewer frames than it got until
   the delayed audio comes out. Each Stage puts that delay back in front as silence, so it
   returns exactly as many frames as it got, `latency` frames late.

A ChainStream is the stages in series behind a block-filling buffer: its output is the
chain's, exactly `latency_samples` = block - 1 + the stages' latencies late, for any chunk
sizes. EffectChain.process runs the same stages over the whole input (plus silence to flush
the delayed end) and drops the first frames, so stream and offline agree sample for sample.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from plugin_host.errors import PluginError


class Engine(Protocol):
    """What runs one item: a pedalboard effect here (LocalEngine) or a worker process
    (isolated.Worker)."""

    latency: int  # frames it withholds at most when streamed (see effects.streaming_latency)

    def run(self, x: np.ndarray, block: int | None) -> np.ndarray:
        """process(reset=False) of (C, n), in calls of `block` frames (n a multiple of it) or,
        with None, in one call: (C, m <= n); the withheld frames come out in later calls."""
        ...

    def render(self, x: np.ndarray) -> np.ndarray:
        """process(reset=True) of a whole buffer: (C, n) -> (C, n), latency compensated."""
        ...

    def reset(self) -> None: ...

    def close(self) -> None: ...


def run_blocks(plugin: object, x: np.ndarray, sample_rate: float, block: int | None) -> np.ndarray:
    """pedalboard process(reset=False) of (C, n) in `block`-frame calls (None: one call)."""
    channels = x.shape[0]
    step = block or max(x.shape[1], 1)
    outs = []
    for start in range(0, x.shape[1], step):
        out = plugin.process(  # type: ignore[attr-defined]
            x[:, start : start + step], sample_rate, reset=False
        )
        # pedalboard keeps the (C, n) layout; an empty result may come back as (0, 0).
        outs.append(out.reshape(channels, out.size // channels))
    if not outs:
        return np.zeros((channels, 0), np.float32)
    return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)


class LocalEngine:
    """A pedalboard effect in this process."""

    def __init__(self, plugin: object, sample_rate: float, latency: int) -> None:
        self.plugin = plugin
        self.sample_rate = sample_rate
        self.latency = latency

    def run(self, x: np.ndarray, block: int | None) -> np.ndarray:
        return run_blocks(self.plugin, x, self.sample_rate, block)

    def render(self, x: np.ndarray) -> np.ndarray:
        out = self.plugin.process(x, self.sample_rate, reset=True)  # type: ignore[attr-defined]
        return out.reshape(x.shape)

    def reset(self) -> None:
        self.plugin.reset()  # type: ignore[attr-defined]

    def close(self) -> None:
        pass


class Fifo:
    """(C, n) float32 frames in, frames out; holds at most a block plus a latency."""

    def __init__(self, channels: int, silence: int = 0) -> None:
        self.buffer = np.zeros((channels, silence), np.float32)

    def __len__(self) -> int:
        return self.buffer.shape[1]

    def push(self, x: np.ndarray) -> None:
        if x.shape[1]:
            self.buffer = np.concatenate([self.buffer, x], axis=1) if len(self) else x

    def pop(self, frames: int) -> np.ndarray:
        out, self.buffer = self.buffer[:, :frames], self.buffer[:, frames:]
        return out


class Stage:
    """One chain item: n frames in, n frames out, `latency` frames late.

    The delay is hand-written (a Fifo primed with `latency` frames of silence) because it is
    what makes a stream exact: pedalboard itself returns a varying number of frames per call
    while a latency is being compensated. `mix` (0..1) blends the wet output with the input
    delayed by the same latency, so the two line up.
    """

    def __init__(
        self,
        engine: Engine,
        where: str,
        channels: int,
        mix: float | None,
        offline_only: str | None = None,
    ) -> None:
        self.engine = engine
        self.where = where
        self.channels = channels
        self.mix = mix
        self.offline_only = offline_only  # why it cannot stream (rendered whole instead)
        self.latency = engine.latency
        self.reset_buffers()

    def reset_buffers(self) -> None:
        self._wet = Fifo(self.channels, self.latency)
        self._dry = Fifo(self.channels, self.latency) if self.mix is not None else None

    def reset(self) -> None:
        self.engine.reset()
        self.reset_buffers()

    def _checked(self, y: np.ndarray) -> np.ndarray:
        if not np.isfinite(y).all():
            raise PluginError(f"{self.where}: produced non-finite audio (NaN or infinity)")
        return y

    def _blend(self, dry: np.ndarray, wet: np.ndarray) -> np.ndarray:
        assert self.mix is not None
        return ((1.0 - self.mix) * dry + self.mix * wet).astype(np.float32)

    def process(self, x: np.ndarray, block: int) -> np.ndarray:
        """Streaming: (C, k * block) -> (C, k * block), `latency` frames late."""
        frames = x.shape[1]
        self._wet.push(self._checked(self.engine.run(x, block)))
        if len(self._wet) < frames:
            raise PluginError(
                f"{self.where}: held back more audio than its measured latency of "
                f"{self.latency} frames; it cannot be streamed"
            )
        wet = self._wet.pop(frames)
        if self._dry is None:
            return wet
        self._dry.push(x)
        return self._blend(self._dry.pop(frames), wet)

    def process_whole(self, x: np.ndarray) -> np.ndarray:
        """Offline, after reset(): the input in one call, `latency` frames of silence in front;
        returns (C, latency + n - withheld), the withheld frames still inside the effect."""
        silence = np.zeros((self.channels, self.latency), np.float32)
        wet = np.concatenate([silence, self._checked(self.engine.run(x, None))], axis=1)
        if self.mix is None:
            return wet
        dry = np.concatenate([silence, x], axis=1)[:, : wet.shape[1]]
        return self._blend(dry, wet)

    def render(self, x: np.ndarray) -> np.ndarray:
        """Offline, for effects that cannot stream: pedalboard renders the whole buffer."""
        frames = x.shape[1]
        # pedalboard reads the layout from the shape: give it more frames than channels.
        padded = np.pad(x, ((0, 0), (0, max(0, self.channels + 1 - frames))))
        wet = self._checked(self.engine.render(padded))[:, :frames]
        return wet if self.mix is None else self._blend(x, wet)

    def close(self) -> None:
        self.engine.close()


def check_audio(audio: object, channels: int, what: str) -> np.ndarray:
    """(channels, frames) float32, C-contiguous, finite; ValueError naming `what` otherwise."""
    if not isinstance(audio, np.ndarray) or audio.ndim != 2 or audio.shape[0] != channels:
        shape = getattr(audio, "shape", type(audio).__name__)
        raise ValueError(f"{what} must be a ({channels}, frames) array, got {shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        raise ValueError(f"{what} must be floating point audio, got {audio.dtype}")
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    if not np.isfinite(audio).all():
        raise ValueError(f"{what} contains NaN or infinity")
    return audio


class ChainStream:
    """A chain's stateful chunk processor (from `EffectChain.stream()`).

    `process(chunk)`: (channels, n) float -> (channels, n) float32, the chain's output
    `latency_samples` frames late, every effect's state carried across chunks, so the
    concatenated outputs equal `EffectChain.process` of the concatenated inputs shifted by
    `latency_samples`, for any chunk sizes (1, 37, 4096, ...). `reset()` starts over from
    silence; `close()` stops the stream's worker processes.
    """

    def __init__(self, stages: Sequence[Stage], channels: int, block: int) -> None:
        self.stages = list(stages)
        self.channels = channels
        self.block = block
        # block - 1 frames wait for a block to fill; the stages add their own latency.
        self.latency_samples = block - 1 + sum(stage.latency for stage in self.stages)
        self._fresh = True
        self._reset_buffers()

    def _reset_buffers(self) -> None:
        self._input = Fifo(self.channels)
        self._output = Fifo(self.channels, self.block - 1)

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()
        self._reset_buffers()
        self._fresh = False

    def process(self, chunk: np.ndarray) -> np.ndarray:
        x = check_audio(chunk, self.channels, "chunk")
        if self._fresh:  # pedalboard compensates a plugin's latency only after a reset
            self.reset()
        self._input.push(x)
        whole = len(self._input) // self.block * self.block
        if whole:
            y = self._input.pop(whole)
            for stage in self.stages:
                y = stage.process(y, self.block)
            self._output.push(y)
        return self._output.pop(x.shape[1])

    def close(self) -> None:
        for stage in self.stages:
            stage.close()

    def __enter__(self) -> ChainStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
