"""EffectChain: a validated chain made ready for one sample rate and channel count."""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from plugin_host.effects import (
    EffectInfo,
    build_effect,
    check_sample_rate,
    effect_info,
    streaming_latency,
)
from plugin_host.errors import ChainError, PluginError
from plugin_host.isolated import Worker
from plugin_host.spec import ChainItem, ChainSpec, EffectItem, parse_chain
from plugin_host.stream import ChainStream, Engine, LocalEngine, Stage, check_audio

MAX_CHANNELS = 64
DEFAULT_BLOCK = 256  # frames per effect call when streaming: 5.3 ms at 48 kHz
BLOCK_RANGE = (16, 8192)
# Extra silence an offline render feeds a buffering effect beyond its streaming latency: in
# one long call pedalboard may hold back a little more than in block-sized calls.
FLUSH_MARGIN = 8192


@functools.lru_cache(maxsize=256)
def _local_latency(
    name: str, kwargs: tuple[tuple[str, Any], ...], sample_rate: float, channels: int, block: int
) -> int:
    info = effect_info(name, name)
    return streaming_latency(
        lambda: build_effect(info, dict(kwargs), name), sample_rate, channels, block
    )


class EffectChain:
    """A chain of pedalboard effects and out-of-process plugins at one rate and layout.

    `spec`: a ChainSpec, or anything `parse_chain` accepts. Built-in effects run in this
    process (or in a worker with `isolate: true`); VST3/AU plugins always run in a worker
    process each, loaded here, so a bad parameter name is a ChainError now and a plugin that
    crashes or hangs later is a PluginError for that call only. Close the chain (or use it as
    a context manager) to stop its workers.

    - `process(audio)`: offline, (channels, frames) -> same shape, sample-aligned with the
      input (every latency compensated); `tail_seconds` renders that much more (reverb tails).
    - `stream()`: a ChainStream for chunks of any size, `latency_samples` late.

    `block_size`: frames per effect call when streaming (16..8192); the stream's latency is
    block_size - 1 plus the items' own.
    """

    def __init__(
        self, spec: object, sample_rate: float, channels: int = 2, block_size: int = DEFAULT_BLOCK
    ) -> None:
        self.spec: ChainSpec = parse_chain(spec)
        if (
            isinstance(sample_rate, bool)
            or not isinstance(sample_rate, int | float)
            or not math.isfinite(sample_rate)
            or sample_rate <= 0
        ):
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        if isinstance(channels, bool) or not isinstance(channels, int):
            raise ValueError(f"channels must be a whole number, got {channels!r}")
        if not 1 <= channels <= MAX_CHANNELS:
            raise ValueError(f"channels must be 1..{MAX_CHANNELS}, got {channels}")
        low, high = BLOCK_RANGE
        if isinstance(block_size, bool) or not isinstance(block_size, int):
            raise ValueError(f"block_size must be a whole number, got {block_size!r}")
        if not low <= block_size <= high or block_size <= channels:
            raise ValueError(
                f"block_size must be {low}..{high} and more than channels, got {block_size}"
            )
        self.sample_rate = float(sample_rate)
        self.channels = channels
        self.block_size = block_size
        for item in self.spec.active:
            if isinstance(item, EffectItem):
                check_sample_rate(item.kwargs, self.sample_rate, item.where)
        self._stages = self._build()

    # -- building ---------------------------------------------------------------------------

    def _worker(self, item: ChainItem) -> Worker:
        return Worker(item.payload(), self.sample_rate, self.channels, self.block_size,
                      item.timeout_s, item.where)

    def _engine(self, item: ChainItem) -> tuple[Engine, str | None]:
        if not isinstance(item, EffectItem):
            return self._worker(item), None
        info: EffectInfo = item.info
        if item.isolate:
            return self._worker(item), info.offline_only
        latency = 0
        if not info.offline_only:
            key = tuple(sorted(item.kwargs.items()))
            latency = _local_latency(
                info.name, key, self.sample_rate, self.channels, self.block_size
            )
        plugin = build_effect(info, item.kwargs, item.where)
        return LocalEngine(plugin, self.sample_rate, latency), info.offline_only

    def _build(self) -> list[Stage]:
        """Fresh stages (new effect instances, new worker processes) for the active items."""
        stages: list[Stage] = []
        try:
            for item in self.spec.active:
                engine, offline_only = self._engine(item)
                stages.append(Stage(engine, item.where, self.channels, item.mix, offline_only))
        except BaseException:
            for stage in stages:
                stage.close()
            raise
        return stages

    # -- facts ------------------------------------------------------------------------------

    @property
    def latency_samples(self) -> int:
        """Frames a stream's output lags its input: block_size - 1 (a block filling) plus the
        latency each item reports (plugins) or shows (built-ins that buffer, like
        MP3Compressor). Offline rendering compensates all of it."""
        return self.block_size - 1 + sum(s.latency for s in self._stages if not s.offline_only)

    @property
    def offline_only(self) -> str | None:
        """Why this chain cannot stream (an item pedalboard cannot stream), or None."""
        for stage in self._stages:
            if stage.offline_only:
                return f"{stage.where}: {stage.offline_only}"
        return None

    def describe(self) -> list[dict[str, Any]]:
        """One dict per active item: `where`, `latency` (frames, when streamed), `pid` (its
        worker process, None in-process), `name`, `parameters` (plugins: pedalboard's
        description of each parameter, current value included)."""
        described = []
        for stage in self._stages:
            engine: Any = stage.engine
            info = engine.info if isinstance(engine, Worker) else {}
            described.append({
                "where": stage.where,
                "latency": stage.latency,
                "pid": engine.pid if isinstance(engine, Worker) else None,
                "name": info.get("name", stage.where.rpartition("(")[2].rstrip(")")),
                "parameters": info.get("parameters", {}),
            })
        return described

    # -- processing -------------------------------------------------------------------------

    def _run_segment(self, stages: Sequence[Stage], x: np.ndarray) -> np.ndarray:
        """Streamable stages over the whole buffer, one call each: what a stream computes
        (same silence between stages), fed enough trailing silence to flush every delay."""
        latency = sum(stage.latency for stage in stages)
        frames = x.shape[1]
        flush = latency + FLUSH_MARGIN * sum(1 for stage in stages if stage.latency)
        flush += max(0, self.block_size - (frames + flush))  # never a call of < block frames
        y = np.concatenate([x, np.zeros((self.channels, flush), np.float32)], axis=1)
        for stage in stages:
            stage.reset()
            y = stage.process_whole(y)
        if y.shape[1] < latency + frames:
            raise PluginError(
                f"{stages[0].where}..: held back more audio than the chain's latency "
                f"({latency} frames) plus {FLUSH_MARGIN} frames of flush"
            )
        return y[:, latency : latency + frames]

    def process(self, audio: np.ndarray, tail_seconds: float = 0.0) -> np.ndarray:
        """Offline: (channels, frames) float -> (channels, frames + tail) float32.

        Output frame i lines up with input frame i (plugin and effect latency compensated).
        `tail_seconds` >= 0 appends that much silence to the input first, so a reverb or
        delay tail is kept instead of cut at the input's end. Raises PluginError when a
        plugin process crashes or hangs (the chain's other workers live on).
        """
        x = check_audio(audio, self.channels, "audio")
        if (
            isinstance(tail_seconds, bool)
            or not isinstance(tail_seconds, int | float)
            or not math.isfinite(tail_seconds)
            or tail_seconds < 0
        ):
            raise ValueError(f"tail_seconds must be a number >= 0, got {tail_seconds!r}")
        tail = round(tail_seconds * self.sample_rate)
        if tail:
            x = np.concatenate([x, np.zeros((self.channels, tail), np.float32)], axis=1)
        start = 0
        while start < len(self._stages):
            stage = self._stages[start]
            if stage.offline_only:  # pedalboard renders it whole, compensating its latency
                x = stage.render(x)
                start += 1
                continue
            end = start
            while end < len(self._stages) and not self._stages[end].offline_only:
                end += 1
            x = self._run_segment(self._stages[start:end], x)
            start = end
        return x

    def stream(self) -> ChainStream:
        """A chunk processor with its own effect instances and worker processes (close it to
        stop them). ChainError when an item cannot stream (see `offline_only`)."""
        reason = self.offline_only
        if reason:
            raise ChainError(f"{reason}; this chain renders offline only (EffectChain.process)")
        return ChainStream(self._build(), self.channels, self.block_size)

    def close(self) -> None:
        """Stop the chain's worker processes. Idempotent."""
        for stage in self._stages:
            stage.close()

    def __enter__(self) -> EffectChain:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
