"""Evaluation metrics on audio, embeddings and musical estimates (numpy; no torch).

Audio is float (C, N) channels first, or (N,) mono, at `sr` Hz. Every metric returns a plain
float (finite for finite input) so a report can hold it as JSON.

- si_sdr: scale-invariant signal-to-distortion ratio (Le Roux et al. 2019, "SDR - half-baked
  or well done?"), dB, averaged over channels; higher is better.
- mr_stft_distance / mel_distance: the autoencoder's training losses (jenbridge.losses.
  stft_loss: spectral convergence + log-magnitude L1 over 512/1024/2048-point STFTs; log-mel
  L1), rewritten in numpy with the same STFT (reflect padding, periodic Hann window), floors
  and averaging, so the figures are the training numbers; lower is better.
- spectral_flux / seam_discontinuity: how abruptly the spectrum changes at given times,
  relative to how it changes elsewhere in a reference (1.0 = as smooth as the real music).
- frechet_distance: between Gaussians fitted to two embedding sets (FAD, Kilgour et al. 2019).
- tempo_relation / key_relation: how a measured tempo or key relates to the one asked for.
"""

from __future__ import annotations

import functools

import numpy as np

# The training loss's resolutions (jenbridge.losses.stft_loss.DEFAULT_RESOLUTIONS; not
# imported from there: that module imports torch).
STFT_RESOLUTIONS: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (2048, 512))
TOP_DB, MAG_EPS = 80.0, 1e-5
PULSE_MIN = 0.1  # pulse_strength below this: no beat (white / pink noise stay under ~0.09)
SI_SDR_FLOOR = -100.0  # dB: an estimate with no energy (silence)
OCTAVE_RATIOS = (2.0, 0.5, 1.5, 2.0 / 3.0, 3.0, 1.0 / 3.0)  # tempo "octave" errors


def _signals(x: np.ndarray) -> np.ndarray:
    """(..., N) -> (M, N) float64, one row per signal."""
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(-1, a.shape[-1])


def _check_pair(pred: np.ndarray, target: np.ndarray) -> None:
    if np.shape(pred) != np.shape(target):
        raise ValueError(f"shapes differ: {np.shape(pred)} vs {np.shape(target)}")


def stft_magnitude(x: np.ndarray, n_fft: int, hop: int) -> np.ndarray:
    """Waveforms (..., N) -> magnitudes (M, n_fft // 2 + 1, S): torch.stft(center=True,
    reflect padding, periodic Hann window) with sqrt(power + 1e-14), as the training loss."""
    sig = _signals(x)
    pad = n_fft // 2
    if sig.shape[1] > pad:  # reflect needs N > pad
        sig = np.pad(sig, ((0, 0), (pad, pad)), mode="reflect")
    else:
        sig = np.pad(sig, ((0, 0), (pad, pad)))
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)  # periodic Hann
    frames = np.lib.stride_tricks.sliding_window_view(sig, n_fft, axis=1)[:, ::hop]  # (M, S, n)
    spec = np.fft.rfft(frames * window, axis=-1)  # (M, S, F)
    power = spec.real**2 + spec.imag**2
    return np.sqrt(power + 1e-14).transpose(0, 2, 1)


def spectral_convergence(pred_mag: np.ndarray, target_mag: np.ndarray) -> float:
    """Mean over signals of ||(|Y| - |X|)||_F / ||X||_F; magnitudes (M, F, S)."""
    num = np.linalg.norm((pred_mag - target_mag).reshape(len(pred_mag), -1), axis=1)
    den = np.maximum(np.linalg.norm(target_mag.reshape(len(target_mag), -1), axis=1), 1e-7)
    return float(np.mean(num / den))


def log_magnitude_l1(pred_mag: np.ndarray, target_mag: np.ndarray, top_db: float | None = TOP_DB,
                     eps: float = MAG_EPS) -> float:
    """Mean |log max(|Y|, floor) - log max(|X|, floor)|, floor `top_db` below each target
    signal's loudest bin (and >= eps), as the training loss."""
    floor = np.full((len(target_mag), 1, 1), eps)
    if top_db is not None:
        peak = target_mag.max(axis=(1, 2), keepdims=True)
        floor = np.maximum(floor, peak * 10.0 ** (-top_db / 20.0))
    return float(np.mean(np.abs(np.log(np.maximum(pred_mag, floor))
                                 - np.log(np.maximum(target_mag, floor)))))


def mr_stft_distance(pred: np.ndarray, target: np.ndarray,
                     resolutions: tuple[tuple[int, int], ...] = STFT_RESOLUTIONS) -> float:
    """Multi-resolution STFT distance (training's MultiResolutionSTFTLoss with unit weights):
    spectral convergence + log-magnitude L1, each averaged over the resolutions. 0 = equal."""
    _check_pair(pred, target)
    sc = mag = 0.0
    for n_fft, hop in resolutions:
        p, t = stft_magnitude(pred, n_fft, hop), stft_magnitude(target, n_fft, hop)
        sc += spectral_convergence(p, t)
        mag += log_magnitude_l1(p, t)
    return (sc + mag) / len(resolutions)


@functools.lru_cache(maxsize=16)
def mel_filterbank(sr: int, n_fft: int, n_mels: int) -> np.ndarray:
    """Triangular HTK-mel filters (n_mels, n_fft // 2 + 1), each peaking at 1 (librosa's,
    unnormalized: the same triangles as jenbridge.losses.stft_loss.mel_filterbank)."""
    import librosa

    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=0.0, fmax=sr / 2.0,
                             htk=True, norm=None).astype(np.float64)
    fb.flags.writeable = False  # shared by the cache
    return fb


def mel_distance(pred: np.ndarray, target: np.ndarray, sr: int, n_fft: int = 2048,
                 hop: int = 512, n_mels: int = 128) -> float:
    """Log-mel L1 distance (training's MelSpectrogramLoss defaults: magnitude mel, 128 bands,
    floored 80 dB below the target's peak). 0 = equal; ~1 is a very different sound."""
    _check_pair(pred, target)
    fb = mel_filterbank(sr, n_fft, n_mels)
    p = np.matmul(fb, stft_magnitude(pred, n_fft, hop))  # (M, n_mels, S)
    t = np.matmul(fb, stft_magnitude(target, n_fft, hop))
    return log_magnitude_l1(p, t)


def si_sdr(estimate: np.ndarray, reference: np.ndarray, eps: float = 1e-10) -> float:
    """Scale-invariant SDR in dB, mean over channels: 10 log10(|a s|^2 / |a s - e|^2) with
    a = <e, s> / |s|^2 (zero-mean signals), so any scaled copy of the reference, a polarity
    flip included, scores as high as the reference itself (> 100 dB). A channel whose estimate
    has no energy (silence: the ratio is 0/0) scores SI_SDR_FLOOR."""
    _check_pair(estimate, reference)
    e, s = _signals(estimate), _signals(reference)
    e = e - e.mean(axis=1, keepdims=True)
    s = s - s.mean(axis=1, keepdims=True)
    alpha = (e * s).sum(axis=1, keepdims=True) / ((s * s).sum(axis=1, keepdims=True) + eps)
    target = alpha * s
    noise = e - target
    ratio = ((target**2).sum(axis=1) + eps) / ((noise**2).sum(axis=1) + eps)
    db = 10.0 * np.log10(ratio)
    db[(e * e).sum(axis=1) <= eps] = SI_SDR_FLOOR
    return float(np.mean(np.maximum(db, SI_SDR_FLOOR)))


def rms_db(audio: np.ndarray) -> float:
    """RMS level in dBFS, floored at -120 (finite for silence)."""
    rms = float(np.sqrt(np.mean(np.square(np.asarray(audio, dtype=np.float64)))))
    return 20.0 * np.log10(max(rms, 1e-6))


def spectral_flux(audio: np.ndarray, sr: int, n_fft: int = 1024, hop: int = 256,
                  n_mels: int = 64) -> np.ndarray:
    """(S - 1,) change of the log-mel spectrum between consecutive frames of the mono mix: the
    L2 norm over bands of the difference of log(mel magnitude), floored 80 dB below the
    signal's loudest bin (so silence and the noise floor do not count). The change between
    frames i and i + 1 is centred at (i + 0.5) * hop samples."""
    mono = np.asarray(audio, dtype=np.float64)
    mono = mono.mean(axis=0) if mono.ndim == 2 else mono
    mel = mel_filterbank(sr, n_fft, n_mels) @ stft_magnitude(mono, n_fft, hop)[0]  # (B, S)
    logmel = np.log(np.maximum(mel, max(float(mel.max()), 1e-9) * 1e-4))
    return np.linalg.norm(np.diff(logmel, axis=1), axis=0)


def _window_max(flux: np.ndarray, width: int) -> np.ndarray:
    """Max of every `width` consecutive flux values (sliding)."""
    width = max(1, min(width, len(flux)))
    return np.lib.stride_tricks.sliding_window_view(flux, width).max(axis=1)


def seam_discontinuity(audio: np.ndarray, reference: np.ndarray, edges_s: list[float], sr: int,
                       n_fft: int = 1024, hop: int = 256) -> float:
    """How abrupt `audio` is at the times `edges_s` (s), relative to `reference`'s own changes.

    For each edge: the largest spectral flux of `audio` among the frames whose change spans
    the edge (the STFT window reaches it). The statistic is the mean over edges divided by the
    mean of the same sliding-window maximum taken everywhere in `reference` (the original
    music). 1.0 = the seams are as smooth as the music around them; a hard cut gives several
    times that. Both signals at sr; edges too near the ends are clipped to the signal.
    """
    flux = spectral_flux(audio, sr, n_fft, hop)
    ref = spectral_flux(reference, sr, n_fft, hop)
    if len(flux) == 0 or len(ref) == 0:
        raise ValueError("audio too short for the seam statistic")
    # an instant at frame c's centre is inside frames c - n_fft/2hop .. c + n_fft/2hop, so
    # it can move the changes c - n_fft/2hop - 1 .. c + n_fft/2hop
    width = n_fft // hop + 2
    peaks = []
    for t in edges_s:
        centre = int(round(t * sr / hop))  # frame centred on the edge
        lo = int(np.clip(centre - n_fft // (2 * hop) - 1, 0, len(flux) - 1))
        peaks.append(float(flux[lo : lo + width].max()))
    typical = float(_window_max(ref, width).mean())
    return float(np.mean(peaks)) / max(typical, 1e-9)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to embedding sets a (Na, D) and b (Nb, D):
    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a S_b)^1/2). 0 for identical sets.

    tr((S_a S_b)^1/2) is taken as the sum of the square roots of the eigenvalues of the
    symmetric S_a^1/2 S_b S_a^1/2, which has the same eigenvalues as S_a S_b (scipy's eigh):
    the same number as scipy.linalg.sqrtm gives, ~100x faster at D = 512 and without complex
    round-off for the rank-deficient covariances of small sets. Sets smaller than D are such:
    compare figures computed on equal-sized sets only."""
    from scipy import linalg

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or len(a) < 2 or len(b) < 2:
        raise ValueError(f"need two (N >= 2, D) embedding sets of equal D, got {a.shape}, "
                         f"{b.shape}")
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = linalg.eigh(cov_a)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T  # S_a^1/2
    inner = linalg.eigvalsh(root_a @ cov_b @ root_a)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(inner, 0.0, None))))
    fd = float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)
    return max(fd, 0.0)


def tempo_relation(measured: float, target: float, tolerance: float) -> str:
    """How a measured tempo relates to the target: "match" within `tolerance` (a fraction, e.g.
    0.02 = ±2 %), "octave" within it of target x2, x1/2, x3/2, x2/3, x3 or x1/3, "none" when
    nothing was measured (<= 0), else "miss"."""
    if measured <= 0 or target <= 0:
        return "none"
    if abs(measured / target - 1.0) <= tolerance:
        return "match"
    if any(abs(measured / (target * r) - 1.0) <= tolerance for r in OCTAVE_RATIOS):
        return "octave"
    return "miss"


def tempo_relation_bpm(measured: float, target: float, tolerance_bpm: float) -> str:
    """tempo_relation with an absolute tolerance in BPM (e.g. ±3 BPM for continuation)."""
    if measured <= 0 or target <= 0:
        return "none"
    return tempo_relation(measured, target, tolerance_bpm / target)


def key_relation(estimated: int, target: int) -> str:
    """How an estimated key code relates to the target (jenbridge.conditions codes: 1..12
    major, 13..24 minor, 25 none): "exact"; "relative" (C major / A minor); "parallel" (C major
    / C minor); "fifth" (same mode, tonic a fifth up or down); "none" (no key found); "other"."""
    if not 1 <= target <= 24:
        raise ValueError(f"target key code {target} is not a key (1..24)")
    if not 1 <= estimated <= 24:
        return "none"
    if estimated == target:
        return "exact"
    pc_e, minor_e = (estimated - 1) % 12, estimated > 12
    pc_t, minor_t = (target - 1) % 12, target > 12
    if minor_e != minor_t:
        relative = (pc_t + 9) % 12 if not minor_t else (pc_t + 3) % 12
        if pc_e == relative:
            return "relative"
        if pc_e == pc_t:
            return "parallel"
        return "other"
    if (pc_e - pc_t) % 12 in (5, 7):
        return "fifth"
    return "other"
