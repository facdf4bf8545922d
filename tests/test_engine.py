"""The torch-free engine on the tiny random-weight bundle: every public call at 44.1/48/96 kHz,
mono and stereo; the splicing guarantees (bit-identical outside regions, kept input on
continuation and extension); variations; seeds; sliding windows and chunked codec; progress and
cancellation; input validation; providers; corrupt bundles; and no torch import."""

from __future__ import annotations

import itertools
import math
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jenbridge.bundle import BundleError
from jenbridge.engine import Cancelled, Engine, choose_providers
from jenbridge.engine.providers import CPU, canonical_name, parse_providers
from jenbridge.engine.regions import (
    check_regions,
    region_frames,
    smooth_seam,
    splice,
    splice_weights,
)
from jenbridge.engine.windows import (
    chunk_plan,
    codec_margin,
    decode_chunked,
    encode_chunked,
    plan_windows,
)

RATES = (44100, 48000, 96000)
LAYOUTS = [(sr, ch) for sr in RATES for ch in (1, 2)]
XF = 0.01  # default crossfade, seconds


@pytest.fixture(scope="module")
def engine(tiny_bundle: Path) -> Engine:
    return Engine(tiny_bundle, providers="cpu", threads=1)


@pytest.fixture(scope="module")
def windowed(tiny_bundle: Path) -> Engine:
    """Windows of 24 latent frames with 6 frames of overlap (test durations are set in frames,
    so they hold whatever the tiny config's latent rate)."""
    return Engine(tiny_bundle, providers="cpu", threads=1, window_frames=24, overlap_frames=6,
                  codec_chunk_frames=16)


def three_windows(engine: Engine) -> float:
    """Seconds whose canvas (~50 frames) takes exactly 3 windows of 24 with overlap 6: windows
    [0, 24), [18, 42), [T - 24, T) for 42 < T <= 60."""
    return 49 * engine.hop / engine.sample_rate


def music(sr: int, channels: int, seconds: float = 1.0, seed: int = 0) -> np.ndarray:
    """(channels, N) float32: a few detuned tones with a pulse and a little noise."""
    t = np.arange(round(seconds * sr)) / sr
    rng = np.random.default_rng(seed)
    out = []
    for c in range(channels):
        tone = sum(0.15 * np.sin(2 * np.pi * f * (1 + 0.002 * c) * t) for f in (220, 330, 440))
        pulse = 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * 4 * t))
        out.append(tone * pulse + 0.01 * rng.standard_normal(t.size))
    return np.asarray(out, dtype=np.float32)


def audible(audio: np.ndarray) -> bool:
    return bool(np.isfinite(audio).all() and np.sqrt(np.mean(audio**2)) > 1e-4)


# ---- every call, every rate and layout -------------------------------------------------------

@pytest.mark.parametrize("sr,channels", LAYOUTS)
def test_generate_shapes(engine: Engine, sr: int, channels: int) -> None:
    r = engine.generate("warm piano", 0.4, seed=1, sample_rate=sr, channels=channels)
    assert r.audio.shape == (channels, round(0.4 * sr)) and r.audio.dtype == np.float32
    assert audible(r.audio) and r.sample_rate == sr and r.seed == 1
    assert r.steps == engine.manifest.sampler.steps and r.providers == (CPU,)
    assert len(r.unet_calls) == r.steps * r.windows
    assert {"text", "unet", "decoder", "total"} <= set(r.timings)


@pytest.mark.parametrize("sr,channels", LAYOUTS)
def test_inpaint_keeps_outside_bit_identical(engine: Engine, sr: int, channels: int) -> None:
    x = music(sr, channels, 0.8)
    regions = [(0.2, 0.35), (0.5, 0.6)]
    r = engine.inpaint(x if channels == 2 else x[0], sr, regions, "drum fill", seed=3)
    assert r.audio.shape == x.shape and r.sample_rate == sr and audible(r.audio)
    outside = np.ones(x.shape[1], bool)
    for a, b in regions:
        outside[max(round((a - XF) * sr) - 1, 0) : round((b + XF) * sr) + 1] = False
        inside = slice(round(a * sr), round(b * sr))
        assert np.abs(r.audio[:, inside] - x[:, inside]).mean() > 1e-3  # really regenerated
    assert np.array_equal(r.audio[:, outside], x[:, outside])


@pytest.mark.parametrize("sr,channels", LAYOUTS)
def test_continue_keeps_input_and_appends(engine: Engine, sr: int, channels: int) -> None:
    x = music(sr, channels, 0.5)
    r = engine.continue_(x, sr, 0.3, "more", seed=4)
    assert r.audio.shape == (channels, x.shape[1] + round(0.3 * sr))
    assert np.array_equal(r.audio[:, : x.shape[1]], x) and audible(r.audio[:, x.shape[1]:])


@pytest.mark.parametrize("sr,channels", LAYOUTS)
def test_extend_left_keeps_input_and_prepends(engine: Engine, sr: int, channels: int) -> None:
    x = music(sr, channels, 0.5)
    r = engine.extend_left(x, sr, 0.25, "intro", seed=5)
    n = round(0.25 * sr)
    assert r.audio.shape == (channels, n + x.shape[1])
    assert np.array_equal(r.audio[:, n:], x) and audible(r.audio[:, :n])


@pytest.mark.parametrize("sr,channels", LAYOUTS)
def test_vary(engine: Engine, sr: int, channels: int) -> None:
    x = music(sr, channels, 0.5)
    same = engine.vary(x, sr, 0.0, "anything", seed=6)
    assert same.audio.shape == x.shape and np.array_equal(same.audio, x) and same.steps == 0
    fresh = engine.vary(x, sr, 1.0, "a new tune", seed=6)
    plain = engine.generate("a new tune", x.shape[1] / sr, seed=6, sample_rate=sr,
                            channels=channels)
    assert np.array_equal(fresh.audio, plain.audio)
    half = engine.vary(x, sr, 0.5, "a new tune", seed=6, steps=4)
    assert half.audio.shape == x.shape and half.steps == 2 and audible(half.audio)
    assert not np.array_equal(half.audio, x) and not np.array_equal(half.audio, plain.audio)


def test_seeds(engine: Engine) -> None:
    a = engine.generate("bass", 0.3, seed=11, bpm=120, key="A minor", meter=4)
    b = engine.generate("bass", 0.3, seed=11, bpm=120, key="A minor", meter=4)
    c = engine.generate("bass", 0.3, seed=12, bpm=120, key="A minor", meter=4)
    assert np.array_equal(a.audio, b.audio) and not np.allclose(a.audio, c.audio)
    drawn = engine.generate("bass", 0.1)
    assert isinstance(drawn.seed, int) and 0 <= drawn.seed < 2**63
    again = engine.generate("bass", 0.1, seed=drawn.seed)
    assert np.array_equal(drawn.audio, again.audio)


def test_guidance_and_conditions_change_the_output(engine: Engine) -> None:
    base = engine.generate("bass", 0.2, seed=2, guidance=2.0).audio
    assert not np.allclose(base, engine.generate("bass", 0.2, seed=2, guidance=1.0).audio)
    assert not np.allclose(base, engine.generate("bass", 0.2, seed=2, bpm=90).audio)
    for sampler in ("ddim", "dpmpp_2m"):
        assert audible(engine.generate("bass", 0.2, seed=2, sampler=sampler, steps=3).audio)


# ---- long audio: windows and codec chunks ----------------------------------------------------

def test_windowed_generation_is_continuous(windowed: Engine) -> None:
    seconds = three_windows(windowed)
    r = windowed.generate("long piece", seconds, seed=7)
    assert r.windows == 3 and r.audio.shape == (2, round(seconds * 48000)) and audible(r.audio)
    frames = windowed._frames_for(seconds, 48000)
    plan = plan_windows(np.ones(frames, np.float32), 24, 6, causal=False)
    jumps = np.abs(np.diff(r.audio, axis=1)).max(axis=0)  # (N - 1,)
    typical = np.percentile(jumps, 99)
    for w in plan[1:]:
        join = (w.start + int(np.argmax(w.mask))) * windowed.hop
        near = jumps[join - 96 : join + 96]  # +-2 ms
        assert near.max() <= 2.0 * typical
        before, after = r.audio[:, join - 480 : join], r.audio[:, join : join + 480]
        ratio = np.sqrt(np.mean(after**2) / np.mean(before**2))
        assert 1 / 3 < ratio < 3  # neither a gap nor a burst at the join


def test_windowed_inpaint_and_continue(windowed: Engine) -> None:
    frame = windowed.hop / windowed.sample_rate  # seconds
    x = music(44100, 2, 80 * frame)
    r = windowed.inpaint(x, 44100, [(10 * frame, 60 * frame)], "long fill", seed=8)
    assert r.windows >= 2 and r.audio.shape == x.shape
    cut = round((10 * frame - XF) * 44100) - 1
    assert np.array_equal(r.audio[:, :cut], x[:, :cut])
    c = windowed.continue_(x, 44100, 40 * frame, "on and on", seed=8)
    assert c.windows >= 2 and np.array_equal(c.audio[:, : x.shape[1]], x)


def test_long_input_only_processes_what_a_window_sees(windowed: Engine,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    frame = windowed.hop / windowed.sample_rate  # seconds
    x = music(44100, 2, 4.0)
    a, b = 2.0, 2.0 + 8 * frame  # a region of 8 latent frames in the middle
    encoded: list[int] = []
    encode = windowed.sessions.encode
    monkeypatch.setattr(windowed.sessions, "encode",
                        lambda z, t=None: encoded.append(z.shape[-1]) or encode(z, t))
    r = windowed.inpaint(x, 44100, [(a, b)], "fill", seed=9)
    keep = np.ones(x.shape[1], bool)
    keep[round((a - XF) * 44100) - 1 : round((b + XF) * 44100) + 1] = False
    assert np.array_equal(r.audio[:, keep], x[:, keep]) and r.windows == 1
    assert 0 < sum(encoded) < 0.5 * 4.0 * 48000  # a window's worth, not the whole input
    encoded.clear()
    c = windowed.continue_(x, 44100, 8 * frame, "more", seed=9)
    assert np.array_equal(c.audio[:, : x.shape[1]], x) and sum(encoded) < 0.5 * 4.0 * 48000
    encoded.clear()
    e = windowed.extend_left(x, 44100, 8 * frame, "intro", seed=9)
    assert np.array_equal(e.audio[:, -x.shape[1] :], x) and sum(encoded) < 0.5 * 4.0 * 48000


def test_chunked_codec_matches_one_shot(engine: Engine) -> None:
    hop, s = engine.hop, engine.sessions
    rng = np.random.default_rng(0)
    latent = rng.standard_normal((engine.latent_channels, 40)).astype(np.float32)
    whole = s.decode(latent[None])[0]
    margin = codec_margin(engine.manifest.config)
    chunked = decode_chunked(lambda z: s.decode(z), latent, hop, 7, margin)
    assert chunked.shape == whole.shape and np.abs(chunked - whole).max() < 1e-4
    audio = music(48000, 2, 40 * hop / 48000)
    z_whole = s.encode(audio[None])[0]
    z_chunked = encode_chunked(lambda a: s.encode(a), audio, hop, 9, margin)
    assert np.abs(z_chunked - z_whole).max() < 1e-4 * max(1.0, np.abs(z_whole).max())


def test_public_encode_decode(engine: Engine) -> None:
    audio = music(44100, 2, seconds=0.7)
    latent = engine.encode(audio, 44100)
    frames = math.ceil(round(0.7 * 48000) / engine.hop)
    assert latent.shape == (engine.latent_channels, frames) and np.isfinite(latent).all()
    back = engine.decode(latent, 44100, 2, audio.shape[1])
    assert back.shape == audio.shape and back.dtype == np.float32
    assert engine.decode(latent).shape == (2, frames * engine.hop)  # 48 kHz, whole latent
    with pytest.raises(ValueError, match="latent must be"):
        engine.decode(latent[:-1])


def test_plan_windows_covers_every_masked_frame() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        T = int(rng.integers(2, 200))
        mask = (rng.random(T) < rng.random()).astype(np.float32)
        window = int(rng.integers(2, 60))
        overlap = int(rng.integers(0, window))
        causal = bool(rng.integers(2))
        plan = plan_windows(mask, window, overlap, causal)
        made = np.zeros(T)
        for w in plan:
            assert 0 <= w.start < w.end <= T and w.frames <= window and w.mask.any()
            made[w.start : w.end] += w.mask
        assert np.array_equal(made, mask)  # every masked frame once, nothing else
    causal_plan = plan_windows(np.r_[np.zeros(50), np.ones(10)].astype(np.float32), 30, 5, True)
    assert [(w.start, w.end) for w in causal_plan] == [(30, 60)]  # all context on the left
    middle = plan_windows(np.r_[np.zeros(50), np.ones(10), np.zeros(50)].astype(np.float32),
                          30, 5, False)
    assert [(w.start, w.end) for w in middle] == [(40, 70)]  # context on both sides
    assert chunk_plan(10, 4, 2) == [(0, 0, 4, 6), (2, 4, 8, 10), (6, 8, 10, 10)]


def test_splice_helpers() -> None:
    w = splice_weights([(10, 20)], 40, 4)
    assert np.all(w[10:20] == 1) and np.all(w[:6] == 0) and np.all(w[24:] == 0)
    assert np.all(np.diff(w[5:11]) > 0) and np.all(np.diff(w[19:25]) < 0)
    a, b = np.zeros((2, 40), np.float32), np.ones((2, 40), np.float32)
    out = splice(a, b, w)
    assert np.array_equal(out[:, 10:20], b[:, 10:20]) and np.array_equal(out[:, 24:], a[:, 24:])
    seam = smooth_seam(np.zeros((1, 10), np.float32), np.array([0.5], np.float32), 5, True)
    assert seam[0, 0] == 0.5 and np.all(seam[0, 5:] == 0)
    mask = region_frames([(0.0, 0.011)], 93.75, 10)
    assert mask.tolist() == [1, 1] + [0] * 8
    assert check_regions([(0.5, 0.9), (0.1, 0.2)], 1.0) == [(0.1, 0.2), (0.5, 0.9)]


# ---- progress and cancellation ---------------------------------------------------------------

def test_progress_once_per_step(windowed: Engine) -> None:
    calls: list[tuple[float, str]] = []
    r = windowed.generate("x", three_windows(windowed), seed=1, steps=3,
                          progress=lambda f, s: calls.append((f, s)))
    assert r.windows == 3 and len(calls) == 3 * r.windows
    fractions = [f for f, _ in calls]
    assert all(b > a for a, b in itertools.pairwise(fractions)) and fractions[-1] == 1.0
    assert calls[0][1] == f"sample 1/{r.windows}"


def test_cancel_within_one_step(engine: Engine) -> None:
    calls: list[float] = []
    with pytest.raises(Cancelled, match="cancelled"):
        engine.generate("x", 0.3, seed=1, steps=4, progress=lambda f, s: calls.append(f),
                        should_stop=lambda: len(calls) >= 1)
    assert len(calls) == 1
    with pytest.raises(Cancelled):
        engine.inpaint(music(48000, 2, 0.3), 48000, [(0.1, 0.2)], "x", should_stop=lambda: True)


# ---- validation ------------------------------------------------------------------------------

BAD = [
    ("generate", dict(seconds=-1.0), "positive"),
    ("generate", dict(seconds=0.0), "positive"),
    ("generate", dict(bpm=10), "bpm"),
    ("generate", dict(key="H major"), "key"),
    ("generate", dict(meter=0), "meter"),
    ("generate", dict(sampler="euler"), "sampler"),
    ("generate", dict(steps=0), "steps"),
    ("generate", dict(guidance=float("nan")), "guidance"),
    ("generate", dict(seed=-1), "seed"),
    ("generate", dict(sample_rate=1000), "sample rate"),
    ("inpaint", dict(regions=[(0.5, 2.0)]), "outside"),
    ("inpaint", dict(regions=[(0.4, 0.2)]), "reversed"),
    ("inpaint", dict(regions=[]), "empty"),
    ("inpaint", dict(audio=np.full((2, 4800), np.nan, np.float32)), "NaN"),
    ("inpaint", dict(audio=np.zeros((4800, 2), np.float32)), "audio.T"),
    ("inpaint", dict(audio=np.zeros((2, 4800), np.int16)), "float"),
    ("continue_", dict(seconds=-2.0), "positive"),
    ("continue_", dict(audio=np.zeros((2, 10), np.float32)), "too short"),
    ("vary", dict(strength=1.5), "strength"),
]


@pytest.mark.parametrize("call,bad,words", BAD, ids=[f"{c}-{w}" for c, _, w in BAD])
def test_bad_input_raises_value_error(engine: Engine, call: str, bad: dict, words: str) -> None:
    audio = bad.pop("audio", music(48000, 2, 1.0))
    args = {
        "generate": lambda: dict(prompt="x", seconds=bad.pop("seconds", 0.2)),
        "inpaint": lambda: dict(audio=audio, sr=48000, regions=bad.pop("regions", [(0.1, 0.2)]),
                                prompt="x"),
        "continue_": lambda: dict(audio=audio, sr=48000, seconds=bad.pop("seconds", 0.2),
                                  prompt="x"),
        "vary": lambda: dict(audio=audio, sr=48000, strength=bad.pop("strength", 0.5),
                             prompt="x"),
    }[call]()
    with pytest.raises(ValueError, match=words):
        getattr(engine, call)(**args, **bad)


# ---- providers, bundles, torch ---------------------------------------------------------------

def test_providers_report_cpu_and_stay_quiet(capfd: pytest.CaptureFixture[str]) -> None:
    import onnxruntime as ort

    chosen = choose_providers()
    assert chosen[-1] == CPU
    if "CUDAExecutionProvider" not in chosen:  # this CPU machine: CUDA is listed but unusable
        assert chosen == [CPU]
        assert choose_providers("cuda,cpu") == [CPU]
    assert "libcublas" not in capfd.readouterr().err
    assert canonical_name("CUDA") == "CUDAExecutionProvider" and parse_providers("cpu") == [CPU]
    with pytest.raises(ValueError, match="unknown execution provider"):
        choose_providers(["warp-drive"])
    assert CPU in ort.get_available_providers()


def test_engine_reports_the_providers_it_runs_on(engine: Engine) -> None:
    assert engine.providers == (CPU,)
    assert all(used[0] == CPU for used in engine.sessions.providers.values())


def test_corrupt_bundle_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    copy.mkdir()
    for f in tiny_bundle.iterdir():
        if f.name == "unet.onnx":
            data = bytearray(f.read_bytes())
            data[len(data) // 2] ^= 0xFF
            (copy / f.name).write_bytes(bytes(data))
        else:
            os.symlink(f, copy / f.name)
    with pytest.raises(BundleError, match=r"unet\.onnx does not match its sha256"):
        Engine(copy)
    (copy / "unet.onnx").unlink()
    with pytest.raises(BundleError, match="missing"):
        Engine(copy)
    with pytest.raises(BundleError, match="does not exist"):
        Engine(tmp_path / "nowhere")
    shutil.rmtree(copy)


def test_engine_never_imports_torch(tiny_bundle: Path) -> None:
    code = textwrap.dedent(f"""
        import sys
        import numpy as np
        from jenbridge.engine import Engine
        engine = Engine({str(tiny_bundle)!r}, threads=1)
        r = engine.generate("no torch here", 0.2, seed=1)
        x = np.zeros((2, 9600), np.float32)
        engine.inpaint(x, 48000, [(0.05, 0.1)], "fill", seed=1)
        engine.continue_(x, 48000, 0.1, "more", seed=1)
        assert r.audio.shape == (2, 9600)
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
        assert not heavy, heavy
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert "libcublas" not in out.stderr
