"""A live loop that keeps evolving in tempo: iteration k plays while iteration k+1 is made.

Iteration ``k`` (0 = ``first_loop``) starts at exactly ``start + k * N`` samples of the player's
clock, where ``N = first_loop.shape[1]`` is the loop length in frames. Iterations are butted
together with no gap, no overlap and **no crossfade**: continuity across the boundary is the
content's (the engine continues the previous loop), and any seamless loop repeats seamlessly.

A worker thread calls ``next_loop(k, previous)`` (``previous``: the (C, N) iteration it follows)
as soon as iteration ``k-1`` is queued. The loop thread queues the result at the boundary once it
is ready, but no later than ``margin_s`` before the boundary must be buffered; if it is not ready
by then, the current iteration is queued again (``status()["repeats"]`` counts it) and the
result, once ready, takes the following boundary. Silence never happens because of a slow model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from jenbridge.audio_out.player import Player, bar_length

NextLoop = Callable[[int, np.ndarray], np.ndarray]


class LiveLoop:
    """Keep ``first_loop`` (C, N) float32 playing on ``player``, replaced iteration by iteration.

    ``bars`` bars of ``meter`` at ``bpm`` must last N frames (within one frame). The loop starts
    at ``start_sample`` or, if ``None``, at the next bar line of the grid through
    ``origin_sample``. ``next_loop(k, previous)`` must return a (C, N) array; another length or an
    exception is counted in ``status()["failures"]`` and the current iteration repeats.
    """

    def __init__(self, player: Player, first_loop: np.ndarray, bpm: float, bars: int,
                 meter: str | tuple[int, int], next_loop: NextLoop,
                 start_sample: int | None = None, origin_sample: int = 0,
                 margin_s: float = 0.25) -> None:
        self.player = player
        self._current = np.asarray(first_loop, dtype=np.float32)
        self.length = self._current.shape[-1]
        expected = bars * bar_length(bpm, meter, player.sample_rate)
        if abs(expected - self.length) > 1:
            raise ValueError(f"{bars} bars of {meter} at {bpm} bpm are {expected:.1f} frames, "
                             f"but first_loop has {self.length}")
        self._next_loop = next_loop
        self._margin = int(margin_s * player.sample_rate)
        self._cv = threading.Condition()
        self._stopped = False
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="jenbridge-next-loop")
        if start_sample is None:
            self.start_sample = player.schedule_at_next_bar(self._current, bpm, meter,
                                                            origin_sample)
        else:
            self.start_sample = player.play(self._current, start_sample)
        self._queued = 1  # iterations queued so far (including repeats)
        self._made = 0  # next_loop results queued
        self._repeats = 0
        self._failures = 0
        self._late = 0
        self._pending = self._request(1)
        self._thread = threading.Thread(target=self._run, name="jenbridge-live-loop", daemon=True)
        self._thread.start()

    def _request(self, k: int) -> Future:
        fn, previous = self._next_loop, self._current
        future = self._pool.submit(fn, k, previous)
        future.add_done_callback(lambda _f: self._notify())
        return future

    def _notify(self) -> None:
        with self._cv:
            self._cv.notify_all()

    def _result(self, future: Future) -> np.ndarray | None:
        """The finished iteration, or ``None`` (counted) if it failed or has the wrong shape."""
        try:
            audio = np.asarray(future.result(), dtype=np.float32)
        except Exception:
            self._failures += 1
            return None
        if audio.shape[-1] != self.length or audio.ndim not in (1, 2):
            self._failures += 1
            return None
        return audio

    def _ready(self, boundary: int) -> bool:
        """Queue now? Yes once the result is ready and the iteration before ``boundary`` has
        started (one iteration ahead at most), or when the deadline has come."""
        if boundary - self._margin - self.player.earliest_start() <= 0:
            return True
        return self._pending.done() and self.player.position >= boundary - self.length

    def _run(self) -> None:
        while True:
            boundary = self.start_sample + self._queued * self.length
            with self._cv:
                while not self._stopped and not self._ready(boundary):
                    self._cv.wait(0.02 if self._pending.done() else 0.05)
                if self._stopped:
                    return
            done = self._pending.done()
            audio = self._result(self._pending) if done else None
            if audio is not None:
                self._current = audio
                self._made += 1
            elif not done:
                self._repeats += 1
            if self.player.play(self._current, boundary, trim_late=True) != boundary:
                self._late += 1  # the process stalled past the deadline: joined mid-iteration
            self._queued += 1
            if done:
                self._pending = self._request(self._made + 1)

    def update(self, next_loop: NextLoop) -> None:
        """Use ``next_loop`` (e.g. a closure over a new prompt or parameters) for the iterations
        not yet requested; the one being made now still comes from the previous callable."""
        self._next_loop = next_loop

    def status(self) -> dict:
        """``start_sample``, ``length`` (frames), ``queued`` iterations (0 = first_loop),
        ``made`` (from next_loop), ``repeats`` (not ready in time), ``failures`` (next_loop
        raised or returned the wrong length), ``late`` (queued after its boundary was already
        buffered: the iteration joined mid-way), ``next_boundary`` (sample)."""
        return {"start_sample": self.start_sample, "length": self.length,
                "queued": self._queued, "made": self._made, "repeats": self._repeats,
                "failures": self._failures, "late": self._late,
                "next_boundary": self.start_sample + self._queued * self.length}

    def stop(self, fade: bool = True) -> None:
        """Stop making iterations; with ``fade``, also stop the player (short fade, no click)."""
        with self._cv:
            self._stopped = True
            self._cv.notify_all()
        self._thread.join()
        self._pool.shutdown(wait=False, cancel_futures=True)
        if fade:
            self.player.stop()
