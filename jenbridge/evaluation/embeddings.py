"""Pretrained audio embeddings for the Fréchet distance and text alignment, from PyPI packages
that ship their weights inside the wheel (nothing is downloaded at run time).

    emb = build_embedder("aisfx")
    e = emb.windows(audio, 48000)      # (W, D) float64: one embedding per ~2.3 s window

Two models, by name (EMBEDDERS):
- "aisfx" (default): the X-Sequential-CE CNN of aiSFX (Ma and Lerch, ISMIR 2022: the eight
  conv layers of the DCASE cross-task baseline's CNN, trained on nine sound-effects
  libraries; the wheel's LICENSE is CC BY 4.0, its classifier says MIT). 512-d, a window
  of 100 log-mel frames (2.32 s at 44.1 kHz), hop 1.16 s. The weights are the wheel's
  `aisfx/models/checkpoint.pth`; it runs on PyTorch (CPU), imported only here.
  Install: `pip install --no-deps aisfx==0.1.2` (its metadata pins numpy 1.23 and
  librosa 0.9, which it does not need).
- "basic-pitch": Spotify's Basic Pitch transcriber (Apache-2.0), the wheel's
  `saved_models/icassp_2022/nmp.onnx` on ONNX Runtime (no torch): per 2 s window the mean and
  spread of its pitch-contour posteriorgram plus its mean note and onset activations (704-d).
  It hears pitch, not timbre: a torch-free fallback, weaker for style (see docs/eval.md).
  Install: `pip install --no-deps basic-pitch==0.4.0` (its metadata pulls TensorFlow).

Only the weights and, for aisfx, the network class are used: the packages' own inference
helpers read files, and aisfx's loader needs an unsafe pickle load (basic_pitch is never
imported at all, only located).
NearestCentroid turns embeddings into a style classifier for text alignment.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

DEFAULT_EMBEDDER = "aisfx"


class Embedder(Protocol):
    name: str
    version: str
    dim: int
    window_seconds: float

    def windows(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(C, N) or (N,) audio at sr -> (W, dim) float64 window embeddings (W >= 1)."""
        ...


def _package_dir(package: str, hint: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(f"the embedding model needs the {package!r} package: {hint}")
    return Path(next(iter(spec.submodule_search_locations)))


def _mono(audio: np.ndarray, sr: int, rate: int) -> np.ndarray:
    import soxr

    x = np.asarray(audio, dtype=np.float32)
    x = x.mean(axis=0) if x.ndim == 2 else x
    if sr != rate:
        x = soxr.resample(x, sr, rate, quality="HQ").astype(np.float32)
    return x


class AisfxEmbedder:
    """aiSFX's pretrained CNN (see the module docstring); weights from the installed wheel."""

    name = "aisfx"
    dim = 512
    SAMPLE_RATE = 44100
    N_FFT, HOP, MELS = 2048, 1024, 96
    BLOCK, BLOCK_HOP = 100, 50  # frames per embedding window (2.32 s) and between windows
    SPEC_MAX = 9.457798957824707  # aiSFX's "original" spectrogram normalization (0 .. max)
    window_seconds = BLOCK * HOP / SAMPLE_RATE

    def __init__(self, threads: int | None = None) -> None:
        root = _package_dir("aisfx", "pip install --no-deps aisfx==0.1.2")
        try:
            import torch
        except ImportError:
            raise ValueError("the aisfx embedding model runs on PyTorch, which is not "
                             "installed (the train extra); or use --embedding basic-pitch"
                             ) from None
        from aisfx.models.cnn2d import EmbeddingNet

        self.version = importlib.metadata.version("aisfx")
        self._torch = torch
        if threads:
            torch.set_num_threads(threads)
        weights = self._load(root / "models" / "checkpoint.pth")
        net = EmbeddingNet("max", 3, 1, 64)  # aisfx.inference.load_bestModel's embedding net
        prefix = "embedding_net."
        net.load_state_dict({k[len(prefix):]: v for k, v in weights.items()
                             if k.startswith(prefix)})
        self._net = net.eval()

    def _load(self, path: Path) -> dict[str, Any]:
        """The checkpoint (state_dict, dataset table) with weights_only=True: its numpy scalars
        and dtypes are the only globals it needs, so nothing else can run from the pickle."""
        torch = self._torch
        from numpy._core.multiarray import scalar  # type: ignore[import-not-found]

        allowed = [(scalar, "numpy.core.multiarray.scalar"), np.dtype,
                   type(np.dtype(np.int64)), type(np.dtype(np.float64))]
        with torch.serialization.safe_globals(allowed):
            weights, _datasets = torch.load(path, map_location="cpu", weights_only=True)
        return dict(weights)

    def spectrogram(self, audio: np.ndarray, sr: int) -> np.ndarray:
        """(T, 96) log-mel frames as aiSFX computes them (peak-normalized input, HTK mel with
        unit-sum filters, log10(1e4 x + 1), scaled to 0..~1)."""
        import librosa

        y = _mono(audio, sr, self.SAMPLE_RATE)
        peak = float(np.abs(y).max()) if y.size else 0.0
        y = y / peak if peak > 0 else y
        spec = librosa.feature.melspectrogram(
            y=y, sr=self.SAMPLE_RATE, n_fft=self.N_FFT, hop_length=self.HOP,
            win_length=self.N_FFT, n_mels=self.MELS, fmin=0.0, fmax=self.SAMPLE_RATE / 2,
            htk=True, norm=1.0, power=2.0)
        return (np.log10(spec * 1e4 + 1.0) / self.SPEC_MAX).T.astype(np.float32)

    def windows(self, audio: np.ndarray, sr: int) -> np.ndarray:
        spec = self.spectrogram(audio, sr)
        if len(spec) < self.BLOCK:  # shorter than one window: zero-padded (aiSFX's blocking)
            spec = np.pad(spec, ((0, self.BLOCK - len(spec)), (0, 0)))
        starts = range(0, len(spec) - self.BLOCK + 1, self.BLOCK_HOP)
        blocks = np.stack([spec[s : s + self.BLOCK] for s in starts])  # (W, 100, 96)
        with self._torch.no_grad():
            out = self._net(self._torch.from_numpy(blocks))
        return out.numpy().astype(np.float64)


class BasicPitchEmbedder:
    """Statistics of Basic Pitch's posteriorgrams per 2 s window (ONNX Runtime, no torch)."""

    name = "basic-pitch"
    dim = 264 * 2 + 88 * 2
    SAMPLE_RATE = 22050
    WINDOW = 43844  # the model's input: 2 s at 22050 Hz minus one hop
    OVERLAP_FRAMES = 30  # frames dropped at each window edge (as basic_pitch.inference does)
    HOP = 256  # samples per output frame
    window_seconds = WINDOW / SAMPLE_RATE

    def __init__(self, threads: int | None = None) -> None:
        import onnxruntime as ort

        root = _package_dir("basic_pitch", "pip install --no-deps basic-pitch==0.4.0")
        self.version = importlib.metadata.version("basic-pitch")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        self._session = ort.InferenceSession(
            str(root / "saved_models" / "icassp_2022" / "nmp.onnx"), options,
            providers=["CPUExecutionProvider"])
        self._input = self._session.get_inputs()[0].name

    def windows(self, audio: np.ndarray, sr: int) -> np.ndarray:
        y = _mono(audio, sr, self.SAMPLE_RATE)
        edge = self.OVERLAP_FRAMES * self.HOP
        hop = self.WINDOW - 2 * edge
        y = np.pad(y, (edge, max(self.WINDOW, edge)))
        starts = range(0, max(len(y) - self.WINDOW - edge, 0) + 1, hop)
        x = np.stack([y[s : s + self.WINDOW] for s in starts])[:, :, None]  # (W, n, 1)
        outs = self._session.run(None, {self._input: x})
        by_width = {o.shape[-1]: o for o in outs}  # contour (264) and two 88-wide outputs
        contour = by_width[264][:, self.OVERLAP_FRAMES : -self.OVERLAP_FRAMES]
        notes = [o[:, self.OVERLAP_FRAMES : -self.OVERLAP_FRAMES] for o in outs
                 if o.shape[-1] == 88]
        feats = [contour.mean(axis=1), contour.std(axis=1)] + [n.mean(axis=1) for n in notes]
        return np.concatenate(feats, axis=1).astype(np.float64)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {
    "aisfx": AisfxEmbedder,
    "basic-pitch": BasicPitchEmbedder,
}


def build_embedder(name: str = DEFAULT_EMBEDDER, threads: int | None = None) -> Embedder:
    """The embedding model called `name` (EMBEDDERS); ValueError for an unknown name or a
    missing package (the message says what to install)."""
    if name not in EMBEDDERS:
        raise ValueError(f"unknown embedding model {name!r} (choose from {', '.join(EMBEDDERS)})")
    return EMBEDDERS[name](threads=threads)


class NearestCentroid:
    """A style classifier on clip embeddings: z-score with the fitting set's statistics, then
    the class whose mean (centroid) has the highest cosine similarity.

    Fitted on real clips with known labels (the training split); `predict` labels generated
    audio. Chance for a uniform guess is 1 / len(classes).
    """

    def __init__(self, embeddings: np.ndarray, labels: Sequence[str]) -> None:
        x = np.asarray(embeddings, dtype=np.float64)
        if x.ndim != 2 or len(x) != len(labels) or len(x) == 0:
            raise ValueError(f"need (N, D) embeddings and N labels, got {x.shape}, "
                             f"{len(labels)}")
        self.mean, self.std = x.mean(axis=0), x.std(axis=0) + 1e-6
        z = (x - self.mean) / self.std
        self.classes = sorted(set(labels))
        centroids = np.stack([z[[lab == c for lab in labels]].mean(axis=0)
                              for c in self.classes])
        self._centroids = centroids / np.maximum(
            np.linalg.norm(centroids, axis=1, keepdims=True), 1e-12)

    def predict(self, embeddings: np.ndarray) -> list[str]:
        z = (np.atleast_2d(np.asarray(embeddings, dtype=np.float64)) - self.mean) / self.std
        z = z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)
        return [self.classes[i] for i in np.argmax(z @ self._centroids.T, axis=1)]
