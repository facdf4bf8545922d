"""The OSC daemon end to end: a real `jenbridge serve` process on loopback, driven by
python-osc and by liblo's `oscsend` / `oscdump`, on the random-weight tiny bundle."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket
from test_daemon_outputs import bext_fields, info_fields, parse_wav

from jenbridge.cli import COMMANDS
from jenbridge.config import ConfigError
from jenbridge.daemon.config import load_daemon_config

ROOT = Path(__file__).resolve().parent.parent
SR = 44100  # the test clips' rate: not the model's, so resampling is exercised
FINAL = ("/jb/done", "/jb/error")
# `python -m jenbridge serve` once cli.COMMANDS has its row; until then the same entry point
# with the row added in-process
SHIM = ("import sys; from jenbridge.cli import COMMANDS, main; COMMANDS['serve'] = "
        "('run the OSC daemon', 'jenbridge.commands.serve'); sys.exit(main(sys.argv[1:]))")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    """A python-osc client with its own loopback socket: replies come back to it."""

    def __init__(self, port: int) -> None:
        self.to = ("127.0.0.1", port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.log: list[tuple[str, list[Any]]] = []
        self.taken: set[int] = set()  # indices of `log` that `wait` returned

    def send(self, address: str, *args: Any, types: str | None = None) -> None:
        """Send with explicit OSC tags (`types`), or python-osc's defaults (s, i, f)."""
        b = OscMessageBuilder(address)
        for i, v in enumerate(args):
            b.add_arg(v, types[i] if types else None)
        self.sock.sendto(b.build().dgram, self.to)

    def recv(self, timeout: float) -> tuple[str, list[Any]] | None:
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            return None
        msg = OscPacket(data).messages[0].message
        self.log.append((msg.address, list(msg.params)))
        return self.log[-1]

    def wait(self, addresses: tuple[str, ...], jid: str,
             timeout: float = 30.0) -> tuple[str, list[Any]]:
        """The first reply not returned before to one of `addresses` whose first argument is
        `jid`: from `log` (replies read while waiting for others), else read on."""
        end = time.monotonic() + timeout
        i = 0
        while time.monotonic() < end:
            if i == len(self.log) and self.recv(end - time.monotonic()) is None:
                break
            msg = self.log[i]
            if i not in self.taken and msg[0] in addresses and msg[1][:1] == [jid]:
                self.taken.add(i)
                return msg
            i += 1
        raise AssertionError(f"no {addresses} for {jid}; got {self.log[-5:]}")

    def final(self, jid: str, timeout: float = 30.0) -> tuple[str, list[Any]]:
        """Read until the final reply (/jb/done or /jb/error) of job `jid`."""
        return self.wait(FINAL, jid, timeout)

    def ask(self, address: str, *args: Any, types: str | None = None,
            timeout: float = 10.0) -> tuple[str, list[Any]]:
        """Send and return the next reply."""
        self.send(address, *args, types=types)
        msg = self.recv(timeout)
        assert msg is not None, f"no reply to {address}"
        return msg

    def close(self) -> None:
        self.sock.close()


class Daemon:
    """A `jenbridge serve` subprocess; `stop` ends it (SIGTERM, then SIGKILL)."""

    def __init__(self, bundle: Path, tmp: Path, *extra: str) -> None:
        self.port = free_port()
        self.music, self.out = tmp / "music", tmp / "out"
        self.music.mkdir(parents=True, exist_ok=True)
        self.out.mkdir(parents=True, exist_ok=True)
        args = ["serve", "--model", str(bundle), "--port", str(self.port), "--output-dir",
                str(self.out), "--allow", str(self.music), "--threads", "1", *extra]
        head = ["-m", "jenbridge"] if "serve" in COMMANDS else ["-c", SHIM]
        env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
        self.log = tmp / "daemon.log"
        with self.log.open("w") as f:
            self.proc = subprocess.Popen([sys.executable, *head, *args], cwd=ROOT, env=env,
                                         stdout=f, stderr=subprocess.STDOUT)
        probe = Client(self.port)
        try:
            for _ in range(300):  # up to 30 s for imports and session creation
                if self.proc.poll() is not None:
                    raise RuntimeError(f"daemon exited: {self.log.read_text()}")
                probe.send("/jb/ping", "up")
                if probe.recv(0.1):
                    return
            raise RuntimeError(f"daemon did not answer: {self.log.read_text()}")
        finally:
            probe.close()

    def client(self) -> Client:
        return Client(self.port)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def daemon(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    d = Daemon(tiny_bundle, tmp_path_factory.mktemp("daemon"))
    yield d
    d.stop()


def write_clip(folder: Path, name: str, seconds: float = 1.0) -> Path:
    t = np.arange(round(seconds * SR)) / SR
    audio = 0.3 * np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)])
    path = folder / name
    sf.write(str(path), audio.T.astype(np.float32), SR)
    return path


def check_done(msg: tuple[str, list[Any]], sr: int, frames: int, position: int) -> Path:
    """A /jb/done reply and its file: rate, length, bext time reference = position."""
    address, (_jid, path, pos_text, sec, offset, seconds, rate, seed, stretch) = msg
    assert address == "/jb/done", msg
    assert isinstance(stretch, float) and 0.5 < stretch < 2.0  # the grid lock's (1.0: none)
    assert (rate, sec * rate + offset) == (sr, position)
    assert float(pos_text) == position / sr and int(seed) >= 0
    assert math.isclose(seconds, frames / sr, rel_tol=1e-6)
    info = sf.info(path)
    assert (info.samplerate, info.frames, info.subtype) == (sr, frames, "FLOAT")
    chunks = parse_wav(Path(path))
    assert bext_fields(chunks)["time_reference"] == position
    assert f"seed={seed}" in info_fields(chunks)["ICMT"]
    return Path(path)


# ---- replies without a model job ------------------------------------------------------------

def test_hello_ping_lists(client: Client) -> None:
    addr, args = client.ask("/jb/hello", "h1")
    assert addr == "/jb/hello" and args[0] == "h1" and args[2] == "tiny" and args[3] == 48000
    assert "CPUExecutionProvider" in args[4]
    assert client.ask("/jb/ping", "p1") == ("/jb/pong", ["p1"])
    assert client.ask("/jb/list/models") == ("/jb/models", ["", 1, "tiny"])
    from jenbridge.presets import PresetLibrary

    names = PresetLibrary(user=False).names()
    assert len(names) >= 12
    assert client.ask("/jb/list/presets", "x") == ("/jb/presets", ["x", len(names), *names])


# ---- every job type -------------------------------------------------------------------------

JOBS = {  # task -> (extra args, types, expected frames at SR, expected position in samples)
    "generate": (["seconds", 0.5, "sample_rate", SR, "start", 12.5],
                 "sfsisd", round(0.5 * SR), round(12.5 * SR)),
    "inpaint": (["start_sec", 100, "start_offset", 7, "end", 100.6, "file_at", 99.9],
                "sisisdsd", SR, 99 * SR + round(0.9 * SR)),
    "continue": (["bars", 1, "bpm", 240.0, "meter", 4, "start_samples", 2**31 + 5],
                 "sisfsish", SR, 2**31 + 5),  # past int32: h
    "extend": (["seconds", 0.25, "end", 3.0], "sfsd", round(0.25 * SR), round(2.75 * SR)),
    "vary": (["strength", 0.6, "start", 1.0], "sfsd", SR, SR),
}


@pytest.mark.parametrize("task", list(JOBS))
def test_job(daemon: Daemon, client: Client, task: str) -> None:
    extra, types, frames, position = JOBS[task]
    args: list[Any] = [f"{task}-1", "prompt", "lo-fi piano", "seed", 7, "steps", 2]
    head = "ssssisi"
    if task != "generate":
        args += ["path", str(write_clip(daemon.music, f"{task}.wav"))]
        head += "ss"
    client.send(f"/jb/{task}", *args, *extra, types=head + types)
    done = client.final(f"{task}-1")
    kinds = [a for a, _ in client.log]
    assert kinds[0] == "/jb/accepted" and "/jb/progress" in kinds and kinds[-1] == "/jb/done"
    path = check_done(done, SR, frames, position)
    assert path.name == f"{task}-1_{task}_1.wav" and done[1][7] == "7"


# ---- queue: cancel, status, overload -------------------------------------------------------

LONG = ["prompt", "long", "seconds", 20.0, "steps", 1000]


def test_cancel_queued_and_running_and_status(client: Client) -> None:
    client.send("/jb/generate", "long-1", *LONG)
    client.send("/jb/generate", "wait-1", "seconds", 0.5)
    assert client.wait(("/jb/accepted",), "long-1") == ("/jb/accepted", ["long-1", 0])
    assert client.wait(("/jb/accepted",), "wait-1") == ("/jb/accepted", ["wait-1", 1])
    client.wait(("/jb/progress",), "long-1")
    client.send("/jb/status", "s1")
    addr, args = client.wait(("/jb/status",), "s1")
    assert args[0] == "s1" and args[1] == (len(args) - 2) // 3 >= 2  # live jobs first
    assert args[2:4] == ["long-1", "running"] and args[5:7] == ["wait-1", "queued"]
    client.send("/jb/cancel", "wait-1")
    assert client.final("wait-1")[1][1] == "cancelled"
    assert ("/jb/cancel", ["wait-1", "cancelled"]) in client.log
    t0 = time.monotonic()
    client.send("/jb/cancel", "long-1")
    assert client.final("long-1")[1][1] == "cancelled"
    assert time.monotonic() - t0 < 3.0  # within a sampler step (plus slack for 2 busy cores)
    assert ("/jb/cancel", ["long-1", "stopping"]) in client.log
    addr, args = client.ask("/jb/cancel", "long-1")
    assert (addr, args[:2]) == ("/jb/error", ["long-1", "not_found"])


def test_overload_busy_and_one_final_reply_each(tiny_bundle: Path, tmp_path: Path) -> None:
    d = Daemon(tiny_bundle, tmp_path, "--queue-size", "1")
    c = d.client()
    try:
        c.send("/jb/generate", "long", *LONG)
        c.wait(("/jb/progress",), "long")  # running: the queue (size 1) is empty
        ids = [f"f{i}" for i in range(8)]
        for jid in ids:
            c.send("/jb/generate", jid, "seconds", 0.5, "steps", 3)
        finals = {jid: c.final(jid) for jid in ids[1:]}  # busy, at once
        c.send("/jb/cancel", "long")
        finals[ids[0]] = c.final(ids[0])
        finals["long"] = c.final("long")
        while c.recv(0.5):  # anything late would be a second final reply
            pass
        for jid in finals:
            assert sum(1 for a, p in c.log if a in FINAL and p[0] == jid) == 1, jid
        codes = [finals[j][1][1] if finals[j][0] == "/jb/error" else "done" for j in ids]
        assert codes == ["done"] + ["busy"] * 7, codes
        assert finals["long"][1][1] == "cancelled"
        busy = next(finals[j] for j in ids if codes[ids.index(j)] == "busy")
        assert "queue is full" in busy[1][2]
        addr, args = c.ask("/jb/generate", "after", "seconds", 0.5, "steps", 2)
        assert (addr, args) == ("/jb/accepted", ["after", 0])
        assert c.final("after")[0] == "/jb/done"
    finally:
        c.close()
        d.stop()


# ---- hostile and malformed requests -------------------------------------------------------

def test_hostile_messages_get_errors_and_daemon_keeps_serving(daemon: Daemon,
                                                              client: Client) -> None:
    music = daemon.music
    clip = write_clip(music, "ok.wav")
    (music / "notes.txt").write_text("not audio")
    outside = daemon.music.parent / "outside.wav"
    write_clip(daemon.music.parent, "outside.wav")
    link = music / "escape.wav"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    nan, inf = float("nan"), float("inf")
    cases: list[tuple[str, list[Any], str | None, str]] = [
        ("/jb/nope", ["x"], None, "unknown_address"),
        ("/jb/generate", [], None, "bad_request"),  # no job id
        ("/jb/generate", ["e1"], None, "bad_request"),  # no length
        ("/jb/generate", ["e2", "seconds"], None, "bad_request"),  # odd pairs
        ("/jb/generate", ["e3", "seconds", "ten"], None, "bad_request"),
        ("/jb/generate", ["e4", "sekonds", 1.0], None, "bad_request"),
        ("/jb/generate", ["e5", "seconds", 1e9], "ssd", "out_of_range"),
        ("/jb/generate", ["e6", "seconds", nan], "ssf", "bad_request"),
        ("/jb/generate", ["e7", "seconds", 1.0, "bpm", inf], "ssfsd", "bad_request"),
        ("/jb/generate", ["e8", "seconds", -1], None, "out_of_range"),
        ("/jb/generate", ["e9", "seconds", 1.0, "steps", 2.5], None, "bad_request"),
        ("/jb/generate", ["e10", "seconds", 1.0, "start", 1.0, "start_samples", 5], None,
         "bad_request"),
        ("/jb/generate", ["e11", "bars", 4], None, "bad_request"),  # bars without bpm
        ("/jb/generate", ["e12", "seconds", 1.0, "start_sec", 1, "start_offset", SR * 9],
         None, "out_of_range"),
        ("/jb/inpaint", ["e13", "path", str(clip)], None, "bad_request"),  # no region
        ("/jb/inpaint", ["e14", "path", str(clip), "start", 0.5, "end", 9.0], None,
         "out_of_range"),
        ("/jb/vary", ["e15", "path", "/etc/hostname", "strength", 0.5], None, "forbidden"),
        ("/jb/vary", ["e16", "path", f"{music}/../outside.wav", "strength", 0.5], None,
         "forbidden"),
        ("/jb/vary", ["e17", "path", str(link), "strength", 0.5], None, "forbidden"),
        ("/jb/vary", ["e18", "path", "ok.wav", "strength", 0.5], None, "forbidden"),
        ("/jb/vary", ["e19", "path", str(music / "notes.txt"), "strength", 0.5], None,
         "bad_audio"),
        ("/jb/vary", ["e20", "path", str(music / "missing.wav"), "strength", 0.5], None,
         "not_found"),
        ("/jb/vary", ["e21", "path", str(clip), "strength", 1.5], None, "out_of_range"),
        ("/jb/generate", ["e22", "prompt", "x" * 64000, "seconds", 1.0], None, "out_of_range"),
        ("/jb/cancel", ["nobody"], None, "not_found"),
        ("/jb/status", ["s", "reply_port"], None, "bad_request"),
    ]
    for address, args, types, code in cases:
        reply = client.ask(address, *args, types=types)
        assert reply[0] == "/jb/error" and reply[1][1] == code, (address, args[:3], reply)
        assert len(reply[1]) == 3 and reply[1][2], reply
    client.sock.sendto(b"\x00garbage, not OSC", client.to)
    reply = client.recv(5)
    assert reply is not None and reply[0] == "/jb/error" and reply[1][1] == "malformed"
    big = OscMessageBuilder("/jb/generate")
    for v in ["big", "prompt", "y" * 65000, "seconds", 1.0]:
        big.add_arg(v)
    assert len(big.build().dgram) > 65000  # a ~64 kB datagram: received whole, refused
    client.sock.sendto(big.build().dgram, client.to)
    assert client.recv(5)[1][:2] == ["big", "out_of_range"]
    client.send("/jb/vary", "ok", "path", str(clip), "strength", 0.5, "steps", 2)
    check_done(client.final("ok"), SR, SR, 0)


# ---- liblo's oscsend / oscdump ------------------------------------------------------------

@pytest.mark.skipif(shutil.which("oscsend") is None or shutil.which("oscdump") is None,
                    reason="liblo-tools (oscsend, oscdump) not installed")
def test_oscsend_oscdump_transcript(daemon: Daemon, tmp_path: Path) -> None:
    port = free_port()
    dump = tmp_path / "dump.txt"
    with dump.open("w") as f:
        proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=f,
                                stderr=subprocess.STDOUT)
    try:
        time.sleep(0.3)
        cmd = ["oscsend", "localhost", str(daemon.port), "/jb/generate", "ssssfsisisd",
               "take-1", "prompt", "dusty boom bap", "seconds", "0.5", "reply_port", str(port),
               "steps", "2", "start", "90.25"]
        subprocess.run(cmd, check=True, timeout=10)
        end = time.monotonic() + 30
        while "/jb/done" not in dump.read_text() and time.monotonic() < end:
            time.sleep(0.1)
    finally:
        proc.terminate()
        proc.wait(5)
    lines = [ln.split(" ", 1)[-1] for ln in dump.read_text().splitlines() if "/jb/" in ln]
    print("\n$ " + " ".join(cmd) + "\n" + "\n".join(lines))
    kinds = [ln.split()[0] for ln in lines]
    assert kinds[0] == "/jb/accepted" and "/jb/progress" in kinds and kinds[-1] == "/jb/done"
    assert kinds.count("/jb/done") == 1
    assert lines[0].split()[1:] == ["si", '"take-1"', "0"]
    assert lines[-1].split()[1] == "sssiifisf"  # i f s only: Pd can read every reply


# ---- shutdown -----------------------------------------------------------------------------

def test_sigterm_during_a_job_exits_clean(tiny_bundle: Path, tmp_path: Path) -> None:
    d = Daemon(tiny_bundle, tmp_path)
    c = d.client()
    try:
        c.send("/jb/generate", "long", *LONG)
        c.send("/jb/generate", "queued", "seconds", 1.0)
        c.wait(("/jb/progress",), "long")
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(10) == 0
        assert time.monotonic() - t0 < 5.0
        assert c.final("long")[1][1:2] == ["shutting_down"]
        assert c.final("queued")[1][1:2] == ["shutting_down"]
        assert list(d.out.iterdir()) == []  # no output, no temporary file
        assert "stopped" in d.log.read_text()
    finally:
        c.close()
        d.stop()


# ---- config ---------------------------------------------------------------------------------

def test_config_strict(tmp_path: Path) -> None:
    path = tmp_path / "daemon.yaml"
    path.write_text("port: 9100\nwav_format: pcm24\nallow: [/tmp]\nreply_port: 9101\n")
    cfg = load_daemon_config(path, {"port": 9200})
    assert (cfg.port, cfg.wav_format, cfg.allow, cfg.reply_port) == \
        (9200, "pcm24", (Path("/tmp"),), 9101)
    path.write_text("port: 9100\nqueue_lenght: 3\n")
    with pytest.raises(ConfigError, match="queue_lenght: unknown key"):
        load_daemon_config(path)
    path.write_text("port: nine\n")
    with pytest.raises(ConfigError, match="port"):
        load_daemon_config(path)
