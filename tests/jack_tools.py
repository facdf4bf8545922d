"""Shared helpers for the tests that play through a real headless JACK server: start a private
dummy server, record output ports with jack_capture, align a recording to a reference."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 48000
PERIOD = 256
HAVE_JACK = all(shutil.which(tool) for tool in ("jackd", "jack_capture", "jack_lsp"))


@contextmanager
def jack_server(prefix: str) -> Iterator[str]:
    """A private dummy JACK server (JACK_DEFAULT_SERVER set for this process and children).

    -S (synchronous): the dummy driver waits for late clients instead of dropping their cycle,
    so a busy CPU slows the server down rather than corrupting the recording.
    """
    name = f"{prefix}-{os.getpid()}"
    saved = {k: os.environ.get(k) for k in ("JACK_DEFAULT_SERVER", "JACK_NO_START_SERVER")}
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-S", "-d", "dummy",
                             "-r", str(SR), "-p", str(PERIOD)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while subprocess.run(["jack_lsp"], capture_output=True).returncode != 0:
            assert proc.poll() is None and time.monotonic() < deadline, "jackd did not start"
            time.sleep(0.1)
        yield name
    finally:
        proc.terminate()
        proc.wait(10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class Recorder:
    """jack_capture on the two output ports of our PortAudio client, writing a float32 WAV."""

    def __init__(self, path: Path) -> None:
        ports = [p for p in subprocess.run(["jack_lsp"], capture_output=True, text=True)
                 .stdout.split() if ":out_" in p and not p.startswith("system:")]
        assert len(ports) == 2, ports
        args = ["jack_capture", "--daemon", "-c", "2", "-b", "FLOAT"]
        for port in ports:
            args += ["-p", port]
        self.path = path
        self.proc = subprocess.Popen([*args, str(path)], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 5
        while not (path.exists() and path.stat().st_size > 4096):
            assert self.proc.poll() is None and time.monotonic() < deadline, "no jack_capture"
            time.sleep(0.02)

    def stop(self) -> np.ndarray:
        """Stop recording; return the recording (2, frames)."""
        self.proc.terminate()
        self.proc.wait(10)
        return sf.read(self.path, dtype="float32", always_2d=True)[0].T

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def align(rec: np.ndarray, ref: np.ndarray) -> int:
    """Index in ``rec`` (C, M) where ``ref`` (C, N) starts, by FFT cross-correlation."""
    n = 1 << int(np.ceil(np.log2(rec.shape[1] + ref.shape[1])))
    xc = np.fft.irfft(np.fft.rfft(rec.sum(0), n) * np.conj(np.fft.rfft(ref.sum(0), n)), n)
    return int(np.argmax(xc[: rec.shape[1]]))
