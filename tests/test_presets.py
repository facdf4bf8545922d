"""Presets: the file format's checks, template and seed rules, the CLI, and every shipped preset
run end to end through a real daemon on the tiny bundle (live-loop presets under JACK)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from test_daemon import Client, Daemon, write_clip
from test_daemon_outputs import info_fields, parse_wav

from jenbridge.presets import (
    PresetError,
    PresetLibrary,
    load_preset_file,
    merge_request,
    parse_preset,
    render_prompt,
    take_seeds,
)

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = PresetLibrary(user=False)
NAMES = SHIPPED.names()
JOB_PRESETS = [n for n in NAMES if SHIPPED.get(n).task != "loop"]
LOOP_PRESETS = [n for n in NAMES if SHIPPED.get(n).task == "loop"]


def preset(**fields: object):
    return parse_preset({"task": "generate", "seconds": 4.0, **fields}, "p", "p.yaml")


# ---- the file format ---------------------------------------------------------------------

def test_shipped_presets_are_valid_and_cover_every_task() -> None:
    good, bad = SHIPPED.check_all()
    assert bad == []
    assert len(good) >= 12
    assert {p.task for p in good} == {"generate", "inpaint", "continue", "extend", "vary",
                                      "loop"}
    assert all(p.description for p in good)


BAD = {  # YAML text -> words the error must contain (besides the file's path)
    "task: generate\nseconds: 4\nstepz: 3\n": ["stepz", "unknown key"],
    "task: remix\n": ["task"],
    "task: generate\nseconds: 4\nprompt: '{genre} beat'\n": ["{genre}", "variables"],
    "task: generate\nseconds: 4\nseed: {policy: fixed, value: 3}\nvariations: 3\n":
        ["fixed", "per_variation"],
    "task: generate\nseconds: 4\nkey: H minor\n": ["H minor"],
    "task: generate\nseconds: 4\nbars: 2\n": ["seconds or bars"],
    "task: generate\nseconds: 4\nsteps: 0\n": ["steps"],
    "task: generate\nseconds: 4\nsteps: 4\nsteps: 5\n": ["duplicate", "steps"],
    "task: inpaint\nbars: 2\n": ["region"],
    "task: generate\nseconds: 4\neffects: [{effect: Reverbb}]\n": ["Reverbb", "effects"],
    "task: generate\nseconds: 4\neffects: [{effect: Reverb, rom_size: 0.3}]\n": ["rom_size"],
    "task: generate\nseconds: 4\neffects: [{effect: Reverb, room_size: 7.0}]\n": ["room_size"],
    "task: generate\nseconds: 4\nvariables: {bpm: '120'}\n": ["bpm"],
    "- 1\n- 2\n": ["mapping"],
}


@pytest.mark.parametrize("text", list(BAD), ids=range(len(BAD)))
def test_bad_presets_name_the_file_and_the_key(text: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PresetError) as err:
        load_preset_file(path)
    message = str(err.value)
    assert str(path) in message
    for word in BAD[text]:
        assert word in message, message


def test_prompt_template_variables_and_musical_values() -> None:
    p = preset(prompt="{genre} groove in {key}, {bpm} BPM, {meter} beats",
               variables={"genre": "funk"})
    musical = {"bpm": 118.0, "key": "F#m", "meter": 4}
    assert render_prompt(p, {}, musical) == "funk groove in F# minor, 118 BPM, 4 beats"
    assert render_prompt(p, {"genre": "house"}, musical).startswith("house groove")
    with pytest.raises(PresetError, match="no variable 'mood'"):
        render_prompt(p, {"mood": "dark"}, musical)
    with pytest.raises(PresetError, match="bpm"):
        render_prompt(p, {}, {"key": "C", "meter": 4})  # the DAW sent no tempo
    with pytest.raises(PresetError, match="plain name"):
        preset(prompt="{genre!r}", variables={"genre": "x"})


def test_seed_policies() -> None:
    fixed = preset(seed={"policy": "fixed", "value": 7})
    assert take_seeds(fixed, 1, None) == [7] == take_seeds(fixed, 1, None)
    per = preset(seed={"policy": "per_variation", "value": 100}, variations=3)
    assert take_seeds(per, 3, None) == [100, 101, 102]
    fresh = take_seeds(preset(seed={"policy": "per_variation"}), 3, None)
    assert [s - fresh[0] for s in fresh] == [0, 1, 2]
    rand = preset(seed={"policy": "random"}, variations=4)
    a, b = take_seeds(rand, 4, None), take_seeds(rand, 4, None)
    assert len(set(a)) == 4 and a != b
    assert take_seeds(rand, 2, 50) == [50, 51]  # the request's seed wins: reproducible takes
    with pytest.raises(PresetError):
        take_seeds(fixed, 2, None)


def test_request_overrides_the_preset() -> None:
    p = preset(bars=4.0, seconds=None, steps=30, bpm=100.0, guidance=3.0)
    keys = ("seconds", "bars", "steps", "bpm", "guidance", "start", "end", "grid_lock")
    assert merge_request(p, {"steps": 2}, keys) == {"bars": 4.0, "steps": 2, "bpm": 100.0,
                                                    "guidance": 3.0}
    # a region from the DAW replaces the preset's length entirely
    merged = merge_request(p, {"start": 1.0, "end": 3.0, "bpm": 120.0}, keys)
    assert "bars" not in merged and merged["bpm"] == 120.0


# ---- the CLI --------------------------------------------------------------------------------

def jb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jenbridge", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_cli_presets_list_and_check(tmp_path: Path) -> None:
    r = jb("presets")
    assert r.returncode == 0, r.stderr
    assert all(name in r.stdout for name in NAMES)
    assert jb("presets", "check").returncode == 0
    bad = tmp_path / "oops.yaml"
    bad.write_text("task: generate\nseconds: 2\nguidance: -1\n")
    r = jb("presets", "check", str(bad))
    assert r.returncode == 1 and "oops.yaml" in r.stderr and "guidance" in r.stderr
    r = jb("presets", "list", "--presets-dir", str(tmp_path))
    assert r.returncode == 1 and "oops.yaml" in r.stderr


def test_cli_applies_a_preset_with_overrides(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "riser.wav"
    r = jb("generate", "--model", str(tiny_bundle), "--preset", "riser", "--bpm", "120",
           "--meter", "4", "--bars", "1", "--steps", "2", "--seed", "5", "--variations", "2",
           "--var", "genre=techno", "-o", str(out), "-q")
    assert r.returncode == 0, r.stderr
    for path in (out, tmp_path / "riser_2.wav"):
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        assert (sr, audio.shape) == (48000, (96000, 2))  # 1 bar of 4 at 120 BPM: 2 s
        assert abs(20 * np.log10(np.abs(audio).max()) - -1.0) < 0.01  # the preset's peak_db
    # the preset's task is checked; an unknown variable is refused; nothing is written
    r = jb("generate", "--model", str(tiny_bundle), "--preset", "drum_fill", "-o",
           str(tmp_path / "x.wav"))
    assert r.returncode == 2 and "inpaint preset" in r.stderr
    r = jb("generate", "--model", str(tiny_bundle), "--preset", "riser", "--bpm", "120",
           "--var", "mood=dark", "-o", str(tmp_path / "y.wav"))
    assert r.returncode == 2 and "no variable 'mood'" in r.stderr
    assert not (tmp_path / "x.wav").exists() and not (tmp_path / "y.wav").exists()


# ---- every shipped preset through a real daemon -------------------------------------------

@pytest.fixture(scope="module")
def daemon(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory):
    d = Daemon(tiny_bundle, tmp_path_factory.mktemp("preset_daemon"))
    yield d
    d.stop()


def _request(name: str, daemon: Daemon) -> list[object]:
    """What a DAW script sends with a preset: its region, the session's tempo, meter and key,
    and (to keep CI fast) 2 sampler steps."""
    task = SHIPPED.get(name).task
    args: list[object] = ["preset", name, "bpm", 120.0, "meter", 4, "key", "A minor",
                          "steps", 2]
    if task != "generate":
        args += ["path", str(write_clip(daemon.music, f"{name}.wav", seconds=2.0))]
    if task == "inpaint":
        args += ["start", 0.5, "end", 1.5]
    return args


@pytest.mark.parametrize("name", JOB_PRESETS)
def test_every_preset_runs_in_the_daemon(name: str, client: Client, daemon: Daemon) -> None:
    p = SHIPPED.get(name)
    client.send("/jb/run", f"job-{name}", *_request(name, daemon))
    done = client.final(f"job-{name}", timeout=240)
    assert done[0] == "/jb/done", done
    takes = [m[1] for m in client.log if m[0] == "/jb/take" and m[1][0] == f"job-{name}"]
    assert len(takes) == (p.variations if p.variations > 1 else 0)
    paths = [Path(t[3]) for t in takes] or [Path(done[1][1])]
    assert len({str(q) for q in paths}) == len(paths)
    for path in paths:
        comment = info_fields(parse_wav(path))["ICMT"]
        assert f"preset={name}" in comment
        audio, sr = sf.read(path, dtype="float32", always_2d=True)
        assert np.isfinite(audio).all() and np.abs(audio).max() > 0
        if p.output.peak_db is not None:
            assert abs(20 * np.log10(np.abs(audio).max()) - p.output.peak_db) < 0.01
        if p.task in ("generate", "continue", "extend") and p.bars is not None:
            assert audio.shape[0] == round(p.bars * 4 * 60 / 120 * sr)


def test_preset_effects_shape_the_sound(client: Client, daemon: Daemon) -> None:
    """Same seed with and without the preset's chain: the chain is really applied (lo-fi's
    low-pass takes the top octave away)."""
    spectra = {}
    for fx in (1, 0):
        client.send("/jb/run", f"lofi{fx}", "preset", "lofi_texture", "bpm", 90.0, "steps", 2,
                    "seed", 11, "seconds", 2.0, "effects", fx)
        done = client.final(f"lofi{fx}", timeout=120)
        assert done[0] == "/jb/done", done
        audio, sr = sf.read(done[1][1], dtype="float32", always_2d=True)
        power = np.abs(np.fft.rfft(audio[:, 0])) ** 2
        freqs = np.fft.rfftfreq(audio.shape[0], 1 / sr)
        spectra[fx] = power[freqs > 12000].sum() / power.sum()
    assert spectra[1] < 0.2 * spectra[0], spectra  # (the bit crusher adds some hiss back)


def test_preset_errors_over_osc(client: Client, daemon: Daemon) -> None:
    client.send("/jb/run", "e1", "preset", "no_such_preset")
    assert client.final("e1")[1][1] == "not_found"
    client.send("/jb/generate", "e2", "preset", "drum_fill", "bpm", 120.0)
    err = client.final("e2")[1]
    assert err[1] == "bad_request" and "/jb/run" in err[2]
    client.send("/jb/run", "e3", "preset", "riser", "steps", 2)  # its prompt needs {bpm}
    err = client.final("e3")[1]
    assert err[1] == "bad_request" and "bpm" in err[2]
    client.send("/jb/run", "e4", "preset", "riser", "bpm", 120.0, "var_colour", "red")
    assert "no variable 'colour'" in client.final("e4")[1][2]
    client.send("/jb/preset/info", "i1", "name", "drum_fill")
    info = client.wait(("/jb/preset",), "i1")[1]
    assert info[1:3] == ["drum_fill", "inpaint"] and "genre=funk" in info[5]
    client.send("/jb/run", "ok", "preset", "riser", "bpm", 120.0, "steps", 1, "bars", 1)
    assert client.final("ok")[0] == "/jb/done"  # still serving after the errors


# ---- live-loop presets under JACK ----------------------------------------------------------

@pytest.mark.parametrize("name", LOOP_PRESETS)
def test_loop_presets_play(name: str, tiny_bundle: Path, tmp_path: Path) -> None:
    from jack_tools import HAVE_JACK, jack_server
    from test_daemon_playback import start_daemon

    if not HAVE_JACK:
        pytest.skip("jackd2 and jack-capture not installed")
    with jack_server(f"jenbridge-preset-{name}"):
        d = start_daemon(tiny_bundle, tmp_path, audio_device="system", audio_hostapi="JACK")
        c = d.client()
        try:
            # 1 bar at 120 BPM (2 s: time enough to make the next one on a loaded 2-core CI)
            c.send("/jb/run", "L", "preset", name, "bpm", 120.0, "steps", 1, "iterations", 2,
                   "bars", 1)
            started = c.wait(("/jb/loop/started", "/jb/error"), "L", timeout=120)
            assert started[0] == "/jb/loop/started", started
            assert started[1][3] == round(4 * 60 / 120 * 48000)  # the request's 1 bar
            _, queued, made, repeats, failures, _late, _ = c.wait(("/jb/loop/stopped",), "L",
                                                                  timeout=120)[1]
            assert (queued, made + repeats, failures) == (2, 1, 0)
            nexts = [m[1] for m in c.log if m[0] == "/jb/loop/next"]
            assert [n[1] for n in nexts] == list(range(1 + made))
            assert all(Path(n[2]).is_file() for n in nexts)
        finally:
            c.close()
            d.stop()
