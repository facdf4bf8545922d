"""`jenbridge eval` (jenbridge/evaluation): metrics on signals whose answer is known, the
baselines, the embedding models (offline), and the real CLI on the tiny bundle and dataset."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from jenbridge.evaluation import baselines as bl
from jenbridge.evaluation import metrics as mt
from jenbridge.evaluation.context import MetricSpec, Scores
from jenbridge.evaluation.embeddings import NearestCentroid
from jenbridge.evaluation.report import check_finite, table, targets

SR = 48000
ROOT = Path(__file__).resolve().parent.parent


def _noise(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# ---- signal metrics ------------------------------------------------------------------------

def test_si_sdr_known_values() -> None:
    x = _noise((2, SR), 1) * 0.1
    assert mt.si_sdr(x, x) > 100
    assert mt.si_sdr(0.3 * x, x) > 100  # scale-invariant ...
    assert mt.si_sdr(-x, x) > 100  # ... a polarity flip is a scale too
    n = _noise((2, SR), 2)
    n *= 0.1 * 10 ** (-20 / 20) / n.std(axis=1, keepdims=True)  # 20 dB below x
    assert mt.si_sdr(x + n, x) == pytest.approx(20.0, abs=0.3)
    assert mt.si_sdr(n, x) < -20  # unrelated noise
    assert mt.si_sdr(np.zeros_like(x), x) == mt.SI_SDR_FLOOR
    with pytest.raises(ValueError, match="shapes differ"):
        mt.si_sdr(x[:, :100], x)


def test_spectral_distances_zero_for_equal_and_grow_with_error() -> None:
    x = _noise((2, SR // 2), 3) * 0.1
    assert mt.mr_stft_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    assert mt.mel_distance(x, x, SR) == pytest.approx(0.0, abs=1e-9)
    small, big = x + 0.01 * _noise(x.shape, 4), x + 0.1 * _noise(x.shape, 4)
    assert 0 < mt.mr_stft_distance(small, x) < mt.mr_stft_distance(big, x)
    assert 0 < mt.mel_distance(small, x, SR) < mt.mel_distance(big, x, SR)


def test_numpy_losses_match_the_training_losses(music_clip) -> None:
    torch = pytest.importorskip("torch")
    from jenbridge.losses.stft_loss import MelSpectrogramLoss, MultiResolutionSTFTLoss

    audio, sr = music_clip
    x = audio[:, : sr]
    y = np.roll(x, 300, axis=1) * 0.7 + 0.01 * _noise(x.shape, 5)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    assert mt.mr_stft_distance(y, x) == pytest.approx(
        MultiResolutionSTFTLoss()(ty, tx).item(), rel=1e-5)
    assert mt.mel_distance(y, x, sr) == pytest.approx(
        MelSpectrogramLoss(sample_rate=sr)(ty, tx).item(), rel=1e-5)


def test_seam_metric_sees_a_hard_cut_not_a_smooth_splice(music_clip) -> None:
    """Cuts from the clip to the same music 0.37 / 0.61 s later, at two times: hard, with a
    100 ms crossfade, and a cut to noise; "self" is a perfect splice (the clip itself)."""
    audio, sr = music_clip
    got: dict[str, list[float]] = {"self": [], "cut": [], "fade": [], "noise": []}
    for at_s in (0.9, 2.1):
        at = int(at_s * sr)
        for shift in (0.61, 0.37):
            other = np.roll(audio, int(shift * sr), axis=1)
            w = np.clip((np.arange(audio.shape[1]) - (at - 2400)) / 4800, 0, 1)
            noise = audio.copy()
            noise[:, at:] = bl.white_noise(audio[:, at:], np.random.default_rng(0))
            for name, y in (("self", audio), ("noise", noise),
                            ("cut", np.concatenate([audio[:, :at], other[:, at:]], axis=1)),
                            ("fade", ((1 - w) * audio + w * other).astype(np.float32))):
                got[name].append(mt.seam_discontinuity(y, audio, [at / sr], sr))
    mean = {k: float(np.mean(v)) for k, v in got.items()}
    assert mean["self"] < 1.0  # as smooth as the music around it
    assert mean["cut"] > 1.8
    assert mean["cut"] > 1.3 * mean["fade"]
    assert min(got["noise"]) > 2.3


def test_frechet_distance_known_values() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 4))
    assert mt.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    b = 2.0 * rng.standard_normal((20000, 4)) + 3.0  # mean 3, std 2
    # |mu|^2 = 4 * 9; trace term = sum (sigma_a - sigma_b)^2 = 4 * 1
    assert mt.frechet_distance(a, b) == pytest.approx(40.0, rel=0.03)
    assert mt.frechet_distance(a, b) == pytest.approx(mt.frechet_distance(b, a), rel=1e-6)
    with pytest.raises(ValueError):
        mt.frechet_distance(a[:, :3], b)


def test_tempo_relation_counts_octave_errors_apart() -> None:
    rel = mt.tempo_relation
    assert rel(121.0, 120.0, 0.02) == "match"
    assert [rel(v, 120.0, 0.02) for v in (240.0, 60.0, 180.0, 80.0, 360.0)] == ["octave"] * 5
    assert rel(130.0, 120.0, 0.02) == "miss"
    assert rel(0.0, 120.0, 0.02) == "none"
    assert mt.tempo_relation_bpm(122.9, 120.0, 3.0) == "match"
    assert mt.tempo_relation_bpm(123.5, 120.0, 3.0) == "miss"
    from jenbridge.evaluation.adherence import _score

    scores = Scores()
    for measured in (120.5, 240.0, 59.9, 150.0):
        _score(scores, "m", measured, 120.0)
    assert scores.mean("within_2pct", "m") == 0.25
    assert scores.mean("octave_error", "m") == 0.5


def test_continuation_tempo_is_measured_near_the_context_and_not_in_noise() -> None:
    from jenbridge.evaluation.tasks import _tempo_near

    def clicks(bpm: float, seconds: float = 4.0) -> np.ndarray:
        x = np.zeros((2, int(seconds * SR)), np.float32)
        click = (np.hanning(200) * np.sin(np.arange(200) * 0.3)).astype(np.float32)
        for t in np.arange(0, seconds, 60 / bpm):
            x[:, int(t * SR) : int(t * SR) + 200] += 0.8 * click
        return x

    assert _tempo_near(clicks(120), SR, 120.0) == pytest.approx(120, abs=3)
    assert _tempo_near(clicks(100), SR, 120.0) == pytest.approx(100, abs=3)  # not pulled
    assert _tempo_near(clicks(150), SR, 120.0) == pytest.approx(150, abs=3)
    noise = bl.white_noise(clicks(120), np.random.default_rng(0))
    assert _tempo_near(noise, SR, 120.0) == 0.0  # no pulse: the prior alone is no match
    assert _tempo_near(np.zeros((2, SR * 2), np.float32), SR, 120.0) == 0.0
    # finer than librosa's whole-lag bins: tempi between the bins come out within 0.5 BPM
    import librosa

    from jenbridge.music.estimate import ANALYSIS_SR, HOP

    for bpm in (127.3, 163.0, 88.6):
        x = clicks(bpm, 6.0)
        y = librosa.resample(x.mean(axis=0), orig_sr=SR, target_sr=ANALYSIS_SR)
        env = librosa.onset.onset_strength(y=y, sr=ANALYSIS_SR, hop_length=HOP)
        binned = float(librosa.feature.tempo(onset_envelope=env, sr=ANALYSIS_SR,
                                             hop_length=HOP, start_bpm=bpm)[0])
        assert _tempo_near(x, SR, bpm) == pytest.approx(bpm, abs=0.5)
        assert abs(binned - bpm) > 0.5  # what the refinement is for


def test_key_relations() -> None:
    from jenbridge.conditions import key_code

    def rel(found: str, asked: str) -> str:
        return mt.key_relation(key_code(found), key_code(asked))

    assert rel("C major", "C major") == "exact"
    assert rel("A minor", "C major") == "relative"
    assert rel("C major", "A minor") == "relative"
    assert rel("C minor", "C major") == "parallel"
    assert rel("G major", "C major") == "fifth"
    assert rel("F major", "C major") == "fifth"
    assert rel("D major", "C major") == "other"
    assert mt.key_relation(25, key_code("C major")) == "none"


# ---- baselines -----------------------------------------------------------------------------

def test_noise_baselines_match_loudness_and_colour() -> None:
    like = np.stack([0.2 * np.ones(SR), 0.05 * np.ones(SR)]).astype(np.float32)
    rng = np.random.default_rng(0)
    for noise in (bl.white_noise(like, rng), bl.pink_noise(like, rng)):
        assert np.sqrt(np.mean(noise**2, axis=1)) == pytest.approx([0.2, 0.05], rel=1e-3)
    spec = np.abs(np.fft.rfft(bl.pink_noise(like, rng)[0])) ** 2
    f = np.fft.rfftfreq(SR, 1 / SR)
    low, high = spec[(f > 100) & (f < 200)].mean(), spec[(f > 6400) & (f < 12800)].mean()
    assert 10 * np.log10(low / high) == pytest.approx(10 * np.log10(64), abs=3)  # 1/f


def test_repeat_bar_and_crossfade_fills() -> None:
    x = np.tile(np.arange(1000, dtype=np.float32), (2, 1))
    bar = bl.bar_samples(120.0, 4, 100)  # 2 s at 100 Hz = 200 samples
    assert bar == 200
    filled = bl.repeat_bar_fill(x, 400, 700, bar)
    assert np.array_equal(filled[:, 400:600], x[:, 200:400])
    assert np.array_equal(filled[:, 600:700], x[:, 200:300])
    assert np.array_equal(filled[:, :400], x[:, :400]) and np.array_equal(filled[:, 700:],
                                                                         x[:, 700:])
    cont = bl.repeat_bar_continuation(x[:, :600], 450, bar)
    assert np.array_equal(cont[:, :200], x[:, 400:600]) and np.array_equal(cont[:, 400:],
                                                                          x[:, 400:450])
    cf = bl.crossfade_fill(x, 400, 500)
    assert cf[0, 400] == x[0, 300] and cf[0, 499] == x[0, 599]  # before -> after
    with pytest.raises(ValueError):
        bl.crossfade_fill(x, 100, 600)
    with pytest.raises(ValueError):
        bl.bar_samples(0.0, 4, 100)


def test_nearest_centroid_and_targets() -> None:
    rng = np.random.default_rng(0)
    centres = {"a": np.array([5.0, 0, 0]), "b": np.array([0, 5.0, 0]), "c": np.array([0, 0, 5.0])}
    x = np.concatenate([c + rng.standard_normal((20, 3)) for c in centres.values()])
    labels = [k for k in centres for _ in range(20)]
    probe = NearestCentroid(x, labels)
    assert probe.classes == ["a", "b", "c"]
    assert probe.predict(np.stack(list(centres.values())) * 1.1) == ["a", "b", "c"]
    suites = {
        "t2m": {"metrics": {
            "style_accuracy": {"values": {"model": 0.6}, "chance": 0.1, "classes": 10,
                               "p_value_vs_chance": 1e-5},
            "frechet": {"values": {"model": 40.0, "early@10": 90.0, "white noise": 100.0,
                                   "pink noise": 70.0}}}},
        "inpaint": {"metrics": {"seam": {"values": {"model": 1.3, "crossfade": 1.2}}}},
        "continue": {"metrics": {"tempo_within_3bpm": {"values": {"model": 0.85}}}},
    }
    models = [{"label": "model"}, {"label": "early@10"}]
    met = {t["target"]: t["met"] for t in targets(suites, models)}
    assert met == {"text alignment clearly above chance": True,
                   "Fréchet distance well below the noise baseline": False,  # 40 > 0.5 x 70
                   "Fréchet distance falling with training": True,
                   "inpainting seams no worse than the crossfade baseline": False,
                   "continuation tempo within ±3 BPM of the context": True}
    with pytest.raises(ValueError, match=r"report\.a\[1\]"):
        check_finite({"a": [1.0, math.nan]})


def test_scores_summary_and_table() -> None:
    s = Scores()
    for v in (1.0, 0.0, 1.0, 1.0):
        s.add("acc", "model", v)
    s.add("acc", "silence", 0.0)
    summary = s.summary({"acc": MetricSpec("fraction", "higher", "a")})
    assert summary["acc"]["values"] == {"model": 0.75, "silence": 0.0}
    assert summary["acc"]["n"] == {"model": 4, "silence": 1}
    text = table({"suites": {"x": {"clips": 4, "metrics": summary}}, "targets": []})
    assert "acc ↑" in text and "0.75" in text
    with pytest.raises(AssertionError):
        s.add("acc", "model", math.inf)


# ---- embedding models ----------------------------------------------------------------------

@pytest.fixture()
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any socket connection fails the test: the embedding models must be self-contained."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args[1:] if len(args) > 1 else ''}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize("name,dim", [("aisfx", 512), ("basic-pitch", 704)])
def test_embedding_models_run_offline_and_tell_music_from_noise(name: str, dim: int,
                                                                 music_clip, no_network) -> None:
    pytest.importorskip({"aisfx": "aisfx", "basic-pitch": "basic_pitch"}[name])
    if name == "aisfx":
        pytest.importorskip("torch")
    from jenbridge.evaluation.embeddings import build_embedder

    emb = build_embedder(name, threads=1)
    audio, sr = music_clip
    music = emb.windows(audio, sr)
    again = emb.windows(audio * 0.5 + 1e-4 * _noise(audio.shape, 6), sr)  # quieter, a hiss
    noise = emb.windows(bl.pink_noise(audio, np.random.default_rng(1)), sr)
    assert music.shape[1] == dim == emb.dim and len(music) >= 1 and np.isfinite(music).all()
    assert np.array_equal(music, emb.windows(audio, sr))  # deterministic
    d_same = np.linalg.norm(music.mean(0) - again.mean(0))
    d_noise = np.linalg.norm(music.mean(0) - noise.mean(0))
    assert d_same < 0.3 * d_noise


def test_unknown_embedding_model_is_a_clear_error() -> None:
    from jenbridge.evaluation.embeddings import build_embedder

    with pytest.raises(ValueError, match="unknown embedding model 'clap'"):
        build_embedder("clap")


# ---- the command ---------------------------------------------------------------------------

def _png_ok(path: Path) -> None:
    import matplotlib.image

    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100, path
    assert float(img[..., :3].std()) > 0.01, f"{path} is blank"


def _jenbridge(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "jenbridge", "eval", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_eval_cli_on_the_tiny_bundle(tiny_bundle: Path, dataset: Path, tmp_path: Path) -> None:
    pytest.importorskip("librosa")
    pytest.importorskip("matplotlib")
    if not any(__import__("importlib").util.find_spec(m) for m in ("aisfx", "basic_pitch")):
        pytest.skip("no embedding model installed (aisfx or basic-pitch)")
    embedding = "aisfx" if __import__("importlib").util.find_spec("aisfx") else "basic-pitch"
    early = tmp_path / "early-bundle"
    early.symlink_to(tiny_bundle, target_is_directory=True)  # stands for an early checkpoint
    out = tmp_path / "eval"
    proc = _jenbridge(
        "--model", str(tiny_bundle), "--model-early", str(early),
        "--train-step", f"{tiny_bundle}=200", "--train-step", f"{early}=50",
        "--data", str(dataset), "--out", str(out), "--embedding", embedding,
        "--clips", "2", "--seconds", "2", "--steps", "2", "--bpms", "120", "--meters", "4",
        "--tempo-bars", "1", "--keys", "1", "--strengths", "0,1", "--vary-clips", "1",
        "--probe-clips", "1", "--threads", "1", "--grooves", "0.5,0")
    assert proc.returncode == 0, proc.stderr[-3000:] + proc.stdout[-3000:]
    report = json.loads((out / "report.json").read_text())
    check_finite(report)
    assert list(report["suites"]) == ["autoencoder", "t2m", "inpaint", "continue", "tempo",
                                      "key", "vary"]
    assert [m["label"] for m in report["models"]] == ["model", "early@50"]
    assert report["data"]["clips"] == 2 and report["data"]["skipped"]  # broken files skipped
    want = {  # suite -> metric -> systems that must be there (models and baselines)
        "autoencoder": {"si_sdr": {"model", "early@50", "silence", "white noise", "pink noise"}},
        "t2m": {"frechet": {"model", "early@50", "autoencoder round trip", "silence",
                            "white noise", "pink noise"},
                "style_accuracy": {"model", "real (held-out)", "white noise"}},
        "inpaint": {"seam": {"model", "crossfade", "repeat bar", "silence", "original"},
                    "inside_mel": {"model", "crossfade", "repeat bar"}},
        "continue": {"tempo_within_3bpm": {"model", "model, groove 0", "early@50", "real",
                                           "repeat bar", "silence"},
                     "key_agreement": set(), "mel_to_truth": {"model", "repeat bar"},
                     "mel_to_repeat": {"model", "model, groove 0", "real"}},
        "tempo": {"within_2pct": {"model", "model + grid lock", "real (held-out)",
                                  "white noise"},
                  "octave_error": {"model", "model + grid lock"}},
        "key": {"accuracy": {"model", "real (held-out)", "white noise"}},
        "vary": {"mel_at_full": {"model", "another clip", "white noise"}},
    }
    for suite, metrics in want.items():
        got = report["suites"][suite]["metrics"]
        for metric, systems in metrics.items():
            if metric == "key_agreement" and metric not in got:
                continue  # the tiny clips may have no pitched context
            assert systems <= set(got[metric]["values"]), (suite, metric, got[metric])
    assert report["suites"]["key"]["metrics"]["accuracy"]["chance"] == pytest.approx(1 / 24)
    assert 0 < report["suites"]["t2m"]["metrics"]["style_accuracy"]["chance"] <= 1
    assert report["suites"]["vary"]["curves"]["model"]["0"]["mel"] == 0.0  # strength 0: input
    assert report["suites"]["continue"]["grooves"] == {"model": 0.5, "model, groove 0": 0.0,
                                                       "early@50": 0.5}
    assert report["embedding"]["name"] == embedding and report["embedding"]["used"]
    names = {t["target"] for t in report["targets"]}
    assert "Fréchet distance falling with training" in names and len(names) == 5
    for png in ("spectrograms", "metrics", "variation", "tempo", "training"):
        _png_ok(out / f"{png}.png")
    assert "target:" in proc.stdout and "autoencoder" in proc.stdout


def test_eval_cli_refuses_bad_arguments(tmp_path: Path) -> None:
    proc = _jenbridge("--model", str(tmp_path), "--data", str(tmp_path), "--out",
                      str(tmp_path / "o"), "--suites", "t2m,nonsense", timeout=60)
    assert proc.returncode == 2 and "unknown suite(s) nonsense" in proc.stderr
    proc = _jenbridge("--model", str(tmp_path), "--data", str(tmp_path), "--out",
                      str(tmp_path / "o"), "--keys", "30", timeout=60)
    assert proc.returncode == 2 and "--keys must be 1..24" in proc.stderr
