"""Live audio for the daemon: one output stream (jenbridge.audio_out.Player) and live loops.

At start the daemon logs `describe_audio()` and opens one Player on `audio_device` (a name or
unique substring, in `audio_hostapi` if set; none: PortAudio's default) at the config's
`sample_rate`, stereo. When PortAudio is missing, no output device exists or the stream cannot
be opened, the daemon writes files only: it says so in one log line, and every playback address
answers `/jb/error ID no_audio <reason>`.

Time on the player is its clock: sample 0 is the first frame the stream output. `/jb/play`
positions (`at`, `at_samples`, `at_sec` + `at_offset`) and bar grids (`origin_samples`) are on
that clock; `/jb/playing` and `/jb/loop/started` report starts on it as seconds + offset.

A live loop (`/jb/loop/start`) is a LiveLoop whose `next_loop(k, previous)` asks the engine for
iteration k: a continuation of `previous` (mode continue: the engine sees the last loop as its
context, so the boundary is the model's own continuation, seam-smoothed; with `groove` it
starts from the last loop's last bar looped, which keeps the loop in tempo) or a variation of it
(mode vary, `strength`; the step at the boundary is removed the same way). The engine is shared
with the job worker under `Server.engine_lock`, one call at a time; a loop iteration that is not
ready in time repeats the current one (LiveLoop), so a long job never makes silence.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from jenbridge.daemon import protocol
from jenbridge.daemon.protocol import RequestError, number, pairs, text, whole
from jenbridge.engine.options import DEFAULT_GROOVE

if TYPE_CHECKING:
    from jenbridge.daemon.server import Server

log = logging.getLogger("jenbridge.daemon")
MONITOR_INTERVAL = 0.02  # seconds between a loop monitor's status polls
MAX_LOOP_BARS = 64
MODES = ("continue", "vary")
PLAY_KEYS = ("path", "at", "at_samples", "at_sec", "at_offset", "at_next_bar", "bpm", "meter",
             "origin_samples", "reply_port")
LOOP_START_KEYS = ("path", "bars", "prompt", "mode", "strength", "crossfade", "groove",
                   "iterations", "write", "origin_samples", "out_dir", "reply_port", "preset",
                   "var_*", "effects", "source", "link", *protocol.SAMPLING_KEYS)
LOOP_UPDATE_KEYS = ("prompt", "mode", "strength", "crossfade", "groove", "source", "reply_port",
                    "seed", "steps", "guidance", "sampler", "key")
SOURCES = ("last", "first")  # vary mode: each iteration varies the last one, or the first


class Audio:
    """The daemon's output stream, or the reason there is none (file output only)."""

    def __init__(self, config: Any) -> None:
        self.player: Any = None
        self.reason: str | None = None
        self.link: Any = None  # an Ableton Link session (config `link`), or None
        if getattr(config, "link", False):
            from jenbridge.audio_out.link import LinkSession, LinkUnavailable

            try:
                self.link = LinkSession()
                log.info("Ableton Link: joined (peers %d, tempo %.2f)", self.link.state().peers,
                         self.link.state().tempo)
            except LinkUnavailable as err:
                log.warning("Ableton Link unavailable: %s; loops use the request's tempo", err)
        try:
            from jenbridge.audio_out import devices
            from jenbridge.audio_out.player import Player

            reason = devices.audio_unavailable_reason()
            if reason is not None:
                raise devices.AudioUnavailable(reason)
            log.info("%s", devices.describe_audio())
            self.player = Player(config.audio_device, sample_rate=config.sample_rate,
                                 channels=2, hostapi=config.audio_hostapi)
        except Exception as err:  # AudioUnavailable, ValueError (no such device), PortAudio
            self.reason = str(err) or type(err).__name__
            log.warning("audio unavailable: %s; file output only (playback addresses answer "
                        "no_audio)", self.reason)
            return
        log.info("audio: playing on %s at %d Hz%s",
                 config.audio_device or "the default output device", config.sample_rate,
                 "; finished jobs are played" if config.play_results else "")

    def require(self) -> Any:
        if self.player is None:
            raise RequestError("no_audio", f"audio unavailable: {self.reason}")
        return self.player

    def counters(self) -> tuple[int, int, int]:
        """(underruns, xruns, position) of the stream; (-1, -1, -1) without audio."""
        if self.player is None:
            return -1, -1, -1
        st = self.player.status()
        return st.underruns, st.xruns, st.position

    def close(self) -> None:
        if self.link is not None:
            self.link.close()
            self.link = None
        if self.player is not None:
            self.player.close()
            self.player = None
            self.reason = "the daemon is stopping"

    def play_now(self, audio: np.ndarray) -> tuple[int, int]:
        """Queue audio (C, N) at the earliest sample: (start, delay in samples from now)."""
        player = self.require()
        position = player.position
        start = player.play(audio[: player.channels])
        return start, start - position


def _split(sample: int, sr: int) -> tuple[int, int]:
    return divmod(int(sample), sr)


def _meter(value: Any) -> tuple[int, int]:
    """Beats per bar (a number or "7/8": 7 beats) as bar_length's meter: beats of a quarter."""
    return (protocol._meter(value) or 4, 4)


def _fit(audio: np.ndarray, n: int) -> np.ndarray:
    """(C, n) float32: trimmed or zero-padded (the engine's lengths are within a sample)."""
    audio = np.asarray(audio, dtype=np.float32)[:2]
    if audio.shape[1] >= n:
        return np.ascontiguousarray(audio[:, :n])
    return np.pad(audio, ((0, 0), (0, n - audio.shape[1])))


def _read(server: Server, raw: Any, sr: int) -> tuple[Path, np.ndarray]:
    """An allowed audio file (forbidden / not_found / bad_audio / out_of_range), at sr."""
    from jenbridge.data.audio import AudioError, read_audio

    path = protocol._path(server.context, raw, "path", False)
    protocol._probe(path, server.config.max_input_seconds)
    try:
        audio, _ = read_audio(path, sample_rate=sr)
    except AudioError as err:
        raise RequestError("bad_audio", str(err)) from None
    if not np.all(np.isfinite(audio)):
        raise RequestError("bad_audio", f"{path.name} contains NaN or inf samples")
    return path, audio[:2]


def _query_to(server: Server, args: list[Any], sender: tuple[str, int]) -> tuple[str, Any]:
    from jenbridge.daemon.server import _query

    jid, kv = _query(args)
    return jid, server.endpoint(sender, kv.get("reply_port"))


def _reply_port(kv: dict[str, Any]) -> int | None:
    return whole(kv["reply_port"], "reply_port", 1, 65535) if "reply_port" in kv else None


# ---- /jb/list/devices, /jb/play, /jb/stop -----------------------------------------------------

def list_devices(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/list/devices [ID] -> /jb/devices ID count [name hostapi]... (the output devices)."""
    from jenbridge.audio_out import devices

    jid, to = _query_to(server, args, sender)
    try:
        found = devices.list_output_devices()
    except devices.AudioUnavailable as err:
        raise RequestError("no_audio", f"audio unavailable: {err}") from None
    flat: list[Any] = [len(found)]
    for d in found[:100]:
        flat += [d.name, d.hostapi]
    server.send(to, "/jb/devices", (jid, *flat))


def play(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/play ID path P [at... | at_next_bar 1 bpm B [meter M] [origin_samples S]]
    -> /jb/playing ID start_sec start_offset frames sample_rate delay_samples."""
    jid = protocol.job_id(args)
    kv = pairs(args, PLAY_KEYS)
    port = _reply_port(kv)
    if "path" not in kv:
        raise RequestError("bad_request", "/jb/play needs 'path'")
    player = server.audio.require()
    sr = player.sample_rate
    at = protocol.position(kv, "at", sr)
    bar = whole(kv["at_next_bar"], "at_next_bar", 0, 1) if "at_next_bar" in kv else 0
    if bar and at is not None:
        raise RequestError("bad_request", "give a position (at...) or at_next_bar, not both")
    if not bar and any(k in kv for k in ("bpm", "meter", "origin_samples")):
        raise RequestError("bad_request", "bpm, meter and origin_samples need at_next_bar 1")
    if bar:
        if "bpm" not in kv:
            raise RequestError("bad_request", "at_next_bar needs bpm")
        bpm = number(kv["bpm"], "bpm", 20.0, 400.0)
        meter = _meter(kv.get("meter", 4))
        origin = whole(kv.get("origin_samples", 0), "origin_samples", 0, 2**62)
    _path, audio = _read(server, kv["path"], sr)
    position = player.position
    try:
        if bar:
            start = player.schedule_at_next_bar(audio, bpm, meter, origin)
        else:
            start = player.play(audio, at)
    except ValueError as err:
        raise RequestError("too_late", str(err)) from None
    server.send(server.endpoint(sender, port), "/jb/playing",
                (jid, *_split(start, sr), audio.shape[1], sr, max(0, start - position)))


def stop(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/stop [ID] -> /jb/stopped ID: every live loop ends and the output fades out."""
    jid, to = _query_to(server, args, sender)
    player = server.audio.require()
    for state in list(server.loops.values()):
        finish_loop(server, state, now=False)
    player.stop()
    server.send(to, "/jb/stopped", (jid,))


# ---- live loops -------------------------------------------------------------------------------

@dataclass
class LoopState:
    """One live loop: its request's settings (prompt... change with /jb/loop/update)."""

    loop_id: str
    reply_to: tuple[str, int]
    bpm: float
    bars: int
    meter: tuple[int, int]
    length: int
    prompt: str
    mode: str
    strength: float
    crossfade: float
    sampling: dict[str, Any]
    iterations: int
    write: bool
    out_dir: Path | None
    origin: int
    effects: Any = None  # the preset's plugin_host EffectChain (None: no effects)
    fx_tail: np.ndarray | None = None  # its tail still to be added to the next iterations
    groove: float = DEFAULT_GROOVE  # mode continue: Engine.continue_'s groove (0 = off)
    first: np.ndarray | None = None
    first_path: str = ""
    source: str = "last"
    link: Any = None  # the Link snapshot the loop's grid came from (None: no Link sync)
    original: np.ndarray | None = None  # the first iteration before effects (source first)
    loop: Any = None
    stopped: bool = False
    finished: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)
    done: threading.Event = field(default_factory=threading.Event)


def _mode_fields(kv: dict[str, Any], mode: str, strength: float, crossfade: float,
                 groove: float) -> tuple[str, float, float, float]:
    from jenbridge.engine.options import check_crossfade, check_strength

    if "mode" in kv:
        mode = text(kv["mode"], "mode", 16)
        if mode not in MODES:
            raise RequestError("bad_request", f"mode must be one of {MODES}, got {mode!r}")
    if "strength" in kv:
        strength = number(kv["strength"], "strength", 0.0, 1.0)
        check_strength(strength)
    if "crossfade" in kv:
        crossfade = check_crossfade(number(kv["crossfade"], "crossfade", 0.0, 1.0))
    return mode, strength, crossfade, protocol.groove(kv, groove)


def loop_start(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/loop/start ID bpm B bars N [meter M] [path P | prompt ...] [mode continue|vary]
    [strength S] [groove G] ... -> /jb/accepted ID 0, /jb/loop/next ID 0 path, then the final
    /jb/loop/started ID start_sec start_offset frames sample_rate (or /jb/error)."""
    jid = protocol.job_id(args)
    kv = pairs(args, LOOP_START_KEYS)
    port = _reply_port(kv)
    effects = None
    if "preset" in kv:
        kv, effects = _loop_preset(server, kv)
    link = _link_grid(server, kv)  # Ableton Link: its tempo and its bar lines
    if link is not None and "bpm" not in kv:
        kv["bpm"] = link[0].tempo
    for key in ("bpm", "bars"):
        if key not in kv:
            raise RequestError("bad_request", f"/jb/loop/start needs {key!r}")
    bpm = number(kv["bpm"], "bpm", 20.0, 400.0)
    if link is not None and abs(bpm - link[0].tempo) > 0.01:
        raise RequestError("bad_request", f"bpm {bpm:g} differs from the Link session's "
                           f"{link[0].tempo:.2f} (leave bpm out, or send link 0)")
    bars = whole(kv["bars"], "bars", 1, MAX_LOOP_BARS)
    meter = _meter(kv.get("meter", 4))
    prompt = text(kv.get("prompt", ""), "prompt")
    mode, strength, crossfade, groove = _mode_fields(kv, "continue", 0.5, 0.01, DEFAULT_GROOVE)
    opts = protocol.sampling(kv, server.context.sampler_defaults)
    iterations = whole(kv.get("iterations", 0), "iterations", 0, 1_000_000)
    write = bool(whole(kv.get("write", 1), "write", 0, 1))
    origin = whole(kv.get("origin_samples", 0), "origin_samples", 0, 2**62)
    if link is not None:
        if "origin_samples" in kv:
            raise RequestError("bad_request", "origin_samples and Link sync exclude each other")
        origin = _link_origin(server, link[0], meter)
    out_dir = protocol._path(server.context, kv["out_dir"], "out_dir", True) \
        if "out_dir" in kv else None
    player = server.audio.require()
    from jenbridge.audio_out.player import bar_length

    sr = player.sample_rate
    n = round(bars * bar_length(bpm, meter, sr))
    if n / sr > server.config.max_request_seconds:
        raise RequestError("out_of_range", f"a loop of {n / sr:g} s is longer than the "
                           f"{server.config.max_request_seconds:g} s this daemon allows")
    first, first_path = None, ""
    if "path" in kv:
        path, audio = _read(server, kv["path"], sr)
        if abs(audio.shape[1] - n) > max(1, n // 200):
            raise RequestError("out_of_range", f"{path.name} is {audio.shape[1]} frames at "
                               f"{sr} Hz; {bars} bars at {bpm:g} bpm are {n}")
        first, first_path = _fit(np.broadcast_to(audio, (2, audio.shape[1])), n), str(path)
    if server.stopping:
        raise RequestError("shutting_down", "the daemon is stopping")
    if jid in server.loops:
        raise RequestError("duplicate_job", f"loop {jid!r} is already playing")
    fx = None
    if effects:
        from plugin_host import ChainError, EffectChain, parse_chain

        try:
            fx = EffectChain(parse_chain(effects, source=f"preset {kv['preset']}"), sr)
        except (ChainError, RuntimeError, OSError) as err:
            raise RequestError("bad_request", f"effect chain: {err}") from None
    state = LoopState(jid, server.endpoint(sender, port), bpm, bars, meter, n, prompt, mode,
                      strength, crossfade, opts, iterations, write, out_dir, origin, fx,
                      first=first, first_path=first_path)
    state.source = _source(kv, "last")
    state.groove = groove
    state.link = link[0] if link is not None else None
    server.loops[jid] = state
    server.send(state.reply_to, "/jb/accepted", (jid, 0))
    threading.Thread(target=_run_loop, args=(server, state), name=f"jenbridge-loop-{jid}",
                     daemon=True).start()


def _link_grid(server: Server, kv: dict[str, Any]) -> tuple[Any] | None:
    """(a Link snapshot,) when this loop syncs to Ableton Link: `link 1`, or by default when
    the daemon is in a Link session; None otherwise."""
    session = server.audio.link
    want = protocol.flag(kv["link"], "link") if "link" in kv else session is not None
    if not want:
        return None
    if session is None:
        raise RequestError("bad_request", "this daemon is not in an Ableton Link session (start "
                           "it with --link; needs jenbridge[link])")
    return (session.state(),)


def _link_origin(server: Server, state: Any, meter: tuple[int, int]) -> int:
    """A sample on the player's clock where a Link bar line falls (beats per bar = meter)."""
    import time

    from jenbridge.audio_out.link import next_bar_time

    player = server.audio.require()
    t, _beat = next_bar_time(state, float(meter[0]), time.monotonic())
    try:
        return max(0, round(player.sample_at(t)))
    except ValueError as err:
        raise RequestError("no_audio", str(err)) from None


def link_status(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/link [ID] -> /jb/link ID enabled peers tempo beat (0 0 0 0 without a session)."""
    from jenbridge.daemon.server import _answer

    session = server.audio.link
    if session is None:
        _answer(server, args, sender, "/jb/link", (0, 0, 0.0, 0.0))
        return
    st = session.state()
    _answer(server, args, sender, "/jb/link", (1, st.peers, st.tempo, st.beat))


def _source(kv: dict[str, Any], default: str) -> str:
    if "source" not in kv:
        return default
    source = text(kv["source"], "source", 16)
    if source not in SOURCES:
        raise RequestError("bad_request", f"source must be one of {SOURCES}, got {source!r}")
    return source


def _loop_preset(server: Server, kv: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """A loop preset's settings under the request's keys; its prompt filled from `var_*` and
    the request's bpm / key / meter; its effect chain (unless `effects 0`)."""
    from jenbridge.presets import PresetError, loop_request, render_prompt

    preset = protocol.find_preset(server.context, kv["preset"])
    if preset.task != "loop":
        raise RequestError("bad_request", f"preset {preset.name!r} is a {preset.task} preset, "
                           "not a loop preset")
    merged = {**loop_request(preset), **kv}
    variables = {k[4:]: text(v, k, 200) for k, v in kv.items() if k.startswith("var_")}
    if "prompt" not in kv:
        try:
            merged["prompt"] = render_prompt(preset, variables, merged)
        except PresetError as err:
            raise RequestError("bad_request", str(err)) from None
    elif variables:
        raise RequestError("bad_request", "var_* keys fill a preset's prompt: send no prompt")
    use_fx = protocol.flag(kv.get("effects", 1), "effects")
    return merged, (list(preset.effects) if use_fx else [])


def _options(state: LoopState, k: int) -> dict[str, Any]:
    opts = dict(state.sampling)
    if opts.get("seed") is not None:  # a fixed seed: every iteration its own, reproducibly
        opts["seed"] = (opts["seed"] + k) % 2**63
    return opts


def _emit(server: Server, state: LoopState, k: int, audio: np.ndarray, seed: int,
          path: str = "", notes: str = "") -> None:
    """Write iteration k (if asked) and send /jb/loop/next ID k path seconds seed. An iteration
    past the loop's `iterations` (made while the loop was being stopped) never plays: it is
    neither written nor announced."""
    from jenbridge import __version__
    from jenbridge.daemon.outputs import Metadata, write_output

    if state.iterations and k >= state.iterations:
        return

    sr = server.audio.player.sample_rate
    if state.write and not path:
        meta = Metadata(k * state.length, state.prompt, "loop", seed, server.model_name,
                        state.loop_id, f"jenbridge {__version__}", notes)
        try:
            path = str(write_output(state.out_dir or server.output_dir, state.loop_id, "loop",
                                    audio, sr, server.config.wav_format, meta))
        except OSError as err:
            log.warning("loop %s: could not write iteration %d: %s", state.loop_id, k, err)
    server.send(state.reply_to, "/jb/loop/next", (state.loop_id, k, path, audio.shape[1] / sr,
                                                  str(seed)))


def _next_loop(server: Server, state: LoopState):
    sr = server.audio.player.sample_rate

    def should_stop() -> bool:
        return state.stopped or server.stopping

    def next_loop(k: int, previous: np.ndarray) -> np.ndarray:
        from jenbridge.daemon.tasks import describe_groove
        from jenbridge.engine.regions import smooth_seam

        if should_stop():
            raise RuntimeError("loop stopped")
        prompt, mode, strength, fade = state.prompt, state.mode, state.strength, state.crossfade
        groove = state.groove
        opts = _options(state, k)
        if mode == "vary" and state.source == "first" and state.original is not None:
            base = state.original  # a new variation of the original, joined to the last loop
        else:
            base = previous
        with server.engine_lock:
            if mode == "continue":
                r = server.engine.continue_(previous, sr, state.length / sr, prompt,
                                            crossfade=fade, groove=groove,
                                            should_stop=should_stop, **opts)
                audio = _fit(r.audio[:, previous.shape[1]:], state.length)
            else:
                r = server.engine.vary(base, sr, strength, prompt, should_stop=should_stop,
                                       **opts)
                audio = _fit(r.audio, state.length)
                # the step from the last loop's end (extrapolated one sample) to this start
                edge = 2.0 * previous[:, -1] - previous[:, -2]
                audio = smooth_seam(audio, edge - audio[:, 0], round(fade * sr), True)
        if should_stop():
            raise RuntimeError("loop stopped")
        audio = _wet(state, audio)
        _emit(server, state, k, audio, int(r.seed), notes=describe_groove(r))
        return audio

    return next_loop


LOOP_FX_TAIL = 4.0  # seconds of effect tail (reverb, delay) carried into the next iterations


def _wet(state: LoopState, audio: np.ndarray) -> np.ndarray:
    """The iteration through the loop's effect chain, rendered offline with its tail; the tail
    is added onto the following iterations, so a reverb rings on over the loop boundary and the
    result stays on the grid (a streamed chain would lag by its block latency)."""
    if state.effects is None:
        return audio
    n = audio.shape[1]
    y = state.effects.process(np.ascontiguousarray(audio, np.float32), LOOP_FX_TAIL)
    carry = state.fx_tail
    if carry is not None:
        m = min(carry.shape[1], y.shape[1])
        y[:, :m] += carry[:, :m]
        if carry.shape[1] > y.shape[1]:  # a tail longer than this iteration plus its own
            y = np.concatenate([y, carry[:, y.shape[1]:]], axis=1)
    state.fx_tail = y[:, n:].copy()
    return np.ascontiguousarray(y[:, :n], dtype=np.float32)


def _run_loop(server: Server, state: LoopState) -> None:
    """Make the first loop if needed, start the LiveLoop, then watch it (iterations limit)."""
    from jenbridge.audio_out.looper import LiveLoop
    from jenbridge.engine import Cancelled

    player = server.audio.player
    sr = player.sample_rate
    try:
        first, seed = state.first, 0
        if first is None:
            with server.engine_lock:
                r = server.engine.generate(state.prompt, state.length / sr, sample_rate=sr,
                                           channels=2, should_stop=lambda: state.stopped or
                                           server.stopping, **_options(state, 0))
            first, seed = _fit(r.audio, state.length), int(r.seed)
        if state.stopped or server.stopping:
            raise Cancelled()
        state.original = first
        first = _wet(state, first)
        _emit(server, state, 0, first, seed, "" if state.effects else state.first_path)
        with state.lock:
            if state.stopped:
                raise Cancelled()
            state.loop = LiveLoop(player, first, state.bpm, state.bars, state.meter,
                                  _next_loop(server, state), origin_sample=state.origin)
        start = state.loop.start_sample
        beat, at = -1.0, ""
        if state.link is not None:  # where the loop starts on the Link timeline
            t = player.time_of(start)
            beat, at = state.link.beat_at(t), repr(t)
        server.send(state.reply_to, "/jb/loop/started",
                    (state.loop_id, *_split(start, sr), state.length, sr, float(beat), at))
    except Cancelled:
        server.loops.pop(state.loop_id, None)
        server.send(state.reply_to, "/jb/error",
                    (state.loop_id, "cancelled", "the loop was stopped before it started"))
        return
    except Exception as err:
        log.exception("loop %s could not start", state.loop_id)
        server.loops.pop(state.loop_id, None)
        server.send(state.reply_to, "/jb/error",
                    (state.loop_id, "engine_error", f"{type(err).__name__}: {err}"[:500]))
        return
    while not state.done.wait(MONITOR_INTERVAL):
        if state.iterations and state.loop.status()["queued"] >= state.iterations:
            finish_loop(server, state, now=False)


def finish_loop(server: Server, state: LoopState, now: bool,
                to: tuple[str, int] | None = None, reply_id: str | None = None) -> None:
    """End a loop once: no more iterations; `now` also fades the output (every clip) out.
    Sends /jb/loop/stopped ID queued made repeats failures late ends_in_seconds."""
    with state.lock:
        if state.finished:
            return
        state.finished = state.stopped = True
    server.loops.pop(state.loop_id, None)
    state.done.set()
    stats = (0, 0, 0, 0, 0)
    ends_in = 0.0
    if state.effects is not None:
        state.effects.close()  # its plugin worker processes, if any
    if state.loop is not None:
        state.loop.stop(fade=now)
        st = state.loop.status()
        stats = (st["queued"], st["made"], st["repeats"], st["failures"], st["late"])
        player = server.audio.player
        if not now and player is not None:
            ends_in = max(0, st["next_boundary"] - player.position) / player.sample_rate
    server.send(to or state.reply_to, "/jb/loop/stopped", (state.loop_id, *stats, ends_in))


def _loop_state(server: Server, args: list[Any], keys: tuple[str, ...]
                ) -> tuple[LoopState, dict[str, Any]]:
    jid = protocol.job_id(args)
    kv = pairs(args, keys)
    _reply_port(kv)
    server.audio.require()
    state = server.loops.get(jid)
    if state is None:
        raise RequestError("not_found", f"no live loop {jid!r}")
    return state, kv


def loop_update(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/loop/update ID [prompt ...] [mode ...] [strength S] [groove G] [seed ...] ->
    /jb/loop/updated ID: iterations requested from now on use the new settings."""
    state, kv = _loop_state(server, args, LOOP_UPDATE_KEYS)
    mode, strength, crossfade, groove = _mode_fields(kv, state.mode, state.strength,
                                                     state.crossfade, state.groove)
    prompt = text(kv["prompt"], "prompt") if "prompt" in kv else state.prompt
    changed = {k: v for k, v in kv.items() if k in protocol.SAMPLING_KEYS}
    sampling = dict(state.sampling)
    if changed:
        fresh = protocol.sampling(changed, server.context.sampler_defaults)
        sampling.update({k: fresh[k] for k in changed})
    state.prompt, state.mode, state.strength, state.crossfade = prompt, mode, strength, crossfade
    state.groove = groove
    state.source = _source(kv, state.source)
    state.sampling = sampling
    server.send(server.endpoint(sender, _reply_port(kv)), "/jb/loop/updated", (state.loop_id,))


def loop_stop(server: Server, args: list[Any], sender: tuple[str, int]) -> None:
    """/jb/loop/stop ID [now 1] -> /jb/loop/stopped ID queued made repeats failures late ends_in:
    no more iterations; the queued ones play out (ends_in seconds), or with `now 1` the output
    fades out at once."""
    state, kv = _loop_state(server, args, ("now", "reply_port"))
    now = bool(whole(kv.get("now", 0), "now", 0, 1))
    to = server.endpoint(sender, _reply_port(kv))
    if state.finished:
        raise RequestError("not_found", f"no live loop {state.loop_id!r}")
    finish_loop(server, state, now, to)


ADDRESSES = {
    "/jb/list/devices": list_devices,
    "/jb/play": play,
    "/jb/stop": stop,
    "/jb/loop/start": loop_start,
    "/jb/loop/update": loop_update,
    "/jb/loop/stop": loop_stop,
    "/jb/link": link_status,
}
