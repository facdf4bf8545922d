"""Out-of-process hosting: one worker process per plugin, so a plugin that crashes or hangs
costs its job an error (PluginError) and never the process that called it.

The parent side of the protocol documented in `plugin_host.worker`: small pickled requests on
a pipe, audio through a shared file mapping, and every wait bounded by the item's
`timeout_s` (a worker that does not answer in time is killed).
"""

from __future__ import annotations

import contextlib
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import weakref
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO, Any

import numpy as np

from plugin_host.errors import ChainError, PluginError

MIN_CAPACITY = 8192  # frames per direction in the shared file; grows on demand
MAX_RUN_FRAMES = 65536  # a longer run is sent in pieces, each with its own timeout
CLOSE_TIMEOUT_S = 2.0
# Starting Python and importing numpy + pedalboard is not the plugin's time: on a loaded
# machine it can take seconds, so it gets its own, generous limit before `timeout_s` applies.
STARTUP_TIMEOUT_S = 60.0
PACKAGE_ROOT = str(Path(__file__).resolve().parent.parent)


def _exit_reason(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        try:
            return f"killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


def _stop(proc: subprocess.Popen[bytes], *handles: Any) -> None:
    """Kill the worker if it still runs and release everything (also run by weakref.finalize
    when a Worker is dropped unclosed)."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for handle in handles:
        with contextlib.suppress(OSError, BufferError):
            handle.close()


class Worker:
    """A worker process hosting one plugin (or an isolated built-in effect).

    `payload` is `PluginItem.payload()` / `EffectItem.payload()`; the worker streams it in
    `block`-frame calls. After construction, `latency` is what it withholds when streamed
    (a plugin's reported latency, or effects.streaming_latency) and `info` holds what the
    worker reported (name, parameters). Raises ChainError when the plugin refuses
    its payload (unknown parameter, instrument, wrong channel count), PluginError when the
    worker crashes or hangs.
    """

    def __init__(
        self,
        payload: dict[str, Any],
        sample_rate: float,
        channels: int,
        block: int,
        timeout_s: float,
        where: str,
    ) -> None:
        self.where = where
        self.timeout_s = timeout_s
        self.channels = channels
        self._dead: str | None = None
        self._capacity = 0
        self._map: mmap.mmap | None = None
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # RAM-backed on Linux
        self._fd, path = tempfile.mkstemp(prefix="jenbridge-plugin-", dir=shm)
        try:
            self._start(path)
            self._receive("starting", STARTUP_TIMEOUT_S)  # the worker's "ready"
            self._grow(MIN_CAPACITY)
            self.info: dict[str, Any] = self._call(
                ("open", payload, sample_rate, channels, block), "loading"
            )
        except BaseException:
            self.close()
            raise
        finally:
            os.unlink(path)  # both sides hold it open; nothing is left on disk
        self.latency: int = int(self.info["latency"])

    def _start(self, path: str) -> None:
        # The worker's stdout + stderr, read back for error messages; closed with the worker.
        self._log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115
        to_child, to_parent = os.pipe(), os.pipe()
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [PACKAGE_ROOT, env.get("PYTHONPATH")]))
        try:
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "plugin_host.worker", str(to_child[0]),
                 str(to_parent[1]), path],
                pass_fds=(to_child[0], to_parent[1]),
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=self._log,
                env=env,
                start_new_session=True,  # a Ctrl-C meant for the daemon is not the worker's
            )
        except BaseException:
            os.close(to_child[1])
            os.close(to_parent[0])
            raise
        finally:
            os.close(to_child[0])
            os.close(to_parent[1])
        self._tx = Connection(to_child[1], readable=False)
        self._rx = Connection(to_parent[0], writable=False)
        self._finalizer = weakref.finalize(
            self, _stop, self._proc, self._tx, self._rx, self._log
        )

    # -- protocol ---------------------------------------------------------------------------

    def _log_tail(self, lines: int = 6) -> str:
        try:
            self._log.seek(0, os.SEEK_END)
            size = self._log.tell()
            self._log.seek(max(0, size - 4000))
            text = self._log.read().decode("utf-8", "replace")
        except (OSError, ValueError):
            return ""
        tail = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
        return f"; its last output: {' | '.join(tail)}" if tail else ""

    def _fail(self, reason: str) -> PluginError:
        """Kill the worker, remember why, and build the error to raise."""
        log = self._log_tail()
        self._dead = reason
        _stop(self._proc)
        return PluginError(f"{self.where}: {reason}{log}")

    def _call(self, request: tuple[Any, ...], doing: str) -> Any:
        if self._dead is not None:
            raise PluginError(f"{self.where}: the plugin process is gone ({self._dead})")
        with contextlib.suppress(OSError):  # a broken pipe: _receive reports how it ended
            self._tx.send(request)
        return self._receive(doing, self.timeout_s)

    def _receive(self, doing: str, timeout: float) -> Any:
        try:
            answered = self._rx.poll(timeout)
        except OSError:
            answered = True
        if not answered:
            raise self._fail(
                f"the plugin process did not answer within {timeout:g} s while "
                f"{doing}; it was killed"
            )
        try:
            status, value = self._rx.recv()
        except (EOFError, OSError):
            try:
                code = self._proc.wait(timeout=CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                code = None
            raise self._fail(
                f"the plugin process crashed while {doing} ({_exit_reason(code)})"
            ) from None
        if status == "ok":
            return value
        message = value if value.startswith(self.where) else f"{self.where}: {value}"
        if status == "invalid":
            raise ChainError(message)
        raise PluginError(message)

    def _grow(self, frames: int) -> None:
        """Make the shared file hold `frames` per direction (the worker remaps when a request
        names a new capacity)."""
        if frames <= self._capacity:
            return
        capacity = max(frames, 2 * self._capacity, MIN_CAPACITY)
        if self._map is not None:
            self._map.close()
        os.ftruncate(self._fd, 2 * self.channels * capacity * 4)
        self._map = mmap.mmap(self._fd, 2 * self.channels * capacity * 4)
        self._capacity = capacity

    def _exchange(self, op: str, x: np.ndarray, doing: str, block: int | None = None) -> np.ndarray:
        frames = x.shape[1]
        self._grow(frames)
        assert self._map is not None
        both = np.frombuffer(self._map, np.float32).reshape(2, self.channels, self._capacity)
        both[0, :, :frames] = x
        done = self._call((op, frames, self._capacity, block), doing)
        out = both[1, :, :done].copy()
        del both  # no view may outlive the mapping (it is closed when it grows)
        return out

    # -- engine interface (see stream.Engine) -------------------------------------------------

    def run(self, x: np.ndarray, block: int | None) -> np.ndarray:
        """process(reset=False) in `block`-frame calls (None: one call) in the worker:
        (C, n) -> (C, m <= n). Sent in requests of at most MAX_RUN_FRAMES, each with its
        own timeout (whole blocks when `block` is set)."""
        step = MAX_RUN_FRAMES // block * block if block else MAX_RUN_FRAMES
        outs = [
            self._exchange("run", x[:, start : start + step], "processing", block)
            for start in range(0, x.shape[1], step)
        ]
        if not outs:
            return np.zeros((self.channels, 0), np.float32)
        return outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)

    def render(self, x: np.ndarray) -> np.ndarray:
        """process(reset=True) of a whole buffer: (C, n) -> (C, n), latency compensated."""
        return self._exchange("render", x, "rendering")

    def reset(self) -> None:
        self._call(("reset",), "resetting")

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not. Idempotent."""
        if not hasattr(self, "_finalizer"):  # it never started
            os.close(self._fd)
            self._fd = -1
            return
        if self._dead is None and self._proc.poll() is None:
            try:
                self._tx.send(("close",))
                self._proc.wait(timeout=CLOSE_TIMEOUT_S)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self._dead = self._dead or "closed"
        if self._map is not None:
            self._map.close()
            self._map = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        self._finalizer()

    @property
    def alive(self) -> bool:
        return self._dead is None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        return self._proc.pid
