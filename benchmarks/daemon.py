"""The OSC daemon's live audio: latency, underruns, and how fast it acknowledges under a flood.

Starts a private headless JACK dummy server (jackd --no-realtime -S -d dummy, 48 kHz, 256
frames) and a real `jenbridge serve` process playing on it (play_results on), then measures:

- latency: /jb/continue of 2 bars at 120 BPM (4 s) from a 2 s clip, sent -> first sample out:
  (time until /jb/playing arrives) + (its delay_samples: how far past the stream clock the
  result was queued) / rate. The median of --runs, at each --grooves value (groove g runs
  round((1 - g) * steps) of the sampler's steps: the rest is the looped bar it starts from);
- underruns: a live loop (mode continue, 1 s loops) plays while generate jobs run on the same
  engine; the stream's underrun counter (/jb/status) before and after (target 0);
- acks/s: while one long job runs, --flood /jb/generate requests are sent as fast as possible;
  replies that acknowledge them (/jb/accepted or /jb/error busy) per second.

  python benchmarks/daemon.py [--bundle DIR] [--runs 5] [--flood 2000] [--steps 4]
                              [--grooves 0,0.7]

Without --bundle, a tiny random-weight bundle is exported once into a temporary folder
(`python -m onnx_export --random tiny`, ~30 s).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

ROOT = Path(__file__).resolve().parent.parent
SR = 48000


class Client:
    def __init__(self, port: int) -> None:
        self.to = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        self.sock.bind(("127.0.0.1", 0))

    def send(self, address: str, *args: Any) -> None:
        b = OscMessageBuilder(address)
        for v in args:
            b.add_arg(v)
        self.sock.sendto(b.build().dgram, self.to)

    def recv(self, timeout: float) -> tuple[str, list[Any]] | None:
        self.sock.settimeout(timeout)
        try:
            msg = OscPacket(self.sock.recv(65536)).messages[0].message
        except TimeoutError:
            return None
        return msg.address, list(msg.params)

    def wait(self, addresses: tuple[str, ...], jid: str, timeout: float = 60.0) -> list[Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.recv(end - time.monotonic())
            if m and m[0] in addresses and m[1][:1] == [jid]:
                return [m[0], *m[1]]
            if m and m[0] == "/jb/error" and m[1][:1] == [jid]:
                raise RuntimeError(f"{jid}: {m}")
        raise TimeoutError(f"no {addresses} for {jid}")

    def status(self) -> list[Any]:
        self.send("/jb/status", "st")
        return self.wait(("/jb/status",), "st")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_jack(name: str) -> subprocess.Popen:
    os.environ.update(JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    proc = subprocess.Popen(["jackd", "-n", name, "--no-realtime", "-S", "-d", "dummy", "-r",
                             str(SR), "-p", "256"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while subprocess.run(["jack_lsp"], capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("jackd did not start")
        time.sleep(0.1)
    return proc


def start_daemon(bundle: Path, tmp: Path, threads: int) -> tuple[subprocess.Popen, int]:
    port = free_port()
    (tmp / "music").mkdir(exist_ok=True)
    cfg = tmp / "daemon.yaml"
    cfg.write_text("audio_device: system\naudio_hostapi: JACK\nplay_results: true\n"
                   "queue_size: 8\n")
    log = (tmp / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "jenbridge", "serve", "--model", str(bundle),
                             "--port", str(port), "--output-dir", str(tmp / "out"), "--allow",
                             str(tmp / "music"), "--threads", str(threads), "--config",
                             str(cfg)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    probe = Client(port)
    for _ in range(600):
        if proc.poll() is not None:
            raise RuntimeError((tmp / "daemon.log").read_text())
        probe.send("/jb/ping", "up")
        if probe.recv(0.1):
            return proc, port
    raise RuntimeError("the daemon did not answer")


def bench_latency(c: Client, clip: Path, runs: int, steps: int, groove: float) -> list[float]:
    out = []
    for i in range(runs):
        jid = f"lat{i}-{groove:g}"
        t0 = time.perf_counter()
        c.send("/jb/continue", jid, "path", str(clip), "bars", 2, "bpm", 120, "steps", steps,
               "groove", float(groove))
        m = c.wait(("/jb/playing",), jid)
        t1 = time.perf_counter()
        out.append(t1 - t0 + m[6] / m[5])
        c.wait(("/jb/done",), jid)
        c.send("/jb/stop", f"stop{jid}")
        c.wait(("/jb/stopped",), f"stop{jid}")
    return out


def bench_underruns(c: Client, steps: int, seconds: float) -> tuple[int, int, int]:
    """(underruns during, loop iterations made, loop repeats)."""
    before = c.status()[-2]
    c.send("/jb/loop/start", "ul", "bpm", 240, "bars", 1, "prompt", "loop", "steps", steps)
    c.wait(("/jb/loop/started",), "ul")
    end, k = time.monotonic() + seconds, 0
    while time.monotonic() < end:
        c.send("/jb/generate", f"ug{k}", "seconds", 4.0, "steps", steps)
        c.wait(("/jb/done",), f"ug{k}")
        k += 1
    c.send("/jb/loop/stop", "ul", "now", 1)
    stopped = c.wait(("/jb/loop/stopped",), "ul")
    after = c.status()[-2]
    return after - before, stopped[3], stopped[4]


def bench_flood(c: Client, n: int, steps: int) -> tuple[float, int, int]:
    """(acknowledgements per second, accepted, busy) while one long job runs."""
    c.send("/jb/generate", "flood-long", "seconds", 60.0, "steps", steps)
    c.wait(("/jb/accepted",), "flood-long")
    acked = busy = 0
    t0 = time.perf_counter()
    for i in range(n):
        c.send("/jb/generate", f"f{i}", "seconds", 0.1, "steps", 1)
    end = time.monotonic() + 30
    while acked + busy < n and time.monotonic() < end:
        m = c.recv(1.0)
        if m is None:
            continue
        if m[0] == "/jb/accepted" and m[1][0].startswith("f"):
            acked += 1
        elif m[0] == "/jb/error" and m[1][1] == "busy":
            busy += 1
    dt = time.perf_counter() - t0
    for jid in ["flood-long", *(f"f{i}" for i in range(n))]:
        c.send("/jb/cancel", jid)
    return (acked + busy) / dt, acked, busy


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bundle", type=Path, help="model bundle (default: a tiny random one)")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--flood", type=int, default=2000)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--grooves", default="0,0.7",
                    help="continuation grooves the latency is measured at (default 0,0.7)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--underrun-seconds", type=float, default=8.0)
    args = ap.parse_args()
    if not all(shutil.which(t) for t in ("jackd", "jack_lsp")):
        print("jackd2 is needed (a dummy JACK server is the output device)")
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="jb-bench-daemon-"))
    bundle = args.bundle
    if bundle is None:
        bundle = tmp / "tiny"
        subprocess.run([sys.executable, "-m", "onnx_export", "--random", "tiny", "--out",
                        str(bundle)], cwd=ROOT, check=True, capture_output=True)
    jack = start_jack(f"jb-bench-{os.getpid()}")
    daemon = None
    try:
        daemon, port = start_daemon(bundle, tmp, args.threads)
        c = Client(port)
        t = np.arange(2 * SR) / SR
        clip = tmp / "music" / "clip.wav"
        sf.write(clip, (0.3 * np.sin(2 * np.pi * 220 * t))[:, None].repeat(2, 1), SR)
        grooves = [float(g) for g in args.grooves.split(",")]
        lat = {g: bench_latency(c, clip, args.runs, args.steps, g) for g in grooves}
        under, made, repeats = bench_underruns(c, args.steps, args.underrun_seconds)
        rate, acc, busy = bench_flood(c, args.flood, args.steps)
    finally:
        if daemon is not None:
            daemon.terminate()
            daemon.wait(30)
        jack.terminate()
        jack.wait(10)
    rows = [
        ("bundle", str(args.bundle or "tiny (random weights)")),
        *((f"latency: /jb/continue 2 bars @120 BPM, groove {g:g} -> first sample out "
           f"(median of {args.runs})",
           f"{1000 * statistics.median(v):.0f} ms (min {1000 * min(v):.0f}, "
           f"max {1000 * max(v):.0f})") for g, v in lat.items()),
        (f"underruns while looping + generating ({args.underrun_seconds:g} s)",
         f"{under} (target 0; loop iterations made {made}, repeats {repeats})"),
        (f"acks/s under a flood of {args.flood} while one job runs",
         f"{rate:.0f} /s ({acc} accepted, {busy} busy)"),
    ]
    w = max(len(a) for a, _ in rows)
    print(f"{'measure':<{w}}  result")
    print("-" * (w + 40))
    for a, b in rows:
        print(f"{a:<{w}}  {b}")
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
