"""The OSC/UDP server: receive, dispatch by address, validate, queue, reply.

One thread receives datagrams (up to 65,507 bytes: the largest UDP payload over IPv4, far past
python-osc's default 8,192-byte `max_packet_size`, above which its servers drop datagrams
silently) and parses them with python-osc's packet parser; bundles are unpacked and every
message in them is handled. Handlers are plain functions `handler(server, args, sender)`
registered in ADDRESSES; each answers its request with exactly one final reply, from this
socket (so a client replying to the source address, like Pd's `[netsend -u -b]`, hears it):

  the declared reply port: a request's `reply_port` pair, else the config's reply_port,
  on the sender's host; otherwise the sender's own address. Never more than one endpoint.

Reply arguments are `i`, `f` and `s` only (Pd's [oscparse] drops a whole message that holds one
`d` or `h`): 64-bit quantities (seeds, exact positions) travel as strings or as two `i`.
Job replies come from the worker thread through `report` and `progress`.
"""

from __future__ import annotations

import functools
import logging
import math
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from jenbridge import __version__
from jenbridge.daemon import playback, protocol
from jenbridge.daemon.config import Allowed, DaemonConfig
from jenbridge.daemon.jobs import Job, JobFailed, JobQueue
from jenbridge.daemon.outputs import Metadata, write_output
from jenbridge.daemon.protocol import Context, RequestError
from jenbridge.daemon.tasks import TASK_CALLS, describe_result, finish_audio

log = logging.getLogger("jenbridge.daemon")
MAX_DATAGRAM = 65507
PROGRESS_INTERVAL = 0.05  # seconds between /jb/progress replies of one job
MAX_STATUS_ROWS = 200  # keeps a /jb/status reply far below one datagram

Handler = Callable[["Server", list[Any], tuple[str, int]], None]


class Server:
    """The daemon: a bound UDP socket, the engine, the job queue and the address table."""

    def __init__(self, engine: Any, config: DaemonConfig, bundle: Path) -> None:
        self.engine = engine
        self.config = config
        self.bundle = bundle
        self.model_name = str(engine.manifest.name)
        self.output_dir = Path(config.output_dir).expanduser().resolve()
        self.output_dir.mkdir(parents=True, exist_ok=True)
        self.allowed = Allowed((*config.allow, self.output_dir))
        from jenbridge.presets import PresetLibrary

        self.presets = PresetLibrary(config.presets_dirs)
        self.context = Context(config, self.allowed, engine.manifest.sampler, self.presets)
        self.stopping = False
        self.engine_lock = threading.Lock()  # one engine call at a time: jobs and live loops
        self.loops: dict[str, playback.LoopState] = {}
        self.audio = playback.Audio(config)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.bind((config.host, config.port))
        self.sock.settimeout(0.1)
        self.address = self.sock.getsockname()
        self.queue = JobQueue(config.queue_size, self.run_job, self.report)

    # ---- receiving ------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Handle datagrams until `request_stop`; then stop the queue and close the socket."""
        from jenbridge.music.estimate import warm_up

        threading.Thread(target=warm_up, name="estimator-warm-up", daemon=True).start()
        try:
            while not self.stopping:
                try:
                    data, sender = self.sock.recvfrom(MAX_DATAGRAM + 1)
                except TimeoutError:
                    continue
                except OSError:
                    if self.stopping:
                        break
                    raise
                self.handle_datagram(data, sender)
        finally:
            for state in list(self.loops.values()):
                playback.finish_loop(self, state, now=True)
            self.queue.stop()
            self.audio.close()
            self.sock.close()

    def request_stop(self) -> None:
        """Safe from a signal handler: set flags only (no locks)."""
        self.stopping = True
        running = self.queue.running
        if running is not None:
            running.cancel.set()

    def handle_datagram(self, data: bytes, sender: tuple[str, int]) -> None:
        try:
            messages = [m.message for m in OscPacket(data).messages]
        except ParseError as err:
            self.send(self.endpoint(sender, None), "/jb/error",
                      ("", "malformed", f"not an OSC packet: {err}"[:300]))
            return
        for msg in messages:
            self.handle_message(msg.address, list(msg.params), sender)

    def handle_message(self, address: str, args: list[Any], sender: tuple[str, int]) -> None:
        """Dispatch one message; every failure becomes one /jb/error reply."""
        log.debug("%s %s from %s", address, args[:8], sender)
        handler = ADDRESSES.get(address)
        try:
            if handler is None:
                raise RequestError("unknown_address", f"unknown address {address[:100]!r}")
            handler(self, args, sender)
        except RequestError as err:
            jid = args[0] if args and isinstance(args[0], str) else ""
            self.send(self.endpoint(sender, declared_reply_port(args)), "/jb/error",
                      (jid[:64], err.code, str(err)[:1000]))
        except Exception as err:  # a bug must not stop the server: answer and log it
            log.exception("handling %s failed", address)
            self.send(self.endpoint(sender, None), "/jb/error",
                      ("", "internal", f"{type(err).__name__}: {err}"[:300]))

    # ---- replying -------------------------------------------------------------------------

    def endpoint(self, sender: tuple[str, int], reply_port: int | None) -> tuple[str, int]:
        """Where replies go: the declared port on the sender's host, else the sender."""
        port = reply_port or self.config.reply_port or sender[1]
        return sender[0], port

    def send(self, to: tuple[str, int], address: str, args: tuple[Any, ...]) -> None:
        """One OSC message with `i`, `f` and `s` arguments only."""
        builder = OscMessageBuilder(address)
        for value in args:
            if isinstance(value, int):  # bools too: T/F become 1/0
                builder.add_arg(int(value), "i")
            elif isinstance(value, float):
                builder.add_arg(value, "f")
            else:
                builder.add_arg(str(value), "s")
        try:
            self.sock.sendto(builder.build().dgram, to)
        except OSError as err:  # client gone, port closed: nothing more to do
            log.warning("reply %s to %s failed: %s", address, to, err)

    def report(self, job: Job, kind: str, args: tuple[Any, ...]) -> None:
        """The final reply of a job: /jb/done or /jb/error."""
        log.info("job %s %s %s", job.job_id, kind, args[:2])
        self.send(job.reply_to, f"/jb/{kind}", (job.job_id, *args))

    # ---- running a job (worker thread) ------------------------------------------------------

    def run_job(self, job: Job) -> tuple[Any, ...]:
        """Run one job on the engine and write its WAV; the /jb/done arguments after the id."""
        from jenbridge.data.audio import AudioError, read_audio
        from jenbridge.engine import Cancelled

        req = job.request
        last = [0.0]

        def progress(fraction: float, stage: str) -> None:
            job.progress, job.stage = float(fraction), stage
            now = time.monotonic()
            if now - last[0] >= PROGRESS_INTERVAL:
                last[0] = now
                self.send(job.reply_to, "/jb/progress", (job.job_id, float(fraction), stage))

        def cancelled() -> JobFailed:
            if self.stopping:
                return JobFailed("shutting_down", "the daemon is stopping")
            return JobFailed("cancelled", "cancelled while running")

        def should_stop() -> bool:  # polled before every sampler step
            return job.cancel.is_set() or self.stopping

        if should_stop():  # a job the worker picked up after SIGTERM, before the queue closed
            raise cancelled()
        progress(0.0, "start")
        sr, takes = req.sample_rate, len(req.seeds)
        src = None
        if req.task != "generate":
            assert req.path is not None  # protocol validation requires a path for these
            try:
                src, _ = read_audio(req.path, sample_rate=sr)
            except AudioError as err:
                raise JobFailed("bad_audio", str(err)) from None
        done: tuple[Any, ...] = ()
        for k, seed in enumerate(req.seeds):
            def take_progress(fraction: float, stage: str, k: int = k) -> None:
                progress((k + fraction) / takes, stage)

            opts = dict(req.sampling, seed=seed, progress=take_progress, should_stop=should_stop)
            try:
                with self.engine_lock:
                    audio, result = TASK_CALLS[req.task](self.engine, req, src, opts)
            except Cancelled:
                raise cancelled() from None
            except ValueError as err:
                raise JobFailed("bad_request", str(err)) from None
            if should_stop():
                raise cancelled()
            job.stage = "writing"
            audio = finish_audio(req, audio, src)
            meta = Metadata(req.position, req.prompt, req.task, result.seed, self.model_name,
                            req.job_id, f"jenbridge {__version__}",
                            describe_result(req, result, k))
            try:
                path = write_output(req.out_dir or self.output_dir, req.job_id, req.task, audio,
                                    sr, req.wav_format or self.config.wav_format, meta)
            except OSError as err:
                raise JobFailed("write_failed", f"could not write the output: {err}") from None
            if takes > 1:
                self.send(job.reply_to, "/jb/take", (job.job_id, k, takes, str(path),
                                                     str(result.seed)))
            if k == 0:
                sec, offset = divmod(req.position, sr)
                lock = result.grid_lock
                stretch = float(lock.stretch_ratio) if lock is not None and lock.applied else 1.0
                done = (str(path), repr(req.position / sr), sec, offset, audio.shape[1] / sr, sr,
                        str(result.seed), stretch)
                if self.config.play_results and self.audio.player is not None:
                    self.play_result(job, audio, sr, path)
        self.send(job.reply_to, "/jb/progress", (job.job_id, 1.0, "done"))
        job.progress = 1.0
        return done

    def play_result(self, job: Job, audio: Any, sr: int, path: Path) -> None:
        """play_results: queue the job's audio at once; /jb/playing before /jb/done."""
        from jenbridge.data.audio import read_audio

        player = self.audio.player
        try:
            if sr != player.sample_rate:  # the written file, resampled to the stream's rate
                audio, _ = read_audio(path, sample_rate=player.sample_rate)
            start, delay = self.audio.play_now(audio)
        except Exception as err:  # playback must never fail the job: the file is written
            log.warning("job %s: could not play the result: %s", job.job_id, err)
            return
        sec, offset = divmod(start, player.sample_rate)
        self.send(job.reply_to, "/jb/playing", (job.job_id, sec, offset, audio.shape[1],
                                                player.sample_rate, delay))


# ---- handlers ---------------------------------------------------------------------------------

def declared_reply_port(args: list[Any]) -> int | None:
    """A `reply_port N` pair anywhere in args, if well formed (used for error replies too)."""
    for i in range(len(args) - 1):
        if args[i] == "reply_port":
            port = args[i + 1]
            if isinstance(port, float) and math.isfinite(port) and port.is_integer():
                port = int(port)
            if isinstance(port, int) and not isinstance(port, bool) and 1 <= port <= 65535:
                return port
    return None


def _query(args: list[Any]) -> tuple[str, dict[str, Any]]:
    """Queries take `[ID] [reply_port N]`: an odd count means the first argument is the id."""
    if len(args) % 2:
        jid = protocol.job_id(args)
        kv = protocol.pairs(args, ("reply_port",))
    else:
        jid = ""
        kv = protocol.pairs(["", *args], ("reply_port",))
    if "reply_port" in kv:
        kv["reply_port"] = protocol.whole(kv["reply_port"], "reply_port", 1, 65535)
    return jid, kv


def _answer(server: Server, args: list[Any], sender: tuple[str, int], address: str,
            values: tuple[Any, ...]) -> None:
    jid, kv = _query(args)
    server.send(server.endpoint(sender, kv.get("reply_port")), address, (jid, *values))


def hello(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/hello -> /jb/hello ID version model sample_rate providers."""
    _answer(server, args, sender, "/jb/hello",
            (__version__, server.model_name, int(server.engine.sample_rate),
             ",".join(server.engine.providers)))


def ping(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/ping -> /jb/pong ID."""
    _answer(server, args, sender, "/jb/pong", ())


def status(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/status -> /jb/status ID count [job state progress]... underruns position (the
    output stream's underrun count and its clock in samples as a decimal string; -1, "-1"
    without audio). Two trailing values keep count == (len(args) - 2) // 3."""
    rows = server.queue.status()[:MAX_STATUS_ROWS]
    flat: list[Any] = [len(rows)]
    for jid, state, frac in rows:
        flat += [jid, state, float(frac)]
    underruns, _xruns, pos = server.audio.counters()
    flat += [underruns, str(pos)]
    _answer(server, args, sender, "/jb/status", tuple(flat))


def list_models(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/list/models -> /jb/models ID count name... (the bundle this daemon serves)."""
    _answer(server, args, sender, "/jb/models", (1, server.model_name))


def list_presets(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/list/presets -> /jb/presets ID count name... (every preset file found, by name)."""
    names = server.presets.names()[:MAX_STATUS_ROWS]
    _answer(server, args, sender, "/jb/presets", (len(names), *names))


def preset_info(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/preset/info ID name NAME -> /jb/preset ID name task description prompt variables
    (variables as "a=1;b=2"), or /jb/error ID not_found|bad_request (a broken file)."""
    jid = protocol.job_id(args)
    kv = protocol.pairs(args, ("name", "reply_port"))
    if "name" not in kv:
        raise RequestError("bad_request", "/jb/preset/info needs 'name'")
    port = protocol.whole(kv["reply_port"], "reply_port", 1, 65535) if "reply_port" in kv \
        else None
    p = protocol.find_preset(server.context, kv["name"])
    variables = ";".join(f"{k}={v}" for k, v in p.variables.items())
    server.send(server.endpoint(sender, port), "/jb/preset",
                (jid, p.name, p.task, p.description[:500], p.prompt[:1000], variables[:1000]))


def run_preset(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/run ID preset NAME [KEY VALUE]...: the preset's own task (a job, or a live loop)."""
    protocol.job_id(args)
    names = [v for k, v in zip(args[1::2], args[2::2]) if k == "preset"]
    if len(names) != 1:
        raise RequestError("bad_request", "/jb/run needs exactly one 'preset NAME' pair")
    preset = protocol.find_preset(server.context, names[0])
    if preset.task == "loop":
        playback.loop_start(server, args, sender)
    else:
        job(preset.task, server, args, sender)


def cancel(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/cancel JOB -> /jb/cancel JOB cancelled|stopping, or /jb/error JOB not_found."""
    jid = protocol.job_id(args)
    kv = protocol.pairs(args, ("reply_port",))
    port = protocol.whole(kv["reply_port"], "reply_port", 1, 65535) if kv else None
    to = server.endpoint(sender, port)
    if server.queue.cancel(jid, lambda outcome: server.send(to, "/jb/cancel", (jid, outcome))) \
            is None:
        raise RequestError("not_found", f"no queued or running job {jid!r}")


def job(task: str, server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/<task> ID [KEY VALUE]... -> /jb/accepted ID position, later /jb/done or /jb/error."""
    req = protocol.validate(task, args, server.context)
    if server.stopping:
        raise RequestError("shutting_down", "the daemon is stopping")
    if server.queue.find(req.job_id) is not None:
        raise RequestError("duplicate_job", f"job {req.job_id!r} is already queued or running")
    item = Job(req, server.endpoint(sender, req.reply_port))

    def accepted(position: int) -> None:  # called before the worker can report anything
        log.info("job %s (%s) accepted at queue position %d", req.job_id, task, position)
        server.send(item.reply_to, "/jb/accepted", (req.job_id, position))

    if server.queue.submit(item, accepted) is None:
        raise RequestError("busy", f"the queue is full ({server.config.queue_size} waiting); "
                           "try again later")


ADDRESSES: dict[str, Handler] = {
    "/jb/hello": hello,
    "/jb/ping": ping,
    "/jb/status": status,
    "/jb/cancel": cancel,
    "/jb/list/models": list_models,
    "/jb/list/presets": list_presets,
    "/jb/preset/info": preset_info,
    "/jb/run": run_preset,
    **{f"/jb/{t}": functools.partial(job, t) for t in protocol.TASKS},
    **playback.ADDRESSES,
}
