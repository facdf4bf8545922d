"""Continuation groove on every interface: `groove` reaches Engine.continue_ from an OSC request,
a live loop, the CLI and a preset (the groove the continuation started from is written to the
file's metadata and printed by the CLI), and bad values get clear errors that name the key,
with nothing written. Real daemon, real CLI, the tiny bundle; one sampler step per call."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from jack_tools import HAVE_JACK, SR, jack_server
from test_daemon import Client, Daemon, write_clip
from test_daemon_outputs import bext_fields, info_fields, parse_wav

from jenbridge.engine.options import DEFAULT_GROOVE

ROOT = Path(__file__).resolve().parent.parent
PRESETS = {
    "groove_continue": """description: test continuation with a groove
task: continue
prompt: "bass line at {bpm}"
seconds: 0.5
bpm: 120
meter: 4
steps: 2
groove: 0.6
""",
    "groove_loop": """description: test live loop with a groove
task: loop
prompt: "break at {bpm}"
bars: 1
steps: 1
groove: 0.6
loop: {mode: continue, iterations: 3}
""",
}
# groove_continue's 2 steps start at step 2 - round(0.4 * 2) = 1: one step denoises the noised
# sketch. One step at groove 0.8 (or the loop's 0.6) starts at step 1 of 1: the sketch itself.
# CONTINUE: 0.5 s after a 2 s clip (one bar at 120 BPM), one step
CONTINUE = ["seconds", 0.5, "bpm", 120.0, "meter", 4, "steps", 1, "seed", 5]


@pytest.fixture(scope="module")
def presets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("groove_presets")
    for name, text in PRESETS.items():
        (folder / f"{name}.yaml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def daemon(tiny_bundle: Path, presets_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = Daemon(tiny_bundle, tmp_path_factory.mktemp("groove_daemon"), "--presets",
               str(presets_dir))
    yield d
    d.stop()


@pytest.fixture(scope="module")
def context(daemon: Daemon) -> Path:
    return write_clip(daemon.music, "context.wav", 2.0)


def notes(done: tuple[str, list]) -> tuple[str, str]:
    """(ICMT, bext description) of a /jb/done reply's file."""
    assert done[0] == "/jb/done", done
    chunks = parse_wav(Path(done[1][1]))
    return info_fields(chunks)["ICMT"], str(bext_fields(chunks)["description"])


def written(daemon: Daemon, job: str) -> list[Path]:
    return sorted(daemon.out.glob(f"{job}_*"))


# ---- OSC ----------------------------------------------------------------------------------------

def test_osc_groove_reaches_the_engine(client: Client, context: Path) -> None:
    client.send("/jb/continue", "g1", "path", str(context), *CONTINUE, "groove", 0.8)
    icmt, bext = notes(client.final("g1"))
    assert "groove=0.8" in icmt and "groove=0.8" in bext, icmt
    client.send("/jb/continue", "g2", "path", str(context), *CONTINUE, "groove", 0)  # off
    assert "groove=" not in notes(client.final("g2"))[0]
    client.send("/jb/continue", "g4", "path", str(context), *CONTINUE)  # the engine's default
    icmt = notes(client.final("g4"))[0]
    assert (f"groove={DEFAULT_GROOVE:g}" in icmt) == (DEFAULT_GROOVE > 0), icmt
    # no tempo (none sent, none estimated): there is no bar to loop, so it is not applied
    client.send("/jb/continue", "g3", "path", str(context), "seconds", 0.5, "steps", 1,
                "estimate", 0, "groove", 0.8)
    assert "groove=" not in notes(client.final("g3"))[0]


@pytest.mark.parametrize(("job", "value", "code"), [
    ("high", 1.5, "out_of_range"), ("negative", -1.0, "out_of_range"),
    ("text", "abc", "bad_request"), ("nan", float("nan"), "bad_request"),
])
def test_osc_bad_groove_is_refused_and_writes_nothing(client: Client, daemon: Daemon,
                                                      context: Path, job: str, value: object,
                                                      code: str) -> None:
    client.send("/jb/continue", job, "path", str(context), *CONTINUE, "groove", value)
    reply = client.final(job)
    assert reply[0] == "/jb/error" and reply[1][1] == code and "groove" in reply[1][2], reply
    # a loop takes the key too, checked the same way before anything plays
    client.send("/jb/loop/start", f"{job}L", "bpm", 120.0, "bars", 1, "groove", value)
    reply = client.wait(("/jb/error",), f"{job}L")
    assert reply[1][1] == code and "groove" in reply[1][2], reply
    assert written(daemon, job) == [] and written(daemon, f"{job}L") == []


def test_osc_groove_only_where_audio_is_continued(client: Client) -> None:
    client.send("/jb/generate", "gen", "seconds", 0.5, "steps", 1, "groove", 0.5)
    reply = client.final("gen")
    assert reply[0] == "/jb/error" and reply[1][1] == "bad_request", reply
    assert "unknown key 'groove'" in reply[1][2]


def test_preset_groove_reaches_the_engine_and_requests_override(client: Client,
                                                                context: Path) -> None:
    client.send("/jb/run", "p1", "preset", "groove_continue", "path", str(context))
    icmt, _ = notes(client.final("p1"))
    assert "preset=groove_continue" in icmt and "groove=0.6" in icmt, icmt
    client.send("/jb/continue", "p2", "preset", "groove_continue", "path", str(context),
                "groove", 0.0)
    icmt, _ = notes(client.final("p2"))
    assert "preset=groove_continue" in icmt and "groove=" not in icmt, icmt


# ---- CLI ----------------------------------------------------------------------------------------

def jb(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jenbridge", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_cli_groove(tiny_bundle: Path, presets_dir: Path, tmp_path: Path) -> None:
    src = write_clip(tmp_path, "in.wav", 2.0)
    base = ["continue", src, "--model", tiny_bundle, "--steps", 1, "--seed", 5, "-q"]
    out = tmp_path / "groove.wav"
    r = jb(*base, "--seconds", 0.5, "--bpm", 120, "--meter", 4, "--groove", 0.8, "-o", out)
    assert r.returncode == 0 and "groove=0.8" in r.stderr, r.stderr
    clip = sf.info(str(src))
    assert sf.info(str(out)).frames == clip.frames + round(0.5 * clip.samplerate)
    r = jb(*base, "--preset", "groove_continue", "--presets-dir", presets_dir, "-o",
           tmp_path / "preset.wav")
    assert r.returncode == 0 and "groove=0.6" in r.stderr, r.stderr
    for value in ("2", "-1", "nan", "abc"):
        bad = tmp_path / f"bad{value}.wav"
        r = jb(*base, "--seconds", 0.5, "--bpm", 120, "--groove", value, "-o", bad)
        assert r.returncode == 2 and "groove" in r.stderr, (value, r.stderr)
        assert not bad.exists()
    r = jb("extend", src, "--model", tiny_bundle, "--seconds", 0.5, "--groove", 0.5, "-o",
           tmp_path / "extend.wav")
    assert r.returncode == 2 and "--groove" in r.stderr, r.stderr  # continue only


# ---- preset files -------------------------------------------------------------------------------

@pytest.mark.parametrize(("body", "words"), [
    ("task: continue\nbars: 1\ngroove: 3\n", ("groove", "less than or equal to 1")),
    ("task: continue\nbars: 1\ngroove: -0.1\n", ("groove", "greater than or equal to 0")),
    ("task: continue\nbars: 1\ngroove: lots\n", ("groove", "number")),
    ("task: generate\nseconds: 1\ngroove: 0.5\n", ("groove", "not task generate")),
    ("task: extend\nseconds: 1\ngroove: 0.5\n", ("groove", "not task extend")),
    ("task: loop\nbars: 1\ngroove: 0.5\nloop: {mode: vary}\n", ("groove", "mode vary")),
])
def test_preset_bad_groove_names_file_and_key(tmp_path: Path, body: str,
                                               words: tuple[str, ...]) -> None:
    from jenbridge.presets import PresetError, load_preset_file

    path = tmp_path / "bad_groove.yaml"
    path.write_text(body)
    with pytest.raises(PresetError) as err:
        load_preset_file(path)
    assert str(path) in str(err.value) and all(w in str(err.value) for w in words), err.value


def test_presets_check_refuses_a_bad_groove(tmp_path: Path) -> None:
    path = tmp_path / "bad_groove.yaml"
    path.write_text("task: continue\nbars: 1\ngroove: 3\n")
    r = jb("presets", "check", path)
    assert r.returncode == 1 and f"{path}: groove: " in r.stderr, r.stderr


def test_shipped_presets_groove() -> None:
    from jenbridge.daemon.protocol import TASK_KEYS
    from jenbridge.presets import PresetLibrary, loop_request, merge_request

    library = PresetLibrary(user=False)
    grooves = {name: library.get(name).groove for name in library.names()}
    assert grooves["bassline_continuation"] == 0.8
    assert grooves["dnb_break_loop"] == 0.6
    assert grooves["jazz_trio_comping"] == 0.5
    assert grooves["ambient_pad_extension"] == 0.3
    # carried into requests like crossfade: a request's own value wins
    bass = library.get("bassline_continuation")
    assert merge_request(bass, {}, TASK_KEYS["continue"])["groove"] == 0.8
    assert merge_request(bass, {"groove": 0.2}, TASK_KEYS["continue"])["groove"] == 0.2
    assert loop_request(library.get("dnb_break_loop"))["groove"] == 0.6


# ---- live loops (a real headless JACK server) ---------------------------------------------------

@pytest.fixture(scope="module")
def loop_daemon(tiny_bundle: Path, presets_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    if not HAVE_JACK:
        pytest.skip("jackd2 and jack-capture not installed")
    with jack_server("jenbridge-groove-test"):
        tmp = tmp_path_factory.mktemp("groove_loop_daemon")
        config = tmp / "daemon.yaml"
        config.write_text("audio_device: system\naudio_hostapi: JACK\n")
        d = Daemon(tiny_bundle, tmp, "--config", str(config), "--presets", str(presets_dir))
        yield d
        d.stop()


def test_loop_groove_from_a_preset_and_updates(loop_daemon: Daemon) -> None:
    n = 2 * SR  # one bar at 120 BPM
    t = np.arange(n)
    first = 0.3 * np.stack([np.sin(2 * np.pi * t / 128), np.sin(2 * np.pi * t / 96)])
    path = loop_daemon.music / "bar.wav"
    sf.write(path, first.T.astype(np.float32), SR, subtype="FLOAT")
    client = loop_daemon.client()
    try:
        client.send("/jb/run", "L1", "preset", "groove_loop", "path", str(path), "bpm", 120.0,
                    "seed", 1)
        assert client.wait(("/jb/loop/started", "/jb/error"), "L1", 60)[0] == "/jb/loop/started"
        client.send("/jb/loop/update", "L1", "groove", 1.5)
        err = client.wait(("/jb/error",), "L1")[1]
        assert err[1] == "out_of_range" and "groove" in err[2], err
        client.send("/jb/loop/update", "L1", "groove", 0.9)
        assert client.wait(("/jb/loop/updated", "/jb/error"), "L1")[0] == "/jb/loop/updated"
        stopped = client.wait(("/jb/loop/stopped",), "L1", timeout=90)[1]
        _, queued, made, _repeats, failures, _late, _ends_in = stopped
        assert (queued, failures) == (3, 0) and made >= 1, stopped
    finally:
        client.close()
    files = {m[1][1]: m[1][2] for m in client.log if m[0] == "/jb/loop/next"
             and m[1][0] == "L1" and m[1][1] > 0 and m[1][2]}
    assert files, client.log
    for k, name in files.items():  # every continuation started from the looped bar
        icmt = info_fields(parse_wav(Path(name)))["ICMT"]
        assert "groove=0.6" in icmt or "groove=0.9" in icmt, (k, icmt)
