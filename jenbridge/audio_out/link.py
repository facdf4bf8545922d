"""Ableton Link: share tempo and bar phase with Live, Bitwig, Traktor, phones... on the network.

The optional dependency `aalink` (pip install jenbridge[link]) wraps Ableton's Link library.
Its objects need a running asyncio loop, so `LinkSession` runs one in a thread and every query
goes through it. Link keeps its own clock (CLOCK_MONOTONIC_RAW on Linux, not Python's
`time.monotonic`), so a snapshot reads the session's beat "now" and stamps it with our
monotonic clock read around it; the player maps monotonic time to its sample clock
(Player.sample_at), which is how a Link bar line becomes a sample position.

The bar arithmetic (`next_bar_time`) is plain and tested without a network; the session itself
is tested against a second Link peer on the same machine (Link finds peers by multicast).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger("jenbridge.link")


class LinkUnavailable(RuntimeError):
    """aalink is not installed or Link could not start."""


@dataclass(frozen=True)
class LinkState:
    """One consistent snapshot of the Link session, on Python's monotonic clock."""

    tempo: float  # BPM
    beat: float  # the session's beat at `at`
    at: float  # time.monotonic() of the snapshot
    peers: int
    quantum: float

    def beat_at(self, t: float) -> float:
        """The session's beat at monotonic time t (constant tempo from the snapshot on)."""
        return self.beat + (t - self.at) * self.tempo / 60.0


def next_bar_time(state: LinkState, beats_per_bar: float, after: float) -> tuple[float, float]:
    """(monotonic time, beat) of the first bar line (beat a multiple of beats_per_bar) at or
    after monotonic time `after`."""
    if beats_per_bar <= 0 or state.tempo <= 0:
        raise ValueError("beats per bar and tempo must be positive")
    beat = math.ceil(state.beat_at(after) / beats_per_bar - 1e-9) * beats_per_bar
    return state.at + (beat - state.beat) * 60.0 / state.tempo, beat


class LinkSession:
    """A Link peer (enabled at once) with a tempo to start from; `close` leaves the session."""

    def __init__(self, bpm: float = 120.0, quantum: float = 4.0) -> None:
        try:
            import aalink
        except ImportError as err:
            raise LinkUnavailable("aalink is not installed (pip install 'jenbridge[link]')") \
                from err
        self._aalink = aalink
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._link: Any = None
        self._thread = threading.Thread(target=self._run, args=(bpm, quantum),
                                        name="jenbridge-link", daemon=True)
        self._thread.start()
        if not self._ready.wait(10.0) or self._link is None:
            raise LinkUnavailable(f"Ableton Link did not start: {self._error}")

    def _run(self, bpm: float, quantum: float) -> None:
        asyncio.set_event_loop(self._loop)

        async def join() -> Any:  # aalink wants a running loop when a Link is made
            link = self._aalink.Link(float(bpm))
            link.quantum = float(quantum)
            link.enabled = True
            return link

        try:
            self._link = self._loop.run_until_complete(join())
        except Exception as err:  # report to the constructor, end the thread
            self._error = err
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()

    def _call(self, fn: Any) -> Any:
        async def run() -> Any:
            return fn(self._link)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(5.0)

    def state(self) -> LinkState:
        """A snapshot: tempo, beat and peers, its time on Python's monotonic clock."""
        def snap(link: Any) -> LinkState:
            a = time.monotonic()
            beat, tempo = float(link.beat), float(link.tempo)  # Link's "now"
            b = time.monotonic()  # that "now" lies between a and b on our clock (~µs apart)
            return LinkState(tempo, beat, (a + b) / 2, int(link.num_peers),
                             float(link.quantum))

        return self._call(snap)

    def set_tempo(self, bpm: float) -> None:
        def put(link: Any) -> None:
            link.tempo = float(bpm)

        self._call(put)

    def close(self) -> None:
        if self._link is not None:
            with contextlib.suppress(Exception):  # leaving is best effort at shutdown
                self._call(lambda link: setattr(link, "enabled", False))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(2.0)
