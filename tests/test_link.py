"""Ableton Link sync: the bar arithmetic, and a live loop started by a real daemon in a Link
session with an independent aalink peer (another process-level Link participant, here a thread
of the test) that sets the tempo; the loop must take the session's tempo and start on one of its
bar lines, as the peer sees them."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import pytest

from jenbridge.audio_out.link import LinkState, next_bar_time


def test_next_bar_time() -> None:
    st = LinkState(tempo=120.0, beat=5.5, at=10.0, peers=0, quantum=4.0)
    t, beat = next_bar_time(st, 4, after=10.0)
    assert beat == 8.0 and t == pytest.approx(11.25)  # 2.5 beats at 0.5 s
    assert next_bar_time(st, 3, after=10.0) == (pytest.approx(10.25), 6.0)
    t2, beat2 = next_bar_time(st, 4, after=11.25)  # exactly on a bar line: that one
    assert (beat2, t2) == (8.0, pytest.approx(11.25))
    assert next_bar_time(st, 4, after=11.26)[1] == 12.0
    with pytest.raises(ValueError):
        next_bar_time(st, 0, after=10.0)


class Peer:
    """An aalink Link peer in its own thread (asyncio loop), at `bpm`."""

    def __init__(self, bpm: float) -> None:
        import aalink

        self.loop = asyncio.new_event_loop()
        self.link = None
        ready = threading.Event()

        async def join():
            link = aalink.Link(bpm)
            link.quantum = 4
            link.enabled = True
            return link

        def run() -> None:
            asyncio.set_event_loop(self.loop)
            self.link = self.loop.run_until_complete(join())
            ready.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=run, daemon=True)
        self.thread.start()
        assert ready.wait(5)

    def snapshot(self) -> tuple[float, float, float, int]:
        """(beat, tempo, time.monotonic() of the beat, peers)."""
        async def snap():
            a = time.monotonic()
            beat, tempo = self.link.beat, self.link.tempo
            return beat, tempo, (a + time.monotonic()) / 2, self.link.num_peers

        return asyncio.run_coroutine_threadsafe(snap(), self.loop).result(5)

    def set_tempo(self, bpm: float) -> None:
        """Change the session's tempo (a peer that joins an existing session adopts its tempo,
        so the test sets it once both are in)."""
        async def put():
            self.link.tempo = bpm

        asyncio.run_coroutine_threadsafe(put(), self.loop).result(5)

    def close(self) -> None:
        async def off():
            self.link.enabled = False

        asyncio.run_coroutine_threadsafe(off(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(2)


def test_live_loop_follows_a_link_session(tiny_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("aalink")
    from jack_tools import HAVE_JACK, jack_server
    from test_daemon_playback import start_daemon

    if not HAVE_JACK:
        pytest.skip("jackd2 and jack-capture not installed")
    with jack_server("jenbridge-link-test"):
        d = start_daemon(tiny_bundle, tmp_path, audio_device="system", audio_hostapi="JACK",
                         link="true")
        peer = Peer(100.0)
        c = d.client()
        try:
            deadline = time.monotonic() + 15
            while True:
                c.send("/jb/link", "q")
                _, enabled, peers, tempo, _beat = c.wait(("/jb/link",), "q")[1]
                assert enabled == 1, "the daemon did not join a Link session"
                if peers >= 1 and abs(tempo - 100.0) < 0.01:
                    break
                if peers >= 1:
                    peer.set_tempo(100.0)  # the session's tempo, set by the other peer
                if time.monotonic() > deadline:
                    if peers == 0:  # the machine, not the code: Link finds peers by multicast
                        pytest.skip("no Link peer discovered on this machine (multicast?)")
                    raise AssertionError(f"the session's tempo did not reach the daemon: {tempo}")
                time.sleep(0.2)
            c.send("/jb/loop/start", "L", "bars", 1, "bpm", 120.0, "prompt", "x")
            err = c.wait(("/jb/error",), "L")[1]
            assert err[1] == "bad_request" and "Link" in err[2]  # 120 is not the session's
            c.send("/jb/loop/start", "L2", "bars", 1, "prompt", "x", "steps", 1,
                   "iterations", 1)
            started = c.wait(("/jb/loop/started", "/jb/error"), "L2", timeout=120)
            assert started[0] == "/jb/loop/started", started
            _, _sec, _offset, frames, rate, link_beat, link_time = started[1]
            assert frames == round(4 * 60 / 100 * rate)  # one bar at the session's tempo
            assert abs(link_beat / 4 - round(link_beat / 4)) < 0.005
            # the same instant on the independent peer's timeline is on a bar line too
            beat, tempo, at, _ = peer.snapshot()
            there = beat + (float(link_time) - at) * tempo / 60
            assert abs(there / 4 - round(there / 4)) < 0.01, (there, link_beat)
            c.wait(("/jb/loop/stopped",), "L2", timeout=60)
        finally:
            c.close()
            peer.close()
            d.stop()
