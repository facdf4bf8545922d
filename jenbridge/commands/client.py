"""`jenbridge client`: send one request to a running daemon and wait for its final reply.

  jenbridge client generate prompt "dusty boom bap" seconds 8 start 90.25
  jenbridge client inpaint --id fill-1 path ~/Music/bounce.wav start 12 end 13.5 prompt "fill"
  jenbridge client cancel --id fill-1
  jenbridge client --request job.jbreq --result job.result       (what the REAPER scripts run)

The small out-of-process client a DAW script starts when its own language has no UDP socket
(REAPER's Lua): it sends `/jb/<task> ID KEY VALUE...` from its own socket (so the replies
come back to it), prints progress on stderr, and ends with the final reply: `/jb/done` prints
the output path on stdout and exits 0; `/jb/error` prints `code: message` on stderr and exits
1; no answer at all (no daemon) or no final reply before `--timeout` exits 3. Interrupted
(SIGINT, SIGTERM) while a job runs, it sends `/jb/cancel ID` first.

Command-line values are typed by key (KEY_TAGS: positions as doubles, counts as int32, seeds
as int64, paths and prompts as strings; an unknown key's value is typed by its look). A request
file (`--request`) gives the exact OSC message instead, so a script decides every type tag:

    # any comment
    /jb/inpaint              <- the address (first line that is not blank or a comment)
    s fill-1                 <- one argument a line: TAG, one space, VALUE
    s start
    d 12.5                   <- s string, i int32, h int64, f float32, d float64

Values are percent-encoded for `%` and control characters (`%0A` is a newline), so any
string fits on one line. `--result FILE` keeps a small `key=value` file up to date (same
encoding; written atomically): `state` is `sending`, `running` (with `progress`, `stage`,
`queue`) and finally `done` or `error`, with the final reply's fields by name (REPLY_FIELDS:
`path`, `position`, `duration`, ... or `code`, `message`). A script polls that one file.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import signal
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# task name -> (address, final reply addresses besides /jb/error). Jobs end in /jb/done.
TASKS: dict[str, tuple[str, tuple[str, ...]]] = {
    **{t: (f"/jb/{t}", ("/jb/done",)) for t in ("generate", "inpaint", "continue", "extend",
                                                   "vary")},
    "run": ("/jb/run", ("/jb/done", "/jb/loop/started")),  # a preset's own task
    "loop/start": ("/jb/loop/start", ("/jb/loop/started",)),
    "loop/update": ("/jb/loop/update", ("/jb/loop/updated",)),
    "loop/stop": ("/jb/loop/stop", ("/jb/loop/stopped",)),
    "cancel": ("/jb/cancel", ("/jb/cancel",)),
    "stop": ("/jb/stop", ("/jb/stopped",)),
    "play": ("/jb/play", ("/jb/playing",)),
    "hello": ("/jb/hello", ("/jb/hello",)),
    "ping": ("/jb/ping", ("/jb/pong",)),
    "status": ("/jb/status", ("/jb/status",)),
}
JOB_ADDRESSES = {f"/jb/{t}" for t in ("generate", "inpaint", "continue", "extend", "vary",
                                       "run")}
# the final replies' arguments after the id, by name (docs/osc.md)
REPLY_FIELDS: dict[str, tuple[str, ...]] = {
    "/jb/done": ("path", "position", "position_sec", "position_offset", "duration",
                 "sample_rate", "seed", "stretch"),
    "/jb/error": ("code", "message"),
    "/jb/loop/started": ("start_sec", "start_offset", "frames", "sample_rate", "link_beat",
                         "link_time"),
    "/jb/loop/stopped": ("queued", "made", "repeats", "failures", "late", "ends_in"),
    "/jb/cancel": ("outcome",),
    "/jb/playing": ("start_sec", "start_offset", "frames", "sample_rate", "delay_samples"),
    "/jb/hello": ("version", "model", "sample_rate", "providers"),
}
_POSITIONS = ("start", "end", "file_at", "at")
KEY_TAGS: dict[str, str] = {
    **dict.fromkeys(("prompt", "sampler", "path", "out_dir", "mode"), "s"),
    **dict.fromkeys(_POSITIONS, "d"),
    **{f"{p}_samples": "h" for p in _POSITIONS},
    **{f"{p}_sec": "i" for p in _POSITIONS},
    **{f"{p}_offset": "i" for p in _POSITIONS},
    **dict.fromkeys(("seconds", "bars", "bpm", "guidance", "strength", "crossfade"), "d"),
    **dict.fromkeys(("steps", "sample_rate", "reply_port", "channels", "iterations", "write",
                     "now", "at_next_bar"), "i"),
    "seed": "h", "origin_samples": "h",
}
TAGS = "sihfd"
EXIT_ERROR, EXIT_NO_ANSWER = 1, 3
_ESCAPE = re.compile(r"[%\x00-\x1f\x7f]")


def encode(value: str) -> str:
    """Percent-encode `%` and control characters: any string on one line."""
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", value)


def decode(text: str) -> str:
    return re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), text)


def typed(tag: str, text: str, what: str) -> Any:
    """The Python value python-osc sends for `tag` (s i h f d) from its text."""
    try:
        if tag == "s":
            return text
        if tag in "ih":
            value = int(text)
            limit = 2**31 if tag == "i" else 2**63
            if not -limit <= value < limit:
                raise ValueError(f"{value} does not fit an OSC '{tag}'")
            return value
        if tag in "fd":
            return float(text)
    except ValueError as err:
        raise ValueError(f"{what}: {err}") from None
    raise ValueError(f"{what}: unknown OSC type tag {tag!r} (use one of {TAGS})")


def infer_tag(key: str, text: str) -> str:
    """The type tag of a command-line value: by its key (KEY_TAGS), else by its look."""
    if key in ("key", "meter"):  # "C minor" / "7/8" or a number
        return "i" if re.fullmatch(r"-?\d+", text) else "s"
    if key in KEY_TAGS:
        return KEY_TAGS[key]
    if re.fullmatch(r"-?\d+", text):
        return "i" if -(2**31) <= int(text) < 2**31 else "h"
    try:
        float(text)
    except ValueError:
        return "s"
    return "d"


def parse_request(text: str, source: str = "request") -> tuple[str, list[tuple[str, Any]]]:
    """A request file -> (address, [(tag, value)...]); ValueError names the bad line."""
    address = ""
    args: list[tuple[str, Any]] = []
    for n, raw in enumerate(text.splitlines(), 1):
        line = raw.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not address:
            if not line.startswith("/"):
                raise ValueError(f"{source}:{n}: the first line must be an OSC address, "
                                 f"got {line[:60]!r}")
            address = line.strip()
            continue
        tag, sep, value = line.partition(" ")
        if not sep or len(tag) != 1:
            raise ValueError(f"{source}:{n}: expected 'TAG VALUE', got {line[:60]!r}")
        args.append((tag, typed(tag, decode(value), f"{source}:{n}")))
    if not address:
        raise ValueError(f"{source}: no OSC address")
    return address, args


def format_request(address: str, args: list[tuple[str, Any]]) -> str:
    """The request file text for (address, [(tag, value)...]) (parse_request's inverse)."""
    lines = [address]
    for tag, value in args:
        text = repr(float(value)) if tag in "fd" else str(value)
        lines.append(f"{tag} {encode(text)}")
    return "\n".join(lines) + "\n"


def pairs_to_args(job_id: str, words: list[str]) -> list[tuple[str, Any]]:
    """`--id ID` + command-line KEY VALUE words -> typed OSC arguments."""
    if len(words) % 2:
        raise ValueError(f"expected KEY VALUE pairs, got an odd number of words: {words}")
    args: list[tuple[str, Any]] = [("s", job_id)]
    for key, text in zip(words[0::2], words[1::2], strict=True):
        tag = infer_tag(key, text)
        args += [("s", key), (tag, typed(tag, text, key))]
    return args


@dataclass
class Reply:
    """The final reply of a request (address "" when none came)."""

    address: str = ""
    args: list[Any] = field(default_factory=list)
    replies: list[tuple[str, list[Any]]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.address) and self.address != "/jb/error"

    def fields(self) -> dict[str, Any]:
        """The reply's arguments after the id, by name (REPLY_FIELDS), else arg1, arg2..."""
        names = REPLY_FIELDS.get(self.address, ())
        rest = self.args[1:]
        out = {names[i] if i < len(names) else f"arg{i + 1}": v for i, v in enumerate(rest)}
        if self.address == "/jb/loop/started":  # the first iteration's file (/jb/loop/next)
            nxt = [a for addr, a in self.replies if addr == "/jb/loop/next" and a[1:2] == [0]]
            if nxt:
                out["path"] = nxt[0][2]
        for addr, a in self.replies:  # several takes: /jb/take ID index count path seed
            if addr == "/jb/take" and len(a) >= 5:
                out["takes"] = a[2]
                out[f"take_{a[1]}"], out[f"take_{a[1]}_seed"] = a[3], a[4]
        return out


class ResultFile:
    """The `key=value` file a polling script reads; replaced atomically on every write."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.last = 0.0

    def write(self, values: dict[str, Any], throttle: float = 0.0) -> None:
        if self.path is None:
            return
        now = time.monotonic()
        if throttle and now - self.last < throttle:
            return
        self.last = now
        text = "".join(f"{k}={encode(_text(v))}\n" for k, v in values.items())
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)


def _text(value: Any) -> str:
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else str(value)
    return str(value)


class Interrupted(Exception):
    """SIGINT or SIGTERM while waiting."""


def send_request(address: str, args: list[tuple[str, Any]], host: str = "127.0.0.1",
                 port: int = 9000, timeout: float = 1800.0, answer_timeout: float = 5.0,
                 on_reply: Any = None, sock: socket.socket | None = None) -> Reply:
    """Send one OSC message and read replies to its id until the final one.

    args: [(tag, value)...], the job id first (queries without an id: none). `on_reply(address,
    args)` sees every reply to this id. Returns a Reply whose address is "" when the daemon
    did not answer within `answer_timeout` s or sent no final reply within `timeout` s.
    Raises Interrupted (after sending /jb/cancel ID for a job) on SIGINT/SIGTERM.
    """
    from pythonosc.osc_message_builder import OscMessageBuilder
    from pythonosc.osc_packet import OscPacket, ParseError

    jid = args[0][1] if args and args[0][0] == "s" else ""
    finals = dict(TASKS.values()).get(address, ())
    own = sock is None
    if sock is None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("", 0))
    to = (host, port)
    msg = OscMessageBuilder(address)
    for tag, value in args:
        msg.add_arg(value, tag)
    reply = Reply()
    try:
        sock.sendto(msg.build().dgram, to)
        start = time.monotonic()
        answered = False
        while True:
            limit = (timeout if answered else min(answer_timeout, timeout)) \
                - (time.monotonic() - start)
            if limit <= 0:
                return reply
            sock.settimeout(min(limit, 0.25))
            try:
                data, _ = sock.recvfrom(65536)
            except TimeoutError:
                continue
            except ConnectionError:  # ICMP port unreachable (Windows): nobody listening yet
                continue
            try:
                messages = [m.message for m in OscPacket(data).messages]
            except ParseError:
                continue
            for m in messages:
                params = list(m.params)
                mine = params[:1] == [jid] or (m.address == "/jb/error" and params[:1] == [""])
                if not mine:
                    continue
                answered = True
                reply.replies.append((m.address, params))
                if on_reply is not None:
                    on_reply(m.address, params)
                if m.address == "/jb/error" or m.address in finals or (
                        not finals and m.address not in ("/jb/accepted", "/jb/progress",
                                                         "/jb/loop/next", "/jb/take")):
                    reply.address, reply.args = m.address, params
                    return reply
    except (Interrupted, KeyboardInterrupt):
        if address in JOB_ADDRESSES and jid:
            cancel = OscMessageBuilder("/jb/cancel")
            cancel.add_arg(jid, "s")
            sock.sendto(cancel.build().dgram, to)
        raise
    finally:
        if own:
            sock.close()


# ---- the command ---------------------------------------------------------------------------

def _options(p: argparse.ArgumentParser, defaults: bool = True) -> None:
    d = (lambda v: v) if defaults else (lambda v: argparse.SUPPRESS)
    p.add_argument("--id", dest="job_id", metavar="ID", default=d(None),
                   help="job id (default: TASK-<time>-<pid>); cancel, loop/stop: the job's id")
    p.add_argument("--request", type=Path, metavar="FILE", default=d(None),
                   help="send the exact OSC message in FILE (address, then 'TAG VALUE' lines)")
    p.add_argument("--result", type=Path, metavar="FILE", default=d(None),
                   help="keep a key=value status file up to date (state, progress, path, ...)")
    p.add_argument("--host", default=d("127.0.0.1"), help="daemon address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=d(9000), help="daemon UDP port (default 9000)")
    p.add_argument("--timeout", type=float, default=d(1800.0), metavar="S",
                   help="seconds to wait for the final reply (default 1800)")
    p.add_argument("--answer-timeout", type=float, default=d(5.0), metavar="S",
                   help="seconds to wait for the daemon's first answer (default 5)")
    p.add_argument("-q", "--quiet", action="store_true", default=d(False),
                   help="no progress on stderr")


def add_arguments(p: argparse.ArgumentParser) -> None:
    _options(p)
    # everything from TASK on, options included: re-parsed in `build` with options and
    # KEY VALUE words intermixed (`jenbridge client cancel --id X` as well as `--id X cancel`)
    p.add_argument("words", nargs=argparse.REMAINDER, metavar="TASK [KEY VALUE ...]",
                   help="one of: " + ", ".join(TASKS) + "; then request keys and values "
                   "(docs/osc.md), e.g. generate prompt 'lo-fi' seconds 8 (or give --request)")


def _words(args: argparse.Namespace) -> None:
    """Parse args.words (options and KEY VALUE words intermixed) into args.task, args.pairs."""
    p = argparse.ArgumentParser(prog="jenbridge client", add_help=False)
    _options(p, defaults=False)
    p.add_argument("task", nargs="?")
    p.add_argument("pairs", nargs="*")
    words = list(args.words or [])
    if words[:1] == ["--"]:
        words = words[1:]
    try:
        p.parse_intermixed_args(words, namespace=args)
    except SystemExit:
        raise ValueError(f"could not read the arguments {words}") from None


def build(args: argparse.Namespace) -> tuple[str, list[tuple[str, Any]]]:
    """(address, typed args) from --request FILE, or from TASK [--id ID] KEY VALUE..."""
    if not hasattr(args, "task"):
        _words(args)
    if args.request is not None:
        if args.task or args.pairs:
            raise ValueError("give either --request FILE or TASK KEY VALUE..., not both")
        return parse_request(args.request.read_text(encoding="utf-8"), str(args.request))
    if not args.task:
        raise ValueError("name a TASK (" + ", ".join(TASKS) + ") or give --request FILE")
    if args.task not in TASKS:
        raise ValueError(f"unknown task {args.task!r} (one of: {', '.join(TASKS)})")
    address = TASKS[args.task][0]
    if args.task in ("cancel", "loop/stop", "loop/update") and not args.job_id:
        raise ValueError(f"{args.task} needs --id (the job or loop to act on)")
    jid = args.job_id or f"{args.task.replace('/', '-')}-{int(time.time())}-{os.getpid()}"
    return address, pairs_to_args(jid, list(args.pairs))


def run(args: argparse.Namespace) -> int:
    address, osc_args = build(args)
    jid = osc_args[0][1] if osc_args and osc_args[0][0] == "s" else ""
    result = ResultFile(args.result)
    base = {"id": jid, "address": address}
    result.write({**base, "state": "sending"})
    state: dict[str, Any] = {"state": "running", "progress": 0.0, "stage": "queued",
                             "queue": -1}

    def say(text: str) -> None:
        if not args.quiet:
            print(f"jenbridge client: {jid}: {text}", file=sys.stderr, flush=True)

    def on_reply(addr: str, params: list[Any]) -> None:
        if addr == "/jb/accepted":
            state["queue"] = params[1] if len(params) > 1 else 0
            say(f"accepted (queue position {state['queue']})")
        elif addr == "/jb/progress" and len(params) >= 3:
            state["progress"], state["stage"] = float(params[1]), str(params[2])
            say(f"{100 * state['progress']:3.0f}% {state['stage']}")
        elif addr == "/jb/take" and len(params) >= 4:
            say(f"take {params[1] + 1}/{params[2]}: {params[3]}")
        elif addr == "/jb/loop/next" and len(params) >= 3:
            say(f"loop iteration {params[1]}: {params[2] or '(not written)'}")
        result.write({**base, **state}, throttle=0.0 if addr != "/jb/progress" else 0.1)

    def interrupt(signum: int, _frame: Any) -> None:
        raise Interrupted(signal.Signals(signum).name)

    old = signal.signal(signal.SIGTERM, interrupt)
    try:
        reply = send_request(address, [(t, v) for t, v in osc_args], args.host, args.port,
                             args.timeout, args.answer_timeout, on_reply)
    except (Interrupted, KeyboardInterrupt) as err:
        result.write({**base, "state": "error", "code": "interrupted",
                      "message": f"the client was interrupted ({err or 'SIGINT'}); the job "
                                 "was cancelled"})
        say("interrupted: cancel sent")
        return 130
    except OSError as err:  # no route, bad host name
        result.write({**base, "state": "error", "code": "no_answer",
                      "message": f"could not send to {args.host}:{args.port}: {err}"})
        print(f"jenbridge client: could not send to {args.host}:{args.port}: {err}",
              file=sys.stderr)
        return EXIT_NO_ANSWER
    finally:
        signal.signal(signal.SIGTERM, old)
    if not reply.address:
        waited = "no final reply" if reply.replies else "no answer"
        message = (f"{waited} from the daemon at {args.host}:{args.port} "
                   + ("(is `jenbridge serve` running on that port?)" if not reply.replies
                      else f"within {args.timeout:g} s"))
        result.write({**base, "state": "error", "code": "no_answer", "message": message})
        print(f"jenbridge client: {message}", file=sys.stderr)
        return EXIT_NO_ANSWER
    values = reply.fields()
    if not reply.ok:
        result.write({**base, "state": "error", **values})
        print(f"jenbridge client: {jid}: {values.get('code')}: {values.get('message')}",
              file=sys.stderr)
        return EXIT_ERROR
    result.write({**base, "state": "done", "reply": reply.address, "progress": 1.0, **values})
    if values.get("path"):
        print(values["path"])
    else:
        print(" ".join([reply.address, *(_text(v) for v in reply.args)]))
    return 0
