"""Playback through a real, headless JACK server, recorded with jack_capture.

The module starts ``jackd --no-realtime -d dummy -r 48000 -p 256`` under a private server name
(``JACK_DEFAULT_SERVER``), points PortAudio at it (re-initialised so its JACK host API appears),
and opens one :class:`Player` on the JACK device ``system``. Each test records the player's ports
(``PortAudio:out_*``) with ``jack_capture`` into a float WAV and compares it with what was
scheduled. The player's frame 0 is the first frame of a JACK cycle and jack_capture's first frame
is too, so a clip scheduled at stream sample S lands at recording index ``S + k * 256``: the
alignment is exact modulo one JACK period and only the (unknowable) number of cycles between the
stream start and the recorder start is measured.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from jack_tools import HAVE_JACK, PERIOD, SR, Recorder, align, jack_server

from jenbridge.audio_out import devices
from jenbridge.audio_out.looper import LiveLoop
from jenbridge.audio_out.player import Player, bar_length
from jenbridge.audio_out.ringbuffer import RingBuffer

TOL = 1e-6
REPO = Path(__file__).resolve().parents[1]


# ---- no server needed ----
def test_ring_buffer_wraps_and_skips_late_frames():
    ring = RingBuffer(8, 2)
    data = np.arange(24, dtype=np.float32).reshape(12, 2)
    assert ring.write(data[:6]) == 6
    out = np.empty((4, 2), np.float32)
    assert ring.read_into(out) == 4 and np.array_equal(out, data[:4])
    assert ring.write(data[6:12]) == 6  # wraps around the end
    assert ring.free() == 0 and ring.write(data[:1]) == 0
    out = np.empty((10, 2), np.float32)
    assert ring.read_into(out) == 8 and np.array_equal(out[:8], data[4:12])
    assert not out[8:].any() and ring.read_pos == 14  # the clock ran on through the underrun
    assert ring.writable_from() == 14  # frames 12, 13 were too late: the producer skips them


def test_bar_length_and_meter():
    assert bar_length(120, "4/4", SR) == 96000
    assert bar_length(120, (6, 8), SR) == 72000


def test_audio_unavailable_without_portaudio(monkeypatch):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # import fails like a missing library
    assert devices.describe_audio().startswith("audio unavailable: PortAudio not loadable")
    with pytest.raises(devices.AudioUnavailable):
        Player()


def test_audio_unavailable_without_jack_server():
    """A fresh process pointed at a JACK server that doesn't exist gets no JACK device, and on a
    machine without a sound card (CI) says so in one line instead of raising."""
    env = dict(os.environ, JACK_DEFAULT_SERVER="jenbridge-no-such-server", JACK_NO_START_SERVER="1",
               PYTHONPATH=str(REPO))
    code = ("from jenbridge.audio_out import devices as d; print(d.describe_audio()); "
            "print(len(d.list_output_devices('JACK')) if d.audio_unavailable_reason() is None "
            "else 0)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=30, check=True).stdout.splitlines()
    assert out[-1] == "0"
    assert out[0].startswith(("audio unavailable: no output device", "audio: "))


# ---- JACK ----
@pytest.fixture(scope="module")
def jack():
    """A private dummy JACK server, with PortAudio re-scanned to see it; stopped afterwards."""
    if not HAVE_JACK:
        pytest.skip("jackd2 and jack-capture not installed (scripts/setup.sh installs them)")
    with jack_server("jenbridge-test") as name:
        sd = devices.load_sounddevice()
        devices.rescan()
        try:
            yield name
        finally:
            sd._terminate()  # close PortAudio's JACK client while the server is still up
    sd._initialize()


@pytest.fixture(scope="module")
def player(jack):
    p = Player("system", hostapi="JACK", sample_rate=SR, channels=2)
    yield p
    p.close()


@pytest.fixture
def recorder(jack, tmp_path):
    rec = Recorder(tmp_path / "rec.wav")
    yield rec
    rec.kill()


def wait_until(player: Player, sample: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while player.position < sample:
        assert time.monotonic() < deadline, f"stream stuck at {player.position} < {sample}"
        time.sleep(0.05)


def test_devices_by_name(jack):
    jacks = devices.list_output_devices("JACK")
    assert [d.name for d in jacks] == ["system"] and jacks[0].channels == 2
    assert devices.find_output_device("SYS", "JACK").name == "system"
    with pytest.raises(ValueError, match=r"'no-such-card' matches no output device.*system"):
        devices.find_output_device("no-such-card")


def test_chirp_and_clicks_play_bit_exact(player, recorder, tmp_path):
    t = np.arange(2 * SR) / SR
    chirp = 0.5 * np.sin(2 * np.pi * (50 * t + (12000 - 50) / 4 * t**2))
    chirp[::12000] = 0.9  # clicks
    sf.write(tmp_path / "signal.wav", np.stack([chirp, -0.5 * chirp], 1), SR, subtype="FLOAT")
    signal = sf.read(tmp_path / "signal.wav", dtype="float32", always_2d=True)[0].T
    before = player.status()
    start = player.play(signal, player.earliest_start() + 333)
    wait_until(player, start + signal.shape[1] + PERIOD)
    after = player.status()
    rec = recorder.stop()
    at = align(rec, signal)
    got = rec[:, at : at + signal.shape[1]]
    assert np.abs(got - signal).max() <= TOL
    assert not rec[:, :at].any() and not rec[:, at + signal.shape[1] :].any()
    assert (at - start) % PERIOD == 0, (at, start)
    assert after.underruns == before.underruns
    # PortAudio's JACK host flags every *server* xrun (any late client, e.g. jack_capture starting
    # on a loaded 2-core machine); the bit-exact recording above shows none of them hit our output.
    print(f"alignment: clip at stream sample {start} recorded at {at}; JACK xruns flagged: "
          f"{after.xruns - before.xruns}")
    assert after.queued_clips == 0


def test_at_sample_is_sample_accurate(player, recorder):
    s1 = player.earliest_start() + 1234
    s2 = s1 + 12345
    click = np.array([[1.0], [0.5]], np.float32)
    player.play(click, s1)
    player.play(-click, s2)
    wait_until(player, s2 + PERIOD)
    rec = recorder.stop()
    hits = np.flatnonzero(rec[0])
    assert len(hits) == 2 and rec[0, hits[0]] == 1.0 and rec[0, hits[1]] == -1.0
    assert hits[1] - hits[0] == s2 - s1
    offset = hits[0] - s1  # recorder start minus stream start: whole JACK cycles
    assert offset % PERIOD == 0, offset
    print(f"impulse at stream sample {s1} recorded at {hits[0]}: offset {offset} = "
          f"{offset // PERIOD} JACK periods, error within the period 0")


def test_stop_fades_out_without_click(player, recorder):
    t = np.arange(3 * SR) / SR
    tone = (0.8 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    start = player.play(tone)
    wait_until(player, start + SR // 2)
    player.stop()
    stop_at = player.status().committed
    wait_until(player, stop_at + PERIOD)
    assert player.status().queued_clips == 0
    rec = recorder.stop()[0]
    sound = np.flatnonzero(rec)
    assert 0 < sound[-1] - sound[0] < 2 * SR  # cut well before the tone's end
    max_step = np.abs(np.diff(tone)).max()
    assert np.abs(np.diff(rec)).max() <= max_step * 1.001


def test_live_loop_three_iterations_seamless(player, recorder):
    bpm, bars, meter = 240, 1, "4/4"
    n = round(bar_length(bpm, meter, SR) * bars)  # 48000 frames
    t = np.arange(n)
    first = np.stack([0.3 * np.sin(2 * np.pi * t / 128), 0.3 * np.sin(2 * np.pi * t / 96)])
    first = first.astype(np.float32)  # 375 and 500 cycles: each loop seamless on its own
    calls = []

    def next_loop(k: int, previous: np.ndarray) -> np.ndarray:
        calls.append(k)
        return previous * np.float32(1.5)

    before = player.status()
    loop = LiveLoop(player, first, bpm, bars, meter, next_loop)
    deadline = time.monotonic() + 10
    while loop.status()["queued"] < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    loop.stop(fade=False)  # three iterations queued: let them play out
    status = loop.status()
    wait_until(player, loop.start_sample + 3 * n + PERIOD)
    after = player.status()
    rec = recorder.stop()

    expected = np.concatenate([first, first * 1.5, first * 2.25], axis=1).astype(np.float32)
    assert status["queued"] == 3 and status["made"] == 2 and status["repeats"] == 0
    assert calls[:2] == [1, 2]
    at = align(rec, expected)
    assert (at - loop.start_sample) % PERIOD == 0
    assert np.abs(rec[:, at : at + 3 * n] - expected).max() <= 1e-6
    assert not rec[:, :at].any() and not rec[:, at + 3 * n :].any()  # exactly 3 loops long
    step = np.abs(np.diff(rec[:, at : at + 3 * n], axis=1))
    for b in (n, 2 * n):
        assert step[:, b - 2 : b + 1].max() <= step.max(), b  # no click at the boundary
    assert after.underruns == before.underruns


def test_live_loop_repeats_when_next_is_late(player):
    n = round(bar_length(240, "4/4", SR))
    first = np.full((2, n), 0.1, np.float32)

    def slow(k: int, previous: np.ndarray) -> np.ndarray:
        time.sleep(1.6)
        return previous * np.float32(0.5)

    loop = LiveLoop(player, first, 240, 1, "4/4", slow, margin_s=0.2)
    deadline = time.monotonic() + 10
    while loop.status()["queued"] < 4:  # whatever the phase, one of 3 boundaries came too soon
        assert time.monotonic() < deadline
        time.sleep(0.02)
    loop.stop()
    s = loop.status()
    assert s["repeats"] >= 1 and s["made"] >= 1 and s["failures"] == 0
    assert player.status().underruns == 0
