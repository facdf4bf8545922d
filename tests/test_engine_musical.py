"""Musical control of the engine on the tiny random-weight bundle (the plumbing, not the music):
lengths in bars, the grid lock to the DAW and its report, conditions estimated from the context
(explicit values win), bad values, and the CLI's --bars / --grid-lock / --no-estimate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jenbridge import cli
from jenbridge.commands import generate as command
from jenbridge.engine import Engine, GridLock, musical
from jenbridge.engine.options import resolve_options

FAST = dict(steps=1, seed=7)


@pytest.fixture(scope="module")
def engine(tiny_bundle: Path) -> Engine:
    return Engine(tiny_bundle, providers="cpu", threads=1)


def drum_loop(bpm: float, seconds: float, sr: int = 48000, offset: float = 0.0) -> np.ndarray:
    """(2, N) float32: a kick-like click on every beat (accent on beat 1 of 4) and a short
    noise hat on the off-beats, starting at `offset` seconds."""
    n = round(seconds * sr)
    out = np.zeros(n, np.float64)
    rng = np.random.default_rng(0)
    t = np.arange(round(0.12 * sr)) / sr
    kick = np.sin(2 * np.pi * 70 * t) * np.exp(-t / 0.03)
    kick[: round(0.002 * sr)] += rng.standard_normal(round(0.002 * sr)) * 0.5
    m = round(0.03 * sr)
    hat = rng.standard_normal(m) * np.exp(-np.arange(m) / (0.005 * sr))
    period = 60.0 / bpm
    k = 0
    while offset + k * period / 2 < seconds:
        at = round((offset + k * period / 2) * sr)
        sound = kick * (1.0 if k % 8 == 0 else 0.7) if k % 2 == 0 else 0.2 * hat
        c = min(len(sound), n - at)
        out[at : at + c] += sound[:c]
        k += 1
    return np.stack([out, out]).astype(np.float32) * 0.5


# ---- lengths in bars and the grid lock --------------------------------------------------------

def test_bars_give_the_exact_length(engine: Engine) -> None:
    r = engine.generate("beat", bars=1.5, bpm=100, meter=3, grid_lock=False, sample_rate=44100,
                        **FAST)
    assert r.audio.shape == (2, round(1.5 * 3 * 60 / 100 * 44100))
    assert r.grid_lock is None and r.conditions.bpm == 100 and r.conditions.meter == 3
    same = engine.generate("beat", 2.7, bpm=100, meter=3, bars=1.5, grid_lock=False,
                           sample_rate=44100, **FAST)  # agreeing seconds are accepted
    assert np.array_equal(same.audio, r.audio)


def test_grid_lock_on_a_bar_based_generate(engine: Engine) -> None:
    r = engine.generate("beat", bars=1, bpm=120, meter=4, sample_rate=44100, channels=1, **FAST)
    assert r.audio.shape == (1, round(1 * 4 * 60 / 120 * 44100))  # exactly 2 s at 44.1 kHz
    lock = r.grid_lock
    assert isinstance(lock, GridLock) and (lock.bpm, lock.meter, lock.bars) == (120, 4, 1)
    assert isinstance(lock.applied, bool) and lock.stretch_ratio > 0
    assert "grid_lock" in r.timings and "grid lock to 1 bar(s) of 4 at 120 BPM" in lock.describe()
    plain = engine.generate("beat", bars=1, bpm=120, meter=4, sample_rate=44100, channels=1,
                            grid_lock=False, **FAST)
    assert plain.grid_lock is None
    if not lock.applied:  # left alone: bit-identical to the unlocked audio
        assert lock.stretch_ratio == 1.0 and np.array_equal(r.audio, plain.audio)


def test_lock_keeps_audio_on_the_grid_and_fixes_audio_off_it() -> None:
    opts = resolve_options(_defaults(), seed=1, bpm=120, meter=4)
    on = drum_loop(120, 4.0)
    out, info = musical.lock(on, 48000, opts, 2.0)
    assert out is on and not info.applied and abs(info.measured_bpm - 120) < 1
    off = drum_loop(117, 4.0, offset=0.02)
    out, info = musical.lock(off, 48000, opts, 2.0)
    assert info.applied and out.shape == off.shape and out.dtype == np.float32
    assert abs(info.stretch_ratio - 117 / 120) < 0.005 and abs(info.offset_s - 0.02) < 0.005
    short, info = musical.lock(on[:, :1000], 48000, opts, 2.0)  # too short to measure: as is
    assert short.shape == (2, 1000) and not info.applied and info.measured_bpm == 0.0


def _defaults():
    from jenbridge.bundle import SamplerDefaults

    return SamplerDefaults(timesteps=1000, beta_start=1e-4, beta_end=0.02, prediction="eps",
                           sampler="ddim", steps=2, guidance=1.0)


# ---- conditions estimated from the context ----------------------------------------------------

def test_continue_estimates_tempo_and_key_of_the_context(engine: Engine) -> None:
    loop = drum_loop(117, 6.0)
    r = engine.continue_(loop, 48000, None, "more", bars=1, meter=4, **FAST)
    bpm = r.estimated["bpm"]
    assert abs(bpm - 117) < 1.5 and r.conditions.bpm == bpm
    assert r.estimated["key"] == "none" and r.conditions.key == 25  # drums: unpitched
    assert r.audio.shape == (2, loop.shape[1] + round(4 * 60 / bpm * 48000))
    assert np.array_equal(r.audio[:, : loop.shape[1]], loop)
    assert r.grid_lock is not None and r.grid_lock.bpm == bpm and "estimate" in r.timings


def test_explicit_conditions_win_and_estimation_can_be_off(engine: Engine) -> None:
    loop = drum_loop(117, 3.0)
    r = engine.continue_(loop, 48000, 0.2, "more", bpm=90, key="C major", **FAST)
    assert r.estimated == {} and (r.conditions.bpm, r.conditions.key) == (90, 1)
    r = engine.extend_left(loop, 48000, 0.2, "intro", key="A minor", **FAST)
    assert set(r.estimated) == {"bpm"} and r.conditions.key == 22
    assert abs(r.conditions.bpm - 117) < 1.5 and r.grid_lock is None  # seconds: no lock
    r = engine.continue_(loop, 48000, 0.2, "more", estimate_conditions=False, **FAST)
    assert r.estimated == {} and r.conditions.bpm == 0 and r.conditions.key == 0


@pytest.mark.parametrize("kwargs,match", [
    (dict(bars=0, bpm=120, meter=4), "bars"),
    (dict(bars=-1, bpm=120, meter=4), "bars"),
    (dict(bars=float("nan"), bpm=120, meter=4), "bars"),
    (dict(bars="2", bpm=120, meter=4), "bars"),
    (dict(bars=2, meter=4), "bpm"),
    (dict(bars=2, bpm=120), "meter"),
    (dict(seconds=3.0, bars=2, bpm=120, meter=4), "disagree"),
    (dict(seconds=2.0, grid_lock=True), "grid_lock"),
    (dict(seconds=2.0, bpm=120, meter=4, grid_lock="yes"), "grid_lock"),
    (dict(), "seconds or bars"),
])
def test_bad_values(engine: Engine, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        engine.generate("x", **kwargs)


def test_bad_values_for_continue(engine: Engine) -> None:
    loop = drum_loop(117, 1.0)
    with pytest.raises(ValueError, match="bpm"):  # nothing to estimate from when it is off
        engine.continue_(loop, 48000, None, "x", bars=1, meter=4, estimate_conditions=False)
    with pytest.raises(ValueError, match="estimate_conditions"):
        engine.continue_(loop, 48000, 0.2, "x", estimate_conditions="no")


# ---- CLI ------------------------------------------------------------------------------------

@pytest.fixture
def commands(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, row in command.CLI_ROWS.items():
        monkeypatch.setitem(cli.COMMANDS, name, row)


def jb(*argv: object) -> int:
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as stop:
        return int(stop.code or 0)


def test_cli_bars(tiny_bundle: Path, tmp_path: Path, commands, capsys) -> None:
    out = tmp_path / "bars.wav"
    assert jb("generate", "--model", tiny_bundle, "--bars", 2, "--bpm", 120, "--meter", 4,
              "--steps", 1, "--seed", 1, "-q", "-o", out) == 0
    info = sf.info(out)
    assert info.frames == 4 * 48000 and info.samplerate == 48000
    assert "grid lock to 2 bar(s) of 4 at 120 BPM" in capsys.readouterr().err
    assert jb("generate", "--model", tiny_bundle, "--bars", 2, "--meter", 4, "-q",
              "-o", tmp_path / "x.wav") == 2
    assert jb("generate", "--model", tiny_bundle, "--bars", 2, "--seconds", 4, "-q",
              "-o", tmp_path / "x.wav") == 2  # one or the other


def test_cli_continue_estimates(tiny_bundle: Path, tmp_path: Path, commands, capsys) -> None:
    src = tmp_path / "loop.wav"
    sf.write(src, drum_loop(117, 3.0).T, 48000)
    out = tmp_path / "more.wav"
    assert jb("continue", src, "--model", tiny_bundle, "--seconds", 0.2, "--steps", 1,
              "--no-grid-lock", "-q", "-o", out) == 0
    err = capsys.readouterr().err
    assert "estimated from the input: bpm 11" in err and "key none" in err
    out2 = tmp_path / "more2.wav"
    assert jb("continue", src, "--model", tiny_bundle, "--seconds", 0.2, "--steps", 1,
              "--no-estimate", "-q", "-o", out2) == 0
    assert "estimated" not in capsys.readouterr().err


# ---- continuation from a groove sketch ---------------------------------------------------------

def test_groove_starts_the_continuation_from_the_looped_bar(engine: Engine) -> None:
    sr, bpm = 48000, 120.0
    loop = drum_loop(bpm, 4.0)
    bar = musical.bar_samples(bpm, 4, sr)
    opts = dict(seed=3, steps=4, bpm=bpm, meter=4, crossfade=0.0)
    plain = engine.continue_(loop, sr, 4.0, "beat", groove=0.0, **opts)
    full = engine.continue_(loop, sr, 4.0, "beat", groove=1.0, **opts)
    half = engine.continue_(loop, sr, 4.0, "beat", groove=0.5, **opts)
    for r in (plain, full, half):
        assert np.array_equal(r.audio[:, : loop.shape[1]], loop)  # the input stays as it was
    assert (plain.groove, full.groove, half.groove) == (0.0, 1.0, 0.5)
    assert (plain.steps, full.steps, half.steps) == (4, 0, 2)  # half the trajectory runs
    n = loop.shape[1]
    assert engine.window_frames * engine.hop < bar  # the tiny model sees less than a bar
    # groove 1 is the sketch itself: the input's last bar looped, through the autoencoder
    # (compared past the first bar, where the context's own frames no longer reach the decoder,
    # and short of the canvas's end)
    part = engine._context_samples(sr)  # the input a window sees: the sketch's latent grid
    sketch = np.concatenate([loop[:, n - part:], musical.loop_tail(loop, n, bar)], axis=1)
    expected = engine.decode(engine.encode(sketch, sr), sr, 2, part + n)[:, part:]
    np.testing.assert_allclose(full.audio[:, n + bar:-4800], expected[:, bar:-4800],
                               atol=1e-4)
    assert not np.allclose(plain.audio[:, n + bar:], expected[:, bar:], atol=1e-2)
    mid = half.audio[:, n + bar:]
    assert not np.allclose(mid, expected[:, bar:], atol=1e-3)  # half-way: denoised, not copied
    assert not np.allclose(mid, plain.audio[:, n + bar:], atol=1e-3)


def test_groove_needs_a_tempo(engine: Engine) -> None:
    sr = 48000
    x = drum_loop(120.0, 3.0)
    opts = dict(seed=3, steps=2, estimate_conditions=False)
    off = engine.continue_(x, sr, 2.0, "beat", **opts)
    on = engine.continue_(x, sr, 2.0, "beat", groove=0.8, **opts)  # no bpm: nothing to loop by
    assert on.groove == 0.0 and np.array_equal(on.audio, off.audio)
    estimated = engine.continue_(x, sr, 2.0, "beat", groove=0.8, seed=3, steps=2)
    assert estimated.estimated.get("bpm") and estimated.groove == 0.8


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), "0.5", True])
def test_groove_refuses_bad_values(engine: Engine, bad: object) -> None:
    with pytest.raises(ValueError, match="groove must be"):
        engine.continue_(drum_loop(120.0, 2.0), 48000, 1.0, "beat", groove=bad, **FAST)
