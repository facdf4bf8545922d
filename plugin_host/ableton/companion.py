"""The Ableton Live companion: Live's loop brace -> the jenbridge daemon -> a clip in Live.

  python -m plugin_host.ableton.companion generate --prompt "dusty boom bap"
  python -m plugin_host.ableton.companion continue --source ~/Music/jb/loop.wav --bars 4
  python -m plugin_host.ableton.companion inpaint --source ~/Music/jb/loop.wav --fill 4:6
  python -m plugin_host.ableton.companion vary --source ~/Music/jb/loop.wav --count 2

It talks OSC to two processes: the AbletonOSC remote script inside Live (requests to port
11000; AbletonOSC answers every query to port 11001 on the asking host, whatever port asked)
and the jenbridge daemon (jenbridge.commands.client.send_request). One run:

1. asks Live for the tempo, the time signature, the loop brace (`/live/song/get/loop_start`,
   `loop_length`, in beats = quarter notes) and the selected track;
2. sends the job: generate fills the loop brace; continue, inpaint and vary read `--source`,
   a WAV of exactly the loop brace (AbletonOSC cannot render audio: export it with File >
   Export Audio/Video, whose range defaults to the loop brace, into a folder the daemon
   allows); inpaint regenerates `--fill A:B` (bars after the loop start) inside it;
3. on `/jb/done` creates an audio track below the selected one (`/live/song/create_audio_track`,
   or `--track selected`) and the clip at the daemon's position, converted to beats
   (`/live/track/create_audio_clip TRACK PATH BEATS`, Live 12.0.5+'s Track.create_audio_clip;
   AbletonOSC gains that address with its pending create_audio_clip change, a one-line
   addition to its track methods); and checks the clip is there
   (`/live/track/get/arrangement_clips/start_time`). Without it the exit code is 4 and the
   message says where the file is and at which bar to drop it.

Exit codes: 0 done, 1 the daemon refused or failed, 2 usage, 3 no answer (Live or daemon),
4 the result is written but Live did not take the clip.
"""

from __future__ import annotations

import argparse
import math
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket, ParseError

from jenbridge.commands.client import send_request

LIVE_PORT, LISTEN_PORT = 11000, 11001  # AbletonOSC's defaults
EXIT_ERROR, EXIT_USAGE, EXIT_NO_ANSWER, EXIT_NOT_IMPORTED = 1, 2, 3, 4


class NoAnswer(Exception):
    """Live (AbletonOSC) did not answer a query."""


class Live:
    """AbletonOSC over UDP: queries answered to `listen_port` on this host."""

    def __init__(self, host: str = "127.0.0.1", port: int = LIVE_PORT,
                 listen_port: int = LISTEN_PORT, timeout: float = 2.0) -> None:
        self.to = (host, port)
        self.timeout = timeout
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("", listen_port))

    def send(self, address: str, *args: Any) -> None:
        msg = OscMessageBuilder(address)
        for a in args:
            msg.add_arg(a)
        self.sock.sendto(msg.build().dgram, self.to)

    def query(self, address: str, *args: Any) -> list[Any]:
        """Send a getter; its reply (same address) with the echoed ids removed."""
        self.send(address, *args)
        end = time.monotonic() + self.timeout
        while (left := end - time.monotonic()) > 0:
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionError:
                continue
            try:
                messages = [m.message for m in OscPacket(data).messages]
            except ParseError:
                continue
            for m in messages:
                params = list(m.params)
                if m.address == address and params[:len(args)] == list(args):
                    return params[len(args):]
        raise NoAnswer(f"Live did not answer {address} on {self.to[0]}:{self.to[1]} (is Live "
                       "running with the AbletonOSC control surface selected?)")

    def close(self) -> None:
        self.sock.close()


@dataclass(frozen=True)
class Song:
    """What a job needs from Live. Beats are quarter notes (Live's song time)."""

    tempo: float
    numerator: int
    denominator: int
    loop_start: float
    loop_length: float
    track: int

    @property
    def bar_beats(self) -> float:
        return self.numerator * 4 / self.denominator

    def seconds(self, beats: float) -> float:
        return beats * 60.0 / self.tempo

    def beats(self, seconds: float) -> float:
        return seconds * self.tempo / 60.0

    def tempo_keys(self) -> list[tuple[str, Any]]:
        """bpm and meter as the daemon counts them: `meter` beats of `bpm` per bar."""
        if self.denominator == 4:
            return [("s", "bpm"), ("d", self.tempo), ("s", "meter"), ("i", self.numerator)]
        return [("s", "bpm"), ("d", self.tempo * self.denominator / 4), ("s", "meter"),
                ("s", f"{self.numerator}/{self.denominator}")]


def read_song(live: Live) -> Song:
    return Song(tempo=float(live.query("/live/song/get/tempo")[0]),
                numerator=int(live.query("/live/song/get/signature_numerator")[0]),
                denominator=int(live.query("/live/song/get/signature_denominator")[0]),
                loop_start=float(live.query("/live/song/get/loop_start")[0]),
                loop_length=float(live.query("/live/song/get/loop_length")[0]),
                track=int(live.query("/live/view/get/selected_track")[0]))


def _span(text: str) -> tuple[float, float]:
    a, sep, b = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(a), float(b)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not A:B in bars (e.g. 4:6)") from None


def check_source(path: Path | None, song: Song) -> Path:
    """--source: an existing audio file as long as the loop brace (within 2 %)."""
    import soundfile as sf

    if path is None:
        raise ValueError("this task needs --source: the loop brace exported as WAV (File > "
                         "Export Audio/Video)")
    path = path.expanduser().resolve()
    if not path.is_file():
        raise ValueError(f"--source {path} does not exist")
    seconds = sf.info(str(path)).duration
    want = song.seconds(song.loop_length)
    if abs(seconds - want) > 0.02 * want:
        raise ValueError(f"--source {path.name} is {seconds:.3f} s but the loop brace is "
                         f"{want:.3f} s ({song.loop_length:g} beats at {song.tempo:g} bpm): "
                         "export exactly the loop brace")
    return path


def build_jobs(args: argparse.Namespace, song: Song, jid: str) -> list[tuple[str, list]]:
    """The daemon requests [(address, [(tag, value)...])] for one companion run."""
    start = song.seconds(song.loop_start)
    end = song.seconds(song.loop_start + song.loop_length)
    common: list[tuple[str, Any]] = [("s", "prompt"), ("s", args.prompt), *song.tempo_keys()]
    if args.steps:
        common += [("s", "steps"), ("i", args.steps)]
    if args.out_dir:
        common += [("s", "out_dir"), ("s", str(Path(args.out_dir).expanduser().resolve()))]
    if args.task == "generate":
        return [("/jb/generate", [("s", jid), *common, ("s", "start"), ("d", start),
                                  ("s", "end"), ("d", end), *_seed(args, 0)])]
    source = check_source(args.source, song)
    head = [("s", "path"), ("s", str(source)), ("s", "file_at"), ("d", start)]
    if args.task == "continue":
        beats = args.bars * song.bar_beats if args.bars else song.loop_length
        return [("/jb/continue", [("s", jid), *common, *head, ("s", "seconds"),
                                  ("d", song.seconds(beats)), *_seed(args, 0)])]
    if args.task == "inpaint":
        if args.fill is None:
            raise ValueError("inpaint needs --fill A:B (bars after the loop start to redo)")
        a, b = (song.seconds(song.loop_start + x * song.bar_beats) for x in args.fill)
        if not start <= a < b <= end + 1e-9:
            raise ValueError(f"--fill {args.fill[0]:g}:{args.fill[1]:g} is not inside the "
                             f"{song.loop_length / song.bar_beats:g}-bar loop brace")
        return [("/jb/inpaint", [("s", jid), *common, *head, ("s", "start"), ("d", a),
                                 ("s", "end"), ("d", min(b, end)), *_seed(args, 0)])]
    return [("/jb/vary", [("s", f"{jid}-v{k + 1}"), *common, *head, ("s", "strength"),
                          ("d", args.strength), *_seed(args, k)]) for k in range(args.count)]


def _seed(args: argparse.Namespace, k: int) -> list[tuple[str, Any]]:
    return [] if args.seed is None else [("s", "seed"), ("s", str(args.seed + k))]


def import_clip(live: Live, song: Song, path: str, seconds: float, new_track: bool,
                wait: float = 2.0) -> tuple[int, float] | None:
    """Put `path` on the arrangement at `seconds`: (track, beats), or None if Live did not."""
    track = song.track
    if new_track:
        track = song.track + 1
        live.send("/live/song/create_audio_track", track)
    beats = song.beats(seconds)
    live.send("/live/track/create_audio_clip", track, path, beats)
    end = time.monotonic() + wait
    while time.monotonic() < end:  # Live applies changes on its own thread: ask until seen
        try:
            starts = live.query("/live/track/get/arrangement_clips/start_time", track)
        except NoAnswer:
            return None
        if any(math.isclose(float(s), beats, abs_tol=1e-3) for s in starts):
            return track, beats
        time.sleep(0.1)
    return None


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=("generate", "continue", "inpaint", "vary"))
    p.add_argument("--prompt", default="", help="text prompt")
    p.add_argument("--source", type=Path, help="WAV export of exactly the loop brace "
                   "(continue, inpaint, vary); must be in a folder the daemon allows")
    p.add_argument("--fill", type=_span, metavar="A:B",
                   help="inpaint: bars A..B after the loop start to regenerate")
    p.add_argument("--bars", type=float, help="continue: bars of new audio (default: the "
                   "loop brace's length)")
    p.add_argument("--count", type=int, default=1, help="vary: how many variations")
    p.add_argument("--strength", type=float, default=0.5, help="vary: 0 = same, 1 = new")
    p.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    p.add_argument("--seed", type=int, help="seed (variation k gets seed + k)")
    p.add_argument("--out-dir", help="where the daemon writes (default: its output folder)")
    p.add_argument("--track", choices=("new", "selected"), default="new",
                   help="the clip goes on a new audio track below the selected one (default) "
                        "or on the selected track itself")
    p.add_argument("--host", default="127.0.0.1", help="jenbridge daemon host")
    p.add_argument("--port", type=int, default=9000, help="jenbridge daemon port")
    p.add_argument("--live-host", default="127.0.0.1", help="AbletonOSC host")
    p.add_argument("--live-port", type=int, default=LIVE_PORT, help="AbletonOSC port (11000)")
    p.add_argument("--listen-port", type=int, default=LISTEN_PORT,
                   help="where AbletonOSC answers (11001)")
    p.add_argument("--timeout", type=float, default=1800.0, help="seconds to wait for a job")


def run(args: argparse.Namespace) -> int:
    def say(text: str) -> None:
        print(f"jenbridge-live: {text}", file=sys.stderr, flush=True)

    live = Live(args.live_host, args.live_port, args.listen_port)
    try:
        try:
            song = read_song(live)
        except NoAnswer as err:
            say(str(err))
            return EXIT_NO_ANSWER
        say(f"{song.tempo:g} bpm {song.numerator}/{song.denominator}, loop brace "
            f"{song.loop_start:g} + {song.loop_length:g} beats, track {song.track}")
        try:
            jobs = build_jobs(args, song, f"live-{args.task}-{int(time.time())}")
        except ValueError as err:
            say(f"error: {err}")
            return EXIT_USAGE
        status = 0
        for address, osc_args in jobs:
            reply = send_request(address, osc_args, args.host, args.port, args.timeout,
                                 on_reply=lambda a, p: a == "/jb/progress" and say(
                                     f"{p[0]}: {100 * float(p[1]):3.0f}% {p[2]}"))
            if not reply.address:
                say(f"no answer from the jenbridge daemon at {args.host}:{args.port}")
                return EXIT_NO_ANSWER
            values = reply.fields()
            if not reply.ok:
                say(f"{reply.args[0]}: {values.get('code')}: {values.get('message')}")
                return EXIT_ERROR
            placed = import_clip(live, song, values["path"], float(values["position"]),
                                 args.track == "new")
            if placed is None:
                bar = 1 + song.beats(float(values["position"])) / song.bar_beats
                say(f"Live did not create the clip (needs Live 12.0.5+ and an AbletonOSC with "
                    f"/live/track/create_audio_clip). Drag {values['path']} in at bar {bar:g}.")
                status = EXIT_NOT_IMPORTED
            else:
                say(f"clip on track {placed[0]} at beat {placed[1]:g}: {values['path']}")
            print(values["path"])
        return status
    finally:
        live.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m plugin_host.ableton.companion",
                                description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
