"""plugin_host: chains from YAML, every built-in pedalboard effect, streaming == offline, the
out-of-process plugin host surviving crashes and hangs, and a real Linux VST3 (zam-plugins)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pedalboard
import pytest
import soundfile as sf

from plugin_host import (
    ChainError,
    EffectChain,
    PluginError,
    builtin_effects,
    load_chain_file,
    parse_chain,
)
from plugin_host.effects import LIMITS, OFFLINE_ONLY
from plugin_host.worker import FAULT_ENV

RATE = 48000
# Odd sizes, single frames, sizes around the 256-frame block and larger than it, in one stream.
CHUNKS = [1, 1, 1, 37, 4096, 3, 255, 256, 257, 1000, 2, 911]
ZAM_MAXIMIZER = Path("/usr/lib/vst3/ZaMaximX2.vst3")  # Debian: apt-get install zam-plugins
STREAMABLE = [name for name, info in builtin_effects().items() if not info.offline_only]


def _music(seconds: float = 0.4, seed: int = 0) -> np.ndarray:
    """(2, n) float32: plucked notes, a noise burst and a silent gap (gates, tails, transients)."""
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    rng = np.random.default_rng(seed)
    out = np.zeros((2, n))
    for start, freq, pan in [(0.0, 220.0, 0.3), (0.25, 330.0, 0.7), (0.5, 440.0, 0.5)]:
        env = np.where(t >= start * seconds, np.exp(-(t - start * seconds) * 12.0), 0.0)
        tone = env * np.sin(2 * np.pi * freq * t) * 0.4
        out += np.stack([tone * (1 - pan), tone * pan])
    burst = slice(int(0.62 * n), int(0.75 * n))
    out[:, burst] += 0.3 * rng.standard_normal((2, burst.stop - burst.start))
    out[:, int(0.82 * n) : int(0.9 * n)] = 0.0
    return out.astype(np.float32)


def _stream(chain: EffectChain, x: np.ndarray, chunks: list[int]) -> np.ndarray:
    outs, start, k = [], 0, 0
    with chain.stream() as live:
        while start < x.shape[1]:
            size = chunks[k % len(chunks)]
            out = live.process(x[:, start : start + size])
            assert out.shape == (x.shape[0], min(size, x.shape[1] - start))
            outs.append(out)
            start, k = start + size, k + 1
    return np.concatenate(outs, axis=1)


def _assert_stream_matches(chain: EffectChain, x: np.ndarray, chunks: list[int]) -> None:
    """Concatenated chunk outputs == the offline render, shifted by latency_samples."""
    offline = chain.process(x)
    streamed = _stream(chain, x, chunks)
    lag = chain.latency_samples
    assert lag < x.shape[1] // 2
    np.testing.assert_array_equal(streamed[:, :lag], 0.0)
    np.testing.assert_allclose(streamed[:, lag:], offline[:, : x.shape[1] - lag], atol=1e-6)


@pytest.fixture(scope="module")
def impulse_response(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ir = np.zeros(2400, np.float32)
    ir[[0, 700, 2000]] = [1.0, 0.5, 0.25]
    path = tmp_path_factory.mktemp("ir") / "room.wav"
    sf.write(path, ir, RATE)
    return path


def _item(name: str, impulse_response: Path) -> dict:
    """Defaults, plus the one required argument pedalboard has (Convolution's IR)."""
    required = {"Convolution": {"impulse_response_filename": str(impulse_response)}}
    return {"effect": name, **required.get(name, {})}


# -- the registry ---------------------------------------------------------------------------


def test_registry_is_every_leaf_pedalboard_effect() -> None:
    effects = builtin_effects()
    for name, obj in vars(pedalboard).items():
        if not (isinstance(obj, type) and issubclass(obj, pedalboard.Plugin)):
            continue
        hosting = issubclass(obj, (pedalboard.PluginContainer, pedalboard.ExternalPlugin))
        is_base = any(obj in other.__mro__[1:] for other in vars(pedalboard).values()
                      if isinstance(other, type))
        assert (name in effects) == (not hosting and not is_base and not name.startswith("_"))
    assert {"Reverb", "Compressor", "Convolution", "LadderFilter", "PitchShift"} <= set(effects)
    assert effects["Reverb"].arguments["room_size"].type == "float"
    assert effects["Convolution"].arguments["impulse_response_filename"].required
    # Every extra range names a real argument (a pedalboard rename would leave it dangling).
    for effect, argument in LIMITS:
        assert argument in effects[effect].arguments
    assert set(OFFLINE_ONLY) <= set(effects)


@pytest.mark.parametrize("name", sorted(builtin_effects()))
def test_every_builtin_effect_renders_like_pedalboard(name: str, impulse_response: Path) -> None:
    """Each effect from a chain renders exactly what pedalboard renders offline, same length,
    finite, latency compensated."""
    x = _music()
    item = _item(name, impulse_response)
    with EffectChain([item], RATE) as chain:
        out = chain.process(x)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.isfinite(out).all()
    kwargs = {k: v for k, v in item.items() if k != "effect"}
    reference = getattr(pedalboard, name)(**kwargs)(x, RATE)
    np.testing.assert_allclose(out, reference, atol=1e-6)


@pytest.mark.parametrize("name", STREAMABLE)
def test_streaming_equals_offline_for_every_streamable_effect(
    name: str, impulse_response: Path
) -> None:
    with EffectChain([_item(name, impulse_response)], RATE) as chain:
        _assert_stream_matches(chain, _music(), CHUNKS)


@pytest.mark.parametrize("chunks", [[1], [37], [4096]])
def test_streaming_equals_offline_for_a_whole_chain(chunks: list[int]) -> None:
    """A chain with latency in the middle (MP3 ~3500 frames, lookahead limiter) before
    time-varying effects, with partial mixes; uniform chunk sizes including single frames."""
    spec = [
        {"effect": "Compressor", "threshold_db": -20, "ratio": 4},
        {"effect": "MP3Compressor", "vbr_quality": 4},
        {"effect": "Chorus", "mix": 0.3},
        {"effect": "BrickwallLimiter", "ceiling_db": -3, "mix": 0.8},
        {"effect": "Reverb", "room_size": 0.6, "mix": 0.4},
    ]
    x = _music(0.25 if chunks == [1] else 0.4)
    with EffectChain(spec, RATE) as chain:
        assert chain.latency_samples > 3000
        _assert_stream_matches(chain, x, chunks)


def test_stream_reset_starts_over() -> None:
    x = _music(0.2)
    with EffectChain([{"effect": "Reverb"}, {"effect": "Delay", "feedback": 0.5}], RATE) as chain:
        live = chain.stream()
        first = np.concatenate([live.process(x[:, i : i + 500]) for i in range(0, 9600, 500)], 1)
        live.reset()
        again = np.concatenate([live.process(x[:, i : i + 500]) for i in range(0, 9600, 500)], 1)
        live.close()
    np.testing.assert_array_equal(first, again)


# -- what pedalboard does that the design works around (fails when pedalboard changes) -------


def test_pedalboard_resets_an_effect_when_calls_grow() -> None:
    """Why streams call effects in fixed blocks: a call longer than the previous ones clears
    the effect's state, so naive chunked processing differs from offline."""
    x = _music()
    reverb = pedalboard.Reverb()
    offline = reverb(x, RATE)
    reverb.reset()
    parts = [reverb(x[:, :2000], RATE, reset=False), reverb(x[:, 2000:6096], RATE, reset=False)]
    assert np.abs(np.concatenate(parts, 1) - offline[:, :6096]).max() > 1e-3


def test_offline_only_effects_refuse_to_stream_because_pedalboard_cannot() -> None:
    x = _music()
    shifter = pedalboard.PitchShift(semitones=3)
    shifter.reset()
    streamed = [shifter(x[:, i : i + 4096], RATE, reset=False) for i in range(0, x.shape[1], 4096)]
    assert all(np.abs(part).max() == 0.0 for part in streamed if part.size)  # pedalboard #415
    gsm = pedalboard.GSMFullRateCompressor()
    offline = gsm(x, RATE)
    gsm.reset()
    parts = [gsm(x[:, i : i + 1024], RATE, reset=False) for i in range(0, x.shape[1], 1024)]
    got = np.concatenate([p.reshape(2, -1) for p in parts], 1)
    assert np.abs(got - offline[:, : got.shape[1]]).max() > 1e-2
    for name in OFFLINE_ONLY:
        with EffectChain([{"effect": "Gain"}, {"effect": name}], RATE) as chain:
            assert chain.offline_only is not None and name in chain.offline_only
            assert chain.process(x).shape == x.shape
            with pytest.raises(ChainError, match=rf"chain\[1\] \({name}\): .*offline only"):
                chain.stream()


# -- latency, mix, bypass, tail ---------------------------------------------------------------


def test_builtin_latency_is_compensated_offline_and_reported_for_streams() -> None:
    x = np.zeros((2, 20000), np.float32)
    x[:, 5000] = 0.1  # well under the ceiling: the limiter passes it unchanged, only delayed
    with EffectChain([{"effect": "BrickwallLimiter", "ceiling_db": -1}], RATE) as chain:
        out = chain.process(x)
        assert int(np.argmax(np.abs(out[0]))) == 5000
        streamed = _stream(chain, x, [441])
        assert int(np.argmax(np.abs(streamed[0]))) == 5000 + chain.latency_samples
        assert chain.latency_samples > chain.block_size - 1  # the lookahead is in it


def test_mix_blends_with_latency_aligned_dry_signal() -> None:
    x = _music()
    dry_only = [{"effect": "BrickwallLimiter", "ceiling_db": -12, "mix": 0.0}]
    with EffectChain(dry_only, RATE) as chain:
        np.testing.assert_allclose(chain.process(x), x, atol=1e-7)  # delayed dry lines up
        lag = chain.latency_samples
        np.testing.assert_allclose(_stream(chain, x, CHUNKS)[:, lag:], x[:, :-lag], atol=1e-7)
    with EffectChain([{"effect": "Reverb", "mix": 0.25}], RATE) as half, EffectChain(
        [{"effect": "Reverb"}], RATE
    ) as wet:
        np.testing.assert_allclose(half.process(x), 0.75 * x + 0.25 * wet.process(x), atol=1e-6)
    # Effects with their own `mix` get it as their argument (same meaning).
    item = parse_chain([{"effect": "Delay", "mix": 0.2}]).items[0]
    assert item.mix is None and item.kwargs["mix"] == 0.2  # type: ignore[union-attr]


def test_bypass_is_checked_but_not_run() -> None:
    x = _music()
    with EffectChain([{"effect": "Gain", "gain_db": -20, "bypass": True}], RATE) as chain:
        np.testing.assert_array_equal(chain.process(x), x)
    with pytest.raises(ChainError, match="unknown argument 'gain'"):
        parse_chain([{"effect": "Gain", "gain": -20, "bypass": True}])


def test_tail_seconds_keeps_the_reverb_tail() -> None:
    x = _music(0.2)
    with EffectChain([{"effect": "Reverb", "room_size": 0.9}], RATE) as chain:
        plain = chain.process(x)
        longer = chain.process(x, tail_seconds=0.5)
    assert plain.shape == x.shape
    assert longer.shape == (2, x.shape[1] + RATE // 2)
    np.testing.assert_allclose(longer[:, : x.shape[1]], plain, atol=1e-6)
    assert np.abs(longer[:, x.shape[1] :]).max() > 1e-3


def test_an_effect_that_blows_up_is_an_error_not_a_result() -> None:
    x = _music(0.1)
    with EffectChain([{"effect": "Gain", "gain_db": 800}], RATE) as chain:  # float32 overflow
        with pytest.raises(PluginError, match=r"chain\[0\] \(Gain\): produced non-finite"):
            chain.process(x)
        with chain.stream() as live, pytest.raises(PluginError, match="non-finite"):
            live.process(x)


@pytest.mark.parametrize("name", ["Reverb", "MP3Compressor", "PitchShift"])
def test_tiny_inputs_keep_their_length(name: str) -> None:
    with EffectChain([{"effect": name}], RATE) as chain:
        for frames in (0, 1, 2, 3):
            assert chain.process(np.full((2, frames), 0.1, np.float32)).shape == (2, frames)
        if not chain.offline_only:
            with chain.stream() as live:
                assert live.process(np.zeros((2, 0), np.float32)).shape == (2, 0)


def test_bad_audio_is_refused() -> None:
    with EffectChain([{"effect": "Gain"}], RATE) as chain:
        with pytest.raises(ValueError, match=r"\(2, frames\)"):
            chain.process(np.zeros((1000, 2), np.float32))
        with pytest.raises(ValueError, match="NaN"):
            chain.process(np.full((2, 100), np.nan, np.float32))
        with pytest.raises(ValueError, match="tail_seconds"):
            chain.process(np.zeros((2, 100), np.float32), tail_seconds=-1)
        assert chain.process(np.zeros((2, 0), np.float32)).shape == (2, 0)
    with pytest.raises(ValueError, match="block_size"):
        EffectChain([], RATE, block_size=7)


# -- validation messages ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ([{"effect": "Reverbb"}],
         r"^chain\[0\]: unknown effect 'Reverbb' \(did you mean Reverb\?\)"),
        ([{"effect": "reverb"}], r"did you mean Reverb\?"),
        ([{"effect": "Gain"}, {"effect": "Gain"}, {"effect": "Reverb", "rom_size": 0.3}],
         r"^chain\[2\] \(Reverb\): unknown argument 'rom_size' \(did you mean room_size\?\); "
         r"known: room_size, damping, wet_level"),
        ([{"effect": "Reverb", "room_size": 2}], r"^chain\[0\] \(Reverb\): Room Size value must "
         r"be between 0.0 and 1.0\. \(given: room_size=2.0\)"),
        ([{"effect": "Reverb", "room_size": "big"}], r"'room_size' must be a number, got 'big'"),
        ([{"effect": "Gain", "gain_db": float("nan")}], r"'gain_db' must be finite"),
        ([{"effect": "Delay", "feedback": float("inf")}], r"'feedback' must be finite"),
        ([{"effect": "Gain", "gain_db": True}], r"'gain_db' must be a number"),
        ([{"effect": "LadderFilter", "mode": "LPF36"}], r"'mode' must be one of LPF12, HPF12"),
        ([{"effect": "BrickwallLimiter", "true_peak": 1}], r"'true_peak' must be true or false"),
        ([{"effect": "Chorus", "feedback": 1.5}], r"\(Chorus\): 'feedback' must be in -1 .. 1"),
        ([{"effect": "LowpassFilter", "cutoff_frequency_hz": -5}], r"must be above 0 Hz"),
        ([{"effect": "Convolution"}], r"missing argument 'impulse_response_filename'"),
        ([{"effect": "Convolution", "impulse_response_filename": "/no/such/ir.wav"}],
         r"'impulse_response_filename': no such file: /no/such/ir\.wav"),
        ([{"effect": "Reverb", "mix": 1.5}], r"'mix' must be in 0 .. 1"),
        ([{"effect": "Reverb", "bypass": "yes"}], r"'bypass' must be true or false"),
        ([{"effect": "Reverb", "isolate": True, "timeout_s": 0}], r"'timeout_s' must be above 0"),
        ([{"effect": "Reverb", "plugin": "/x.vst3"}], r"needs exactly one of 'effect'"),
        (["Reverb"], r"^chain\[0\]: an item is a mapping"),
        ({"effects": []}, r"^chain: a chain is a list of items, or a mapping with 'chain'"),
        ([{"plugin": "/no/such/plugin.vst3"}], r"^chain\[0\] \(plugin\.vst3\): 'plugin': no such "
         r"file"),
        ([{"plugin": "/usr/lib/ladspa/x.so"}], r"'plugin' must be a \.vst3 or \.component"),
        ([{"plugin": "/x/Some.component"}], r"Audio Unit plugins \(\.component\) load only on "
         r"macOS"),
        ([{"plugin": "/x.vst3", "param": {}}], r"unknown key 'param' \(did you mean params\?\)"),
        ([{"plugin": "/x.vst3", "params": {"a": float("nan")}}], r"parameter 'a' must be finite"),
    ],
)
def test_bad_chains_get_clear_errors(spec: object, message: str) -> None:
    with pytest.raises(ChainError, match=message):
        parse_chain(spec)


def test_values_that_need_the_sample_rate_are_checked_by_the_chain() -> None:
    spec = parse_chain([{"effect": "LowpassFilter", "cutoff_frequency_hz": 6000}])
    EffectChain(spec, RATE).close()
    with pytest.raises(ChainError, match=r"chain\[0\] \(LowpassFilter\): 'cutoff_frequency_hz' "
                       r"must be below half the sample rate \(4000 Hz\)"):
        EffectChain(spec, 8000)


def test_enum_values_by_name_any_case() -> None:
    spec = parse_chain([{"effect": "LadderFilter", "mode": "hpf24"},
                        {"effect": "Resample", "target_sample_rate": 16000, "quality": "Linear"}])
    assert spec.items[0].kwargs["mode"] == "HPF24"  # type: ignore[union-attr]
    with EffectChain(spec, RATE) as chain:
        assert np.isfinite(chain.process(_music(0.1))).all()


def test_chain_file_errors_name_the_file_and_paths_resolve_beside_it(
    tmp_path: Path, impulse_response: Path
) -> None:
    (tmp_path / "room.wav").write_bytes(impulse_response.read_bytes())
    good = tmp_path / "good.yaml"
    good.write_text(
        "description: small room\nchain:\n"
        "  - effect: Convolution\n    impulse_response_filename: room.wav\n    mix: 0.5\n"
        "  - {effect: Reverb, room_size: 0.25, bypass: true}\n"
    )
    spec = load_chain_file(good)
    assert spec.description == "small room" and len(spec.active) == 1
    assert spec.items[0].kwargs["impulse_response_filename"] == str(tmp_path / "room.wav")  # type: ignore[union-attr]
    bad = tmp_path / "bad.yaml"
    bad.write_text("- effect: Gain\n- effect: Reverb\n  rom_size: 0.3\n")
    with pytest.raises(ChainError, match=rf"^{bad}: chain\[1\] \(Reverb\): unknown argument"):
        load_chain_file(bad)
    broken = tmp_path / "broken.yaml"
    broken.write_text("- effect: [Gain\n")
    with pytest.raises(ChainError, match=rf"^{broken}: not valid YAML"):
        load_chain_file(broken)
    with pytest.raises(ChainError, match=r"missing\.yaml: cannot read the chain file"):
        load_chain_file(tmp_path / "missing.yaml")


# -- out-of-process hosting -------------------------------------------------------------------


def test_isolated_effect_matches_in_process() -> None:
    x = _music()
    spec: list[dict[str, Any]] = [{"effect": "Reverb", "room_size": 0.7},
                                  {"effect": "MP3Compressor"}]
    with EffectChain(spec, RATE) as local, EffectChain(
        [{**item, "isolate": True} for item in spec], RATE
    ) as isolated:
        assert isolated.latency_samples == local.latency_samples
        np.testing.assert_array_equal(isolated.process(x), local.process(x))
        np.testing.assert_array_equal(_stream(isolated, x, CHUNKS), _stream(local, x, CHUNKS))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


@pytest.mark.parametrize(
    ("fault", "message"),
    [
        ("abort:run", r"chain\[1\] \(Gain\): the plugin process crashed while processing "
         r"\(killed by signal SIGABRT\)"),
        ("exit:run", r"crashed while processing \(exited with status 3\)"),
        ("hang:run", r"chain\[1\] \(Gain\): the plugin process did not answer within 1 s while "
         r"processing; it was killed"),
    ],
)
def test_a_crashing_or_hanging_plugin_process_is_an_error_not_a_crash(
    fault: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    x = _music(0.1)
    spec = [{"effect": "Reverb"}, {"effect": "Gain", "isolate": True, "timeout_s": 1}]
    monkeypatch.setenv(FAULT_ENV, fault)  # the worker aborts / exits / hangs on "run"
    chain = EffectChain(spec, RATE)
    pid = chain.describe()[1]["pid"]
    assert pid is not None and chain.describe()[0]["pid"] is None
    started = time.monotonic()
    with pytest.raises(PluginError, match=message):
        chain.process(x)
    assert time.monotonic() - started < 8
    assert _gone(pid)  # killed or dead, and reaped
    with pytest.raises(PluginError, match="the plugin process is gone"):
        chain.process(x)
    chain.close()
    monkeypatch.delenv(FAULT_ENV)
    with EffectChain(spec, RATE) as next_chain:  # this process goes on, and so does the next job
        assert next_chain.process(x).shape == x.shape


def test_a_plugin_process_crashing_while_loading_is_an_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(FAULT_ENV, "abort:open")
    with pytest.raises(PluginError, match=r"crashed while loading \(killed by signal SIGABRT\)"):
        EffectChain([{"effect": "Gain", "isolate": True}], RATE)


# -- a real Linux VST3 ------------------------------------------------------------------------

needs_zam = pytest.mark.skipif(
    not ZAM_MAXIMIZER.exists(),
    reason=f"{ZAM_MAXIMIZER} not installed (Debian package zam-plugins)",
)


@needs_zam
def test_vst3_plugin_runs_out_of_process_with_latency_compensated(tmp_path: Path) -> None:
    x = 2.5 * _music()  # peaks above full scale: the maximizer works hard
    params = {"threshold_db": -12.0, "release_ms": 50.0}
    item = {"plugin": str(ZAM_MAXIMIZER), "params": params}
    # The same plugin in this process. (pedalboard.load_plugin's parameter_values does not
    # reach this plugin in pedalboard 0.9.26; attributes do, as in the worker.)
    local: Any = pedalboard.load_plugin(str(ZAM_MAXIMIZER))
    for name, value in params.items():
        setattr(local, name, value)
    with EffectChain([item], RATE) as chain:
        (worker,) = chain.describe()
        assert worker["name"] == "ZaMaximX2" and worker["pid"] not in (None, os.getpid())
        assert "value=50.0" in worker["parameters"]["release_ms"]
        assert worker["latency"] == 480  # its 10 ms lookahead at 48 kHz, as the plugin reports
        assert chain.latency_samples == chain.block_size - 1 + 480
        out = chain.process(x)
        np.testing.assert_allclose(out, local(x, RATE), atol=1e-6)
        assert np.abs(out).max() < 1.0 < np.abs(x).max()  # it limits
        _assert_stream_matches(chain, x, CHUNKS)

        impulse = np.zeros((2, 8000), np.float32)
        impulse[:, 3000] = 0.05  # quiet: passed through, only delayed by the lookahead
        assert int(np.argmax(np.abs(chain.process(impulse)[0]))) == 3000
    with EffectChain([{"plugin": str(ZAM_MAXIMIZER)}], RATE) as defaults:
        assert np.abs(defaults.process(x) - out).max() > 1e-2  # the parameters mattered

    # Saved state instead of parameters. A VST3 takes parameter changes into its state when
    # it next processes audio, so the reference processes a block before saving.
    local.threshold_db, local.release_ms = -20.0, 80.0
    local(x[:, :512], RATE)
    state = tmp_path / "maximizer.state"
    state.write_bytes(local.raw_state)
    with EffectChain([{"plugin": str(ZAM_MAXIMIZER), "state": str(state)}], RATE) as chain:
        np.testing.assert_allclose(chain.process(x), local(x, RATE), atol=1e-6)
        assert np.abs(chain.process(x) - out).max() > 1e-2


@needs_zam
def test_vst3_unknown_parameter_is_a_chain_error() -> None:
    item = {"plugin": str(ZAM_MAXIMIZER), "params": {"treshold_db": -6}}
    with pytest.raises(ChainError, match=r"chain\[0\] \(ZaMaximX2\.vst3\): unknown parameter "
                       r"'treshold_db'; known: .*threshold_db"):
        EffectChain([item], RATE)


@needs_zam
def test_vst3_mono_plugin_in_a_stereo_chain_is_a_chain_error() -> None:
    mono = ZAM_MAXIMIZER.parent / "ZamComp.vst3"
    with pytest.raises(ChainError, match=r"chain\[0\] \(ZamComp\.vst3\): .*does not support "
                       r"2-channel output"):
        EffectChain([{"plugin": str(mono)}], RATE)
    with EffectChain([{"plugin": str(mono), "params": {"threshold_db": -30}}], RATE, 1) as chain:
        x = _music()[:1]
        assert np.abs(chain.process(x) - x).max() > 1e-3


@needs_zam
def test_vst3_crash_kills_only_its_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "abort:run")
    with EffectChain([{"plugin": str(ZAM_MAXIMIZER)}], RATE) as chain, pytest.raises(
        PluginError, match="crashed while processing"
    ):
        chain.process(_music(0.1))
