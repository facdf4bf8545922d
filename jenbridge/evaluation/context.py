"""What every evaluation suite shares: the clips, the models under test, the embedding model,
the settings, and a small accumulator of per-clip scores by metric and system.

A *system* is anything that produces audio for a task: a model bundle ("model", "early@500")
or a baseline ("silence", "white noise", "repeat bar", "crossfade", "real"). Suites add one
score per clip and system; a metric's figure is the mean over clips (so a 0/1 score gives a
fraction).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from jenbridge.engine.options import DEFAULT_GROOVE
from jenbridge.evaluation.clips import EvalClip


@dataclass(frozen=True)
class Settings:
    """What a run does. seconds: audio per clip; steps: sampler steps (None = the bundle's);
    bpms / meters / tempo_bars: the tempo-adherence grid; keys: key codes for key adherence;
    strengths: the variation sweep; vary_clips: clips it runs on. grooves: the continuation
    suite runs every model at the first (the engine's default unless set) and the model under
    test also at each other one, as extra rows "model, groove G". continue_seconds: the
    continuation suite's excerpt length (None = seconds): longer excerpts, joined from
    consecutive clips of one piece, give the tempo and key measures more music to judge."""

    seconds: float = 10.0
    steps: int | None = None
    seed: int = 0
    bpms: tuple[float, ...] = (70.0, 90.0, 110.0, 130.0, 150.0, 170.0)
    meters: tuple[int, ...] = (3, 4)
    tempo_bars: float = 4.0
    keys: tuple[int, ...] = tuple(range(1, 25))
    strengths: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
    vary_clips: int = 4
    inpaint_fraction: float = 0.25
    continue_fraction: float = 0.4
    grooves: tuple[float, ...] = (DEFAULT_GROOVE, 0.0)
    continue_seconds: float | None = None

    @property
    def continuation_seconds(self) -> float:
        return self.seconds if self.continue_seconds is None else self.continue_seconds


@dataclass
class Model:
    """A bundle under test: label ("model", "early@500"), training step (None = unknown)."""

    label: str
    bundle: str
    step: int | None
    engine: Any  # jenbridge.engine.Engine


@dataclass(frozen=True)
class MetricSpec:
    unit: str
    better: str  # "higher" | "lower"
    description: str


class Scores:
    """Per-clip scores by metric and system; `summary` gives means in insertion order."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, list[float]]] = {}

    def add(self, metric: str, system: str, value: float) -> None:
        if not np.isfinite(value):
            raise AssertionError(f"{metric} of {system} is not finite: {value}")
        self._values.setdefault(metric, {}).setdefault(system, []).append(float(value))

    def mean(self, metric: str, system: str) -> float:
        return float(np.mean(self._values[metric][system]))

    def summary(self, specs: dict[str, MetricSpec]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for metric, by_system in self._values.items():
            spec = specs[metric]
            out[metric] = {"unit": spec.unit, "better": spec.better,
                           "description": spec.description,
                           "values": {s: float(np.mean(v)) for s, v in by_system.items()},
                           "n": {s: len(v) for s, v in by_system.items()}}
        return out


@dataclass
class Context:
    """Shared state of one evaluation run."""

    clips: list[EvalClip]
    probe: list[EvalClip]
    models: list[Model]
    settings: Settings
    sample_rate: int
    channels: int
    embedder: Any = None  # embeddings.Embedder, built on first use
    embedder_name: str = "aisfx"
    threads: int | None = None
    examples: dict[str, dict[str, Any]] = field(default_factory=dict)  # for spectrograms.png
    continue_clips: list[EvalClip] | None = None  # settings.continue_seconds long (None: clips)
    _embedding_cache: dict[str, np.ndarray] = field(default_factory=dict)

    def rng(self, *salt: int) -> np.random.Generator:
        """A generator for one clip / purpose: the run's seed plus a salt."""
        return np.random.default_rng([self.settings.seed, *salt])

    def embed(self, audio: np.ndarray, cache_key: str | None = None) -> np.ndarray:
        """(W, D) window embeddings of (C, N) audio at the run's rate (cached by key)."""
        if cache_key is not None and cache_key in self._embedding_cache:
            return self._embedding_cache[cache_key]
        if self.embedder is None:
            from jenbridge.evaluation.embeddings import build_embedder

            self.embedder = build_embedder(self.embedder_name, self.threads)
        out = self.embedder.windows(audio, self.sample_rate)
        if cache_key is not None:
            self._embedding_cache[cache_key] = out
        return out

    def example(self, name: str, audio: np.ndarray, marks: Sequence[float] = (),
                title: str = "") -> None:
        """Keep one audio example (the first clip's) for spectrograms.png."""
        self.examples.setdefault(name, {"audio": audio, "marks": list(marks),
                                        "title": title or name})


def roundtrip(engine: Any, audio: np.ndarray, sr: int) -> np.ndarray:
    """The autoencoder alone: encoder.onnx then decoder.onnx (no diffusion), (C, N) -> (C, N)
    at sr; the engine's own chunked encode/decode and resampling."""
    return engine.decode(engine.encode(audio, sr), sr, audio.shape[0], audio.shape[1])


def encode(engine: Any, audio: np.ndarray, sr: int) -> np.ndarray:
    """(K, T) normalized latent of (C, N) audio at sr."""
    return engine.encode(audio, sr)
