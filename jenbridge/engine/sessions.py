"""The bundle's four ONNX Runtime sessions, created once and kept warm, plus per-stage timing.

`BundleSessions(folder)` reads and verifies the manifest (sha256 of every file), tokenizes with
the bundle's `tokenizer.json` (no torch, no transformers), chooses the execution providers
(`providers.choose_providers`), creates one session per graph and logs which provider each one
really runs on (ONNX Runtime falls back to CPU silently; `get_providers()` tells the truth).

Array conventions (numpy, channels first, batch first):

  text(prompt)        -> states float32 (1, L, D), mask float32 (1, L) 1 = real token
  encode(audio)       audio float32 (B, C, N) at the bundle rate, N a multiple of latent_hop
                      -> normalized latent float32 (B, K, N / latent_hop)
  unet(feeds)         the U-Net inputs by name (bundle.py) -> prediction float32 (B, K, T)
  decode(latent)      (B, K, T) -> audio float32 (B, C, T * latent_hop)

Inputs are cast to the dtype each graph declares (e.g. text_mask float32 or int64), so exporters
may differ in those details. Every call adds its wall time to a `Timings` record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from jenbridge.bundle import GRAPHS, BundleError, Manifest, read_manifest
from jenbridge.engine.providers import choose_providers, create_session, session_options
from jenbridge.text_tokenizer import PromptTokenizer

log = logging.getLogger("jenbridge.engine")

UNET_INPUTS = ("x", "t", "masked", "mask", "text", "text_mask", "bpm", "key", "meter", "causal")
_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
TEXT_CACHE_SIZE = 64  # prompts whose token states are kept (a DAW session reuses a few)


@dataclass
class Timings:
    """Wall-clock seconds per stage of one request: "text", "encoder", "unet", "decoder",
    "resample", ... (sums), and the duration of every U-Net call in order (`unet_calls`)."""

    stages: dict[str, float] = field(default_factory=dict)
    unet_calls: list[float] = field(default_factory=list)

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + seconds
        if stage == "unet":
            self.unet_calls.append(seconds)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.add(name, time.perf_counter() - start)


def _dtype(type_name: str, graph: str, name: str) -> Any:
    if type_name not in _ORT_TYPES:
        raise BundleError(f"{graph}.onnx input {name!r} has unsupported type {type_name}")
    return _ORT_TYPES[type_name]


class BundleSessions:
    """ONNX Runtime sessions over one model bundle (see the module docstring for shapes).

    Args:
        folder: the bundle folder (manifest.json + the files it lists).
        providers: execution providers to try, best first ("cuda", "coreml", "cpu", ...);
            None = CUDA -> CoreML -> CPU, each only if it really works here.
        threads: intra-op threads per session (None: the cores this process may use, <= 8).
        verify: check every file's sha256 against the manifest (refuses a corrupt bundle).

    Thread-safe: ONNX Runtime sessions may be run from several threads; the text cache locks.
    """

    def __init__(
        self,
        folder: str | Path,
        providers: str | Sequence[str] | None = None,
        threads: int | None = None,
        verify: bool = True,
    ) -> None:
        self.folder = Path(folder)
        self.manifest: Manifest = read_manifest(self.folder, verify=verify)
        m = self.manifest
        if m.latent_hop < 1 or m.sample_rate < 1 or m.channels < 1 or m.latent_channels < 1:
            raise BundleError(f"{self.folder}: manifest has a non-positive rate, hop or channel "
                              "count")
        self.tokenizer = PromptTokenizer(self.folder / "tokenizer.json", m.max_tokens)
        self.requested = choose_providers(providers)
        options = session_options(threads)
        self.threads = options.intra_op_num_threads
        self.sessions: dict[str, Any] = {}
        for graph in GRAPHS:
            path = self.folder / f"{graph}.onnx"
            try:
                self.sessions[graph] = create_session(str(path), self.requested, options)
            except Exception as err:  # ORT raises its own types for unloadable graphs
                raise BundleError(f"bundle {self.folder}: {graph}.onnx does not load in "
                                  f"ONNX Runtime ({err})") from None
        self.providers = {g: list(s.get_providers()) for g, s in self.sessions.items()}
        for graph, used in self.providers.items():
            log.info("%s.onnx runs on %s", graph, used[0])
            if used[0] != self.requested[0]:
                log.warning("%s.onnx asked for %s but runs on %s", graph, self.requested[0],
                            used[0])
        self._inputs = {
            g: [(i.name, _dtype(i.type, g, i.name)) for i in s.get_inputs()]
            for g, s in self.sessions.items()
        }
        self._check_graphs()
        self._text_cache: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def _check_graphs(self) -> None:
        names = {g: [n for n, _ in ins] for g, ins in self._inputs.items()}
        missing = sorted(set(UNET_INPUTS) - set(names["unet"]))
        if missing:
            raise BundleError(f"bundle {self.folder}: unet.onnx lacks inputs {missing}")
        for graph, count in (("text_encoder", 2), ("encoder", 1), ("decoder", 1)):
            if len(names[graph]) != count:
                raise BundleError(f"bundle {self.folder}: {graph}.onnx takes "
                                  f"{len(names[graph])} inputs, expected {count}")

    @property
    def active_providers(self) -> list[str]:
        """Providers the sessions really run on, best first, without repeats."""
        return list(dict.fromkeys(p for used in self.providers.values() for p in used[:1]))

    def _run(self, graph: str, arrays: Sequence[np.ndarray] | dict[str, np.ndarray],
             timings: Timings | None, stage: str) -> np.ndarray:
        spec = self._inputs[graph]
        if isinstance(arrays, dict):
            feeds = {name: np.ascontiguousarray(arrays[name], dtype=dt) for name, dt in spec}
        else:
            feeds = {name: np.ascontiguousarray(a, dtype=dt) for (name, dt), a in zip(spec, arrays)}
        start = time.perf_counter()
        out = self.sessions[graph].run(None, feeds)[0]
        if timings is not None:
            timings.add(stage, time.perf_counter() - start)
        return np.asarray(out, dtype=np.float32)

    def text(self, prompt: str, timings: Timings | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Token states (1, L, D) float32 and mask (1, L) float32 for one prompt (cached)."""
        with self._lock:
            hit = self._text_cache.get(prompt)
            if hit is not None:
                self._text_cache.move_to_end(prompt)
                if timings is not None:
                    timings.add("text", 0.0)  # cached: the key stays for reports
                return hit
        ids, mask = self.tokenizer([prompt])  # (1, L) int64 each
        states = self._run("text_encoder", [ids, mask], timings, "text")
        if states.ndim != 3 or states.shape[:2] != ids.shape:
            raise BundleError(f"text_encoder.onnx returned shape {states.shape} for "
                              f"{ids.shape[1]} tokens")
        result = (states, mask.astype(np.float32))
        with self._lock:
            self._text_cache[prompt] = result
            while len(self._text_cache) > TEXT_CACHE_SIZE:
                self._text_cache.popitem(last=False)
        return result

    def encode(self, audio: np.ndarray, timings: Timings | None = None) -> np.ndarray:
        """Audio (B, C, N) float32, N a multiple of latent_hop -> latent (B, K, N / hop)."""
        assert audio.ndim == 3 and audio.shape[-1] % self.manifest.latent_hop == 0, audio.shape
        return self._run("encoder", [audio], timings, "encoder")

    def unet(self, feeds: dict[str, np.ndarray], timings: Timings | None = None) -> np.ndarray:
        """One U-Net call; feeds hold the inputs named in UNET_INPUTS, batched alike."""
        return self._run("unet", feeds, timings, "unet")

    def decode(self, latent: np.ndarray, timings: Timings | None = None) -> np.ndarray:
        """Latent (B, K, T) float32 -> audio (B, C, T * latent_hop) float32."""
        assert latent.ndim == 3 and latent.shape[1] == self.manifest.latent_channels, latent.shape
        return self._run("decoder", [latent], timings, "decoder")
