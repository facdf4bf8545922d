"""Tempo, key and meter on every interface: they reach the engine from an OSC request, the CLI
and a preset (the conditions the model was given are written to the file's metadata and printed
by the CLI), the grid lock is reported, and bad values get clear errors everywhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_daemon import Client, Daemon
from test_daemon_outputs import info_fields, parse_wav

ROOT = Path(__file__).resolve().parent.parent
PRESET = """description: test preset with musical defaults
task: generate
prompt: "beat at {bpm} in {key}"
seconds: 0.5
bpm: 96
key: E minor
meter: 3
"""


@pytest.fixture(scope="module")
def presets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("presets")
    (folder / "musical_test.yaml").write_text(PRESET)
    return folder


@pytest.fixture(scope="module")
def daemon(tiny_bundle: Path, presets_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    d = Daemon(tiny_bundle, tmp_path_factory.mktemp("musical_daemon"), "--presets",
               str(presets_dir))
    yield d
    d.stop()


def comment(done: tuple[str, list]) -> str:
    assert done[0] == "/jb/done", done
    return info_fields(parse_wav(Path(done[1][1])))["ICMT"]


def test_osc_conditions_reach_the_engine(client: Client) -> None:
    client.send("/jb/generate", "m1", "seconds", 0.5, "bpm", 120.0, "key", "A minor", "meter",
                3, "steps", 1)
    assert "bpm=120 key=A minor meter=3" in comment(client.final("m1"))
    client.send("/jb/generate", "m2", "seconds", 0.5, "steps", 1)
    assert "bpm=" not in comment(client.final("m2"))  # unset: the null values


def test_preset_conditions_reach_the_engine_and_requests_override(client: Client) -> None:
    client.send("/jb/run", "p1", "preset", "musical_test", "steps", 1)
    text = comment(client.final("p1"))
    assert "bpm=96 key=E minor meter=3" in text and "preset=musical_test" in text
    client.send("/jb/run", "p2", "preset", "musical_test", "steps", 1, "bpm", 140.0)
    done = client.final("p2")
    assert "bpm=140 key=E minor" in comment(done)
    chunks = parse_wav(Path(done[1][1]))
    assert info_fields(chunks)["INAM"] == "beat at 140 in E minor"  # the template saw it too


def test_osc_grid_lock_is_reported(client: Client) -> None:
    client.send("/jb/generate", "g1", "bars", 1, "bpm", 120.0, "meter", 4, "steps", 1)
    done = client.final("g1")
    assert "grid lock to 1 bar(s) of 4 at 120 BPM" in comment(done)
    assert isinstance(done[1][8], float) and done[1][8] > 0  # the stretch ratio
    client.send("/jb/generate", "g2", "bars", 1, "bpm", 120.0, "meter", 4, "steps", 1,
                "grid_lock", 0)
    done = client.final("g2")
    assert "grid lock" not in comment(done) and done[1][8] == 1.0


BAD_OSC = [
    (["bpm", 0.0], "bpm"), (["bpm", -10.0], "bpm"), (["bpm", 1000.0], "bpm"),
    (["key", "H minor"], "H minor"), (["meter", 0], "meter"), (["meter", "7/0x"], "meter"),
    (["bpm", float("nan")], "bpm"),
]


@pytest.mark.parametrize(("extra", "word"), BAD_OSC)
def test_osc_bad_values(extra: list, word: str, client: Client) -> None:
    client.send("/jb/generate", "bad", "seconds", 0.5, *extra)
    reply = client.final("bad")
    assert reply[0] == "/jb/error" and reply[1][1] in ("bad_request", "out_of_range")
    assert word in reply[1][2], reply


def jb(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "jenbridge", *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def test_cli_conditions_and_bad_values(tiny_bundle: Path, presets_dir: Path,
                                       tmp_path: Path) -> None:
    base = ["generate", "--model", str(tiny_bundle), "--steps", "1", "-q"]
    r = jb(*base, "--seconds", "0.5", "--bpm", "120", "--key", "A minor", "--meter", "3",
           "-o", str(tmp_path / "a.wav"))
    assert r.returncode == 0 and "conditions bpm=120 key=A minor meter=3" in r.stderr, r.stderr
    r = jb(*base, "--preset", "musical_test", "--presets-dir", str(presets_dir), "-o",
           str(tmp_path / "b.wav"))
    assert r.returncode == 0 and "conditions bpm=96 key=E minor meter=3" in r.stderr, r.stderr
    for extra, word in ((["--bpm", "0"], "bpm"), (["--bpm", "-3"], "bpm"),
                        (["--bpm", "999"], "bpm"), (["--key", "H minor"], "H minor"),
                        (["--meter", "0"], "meter")):
        out = tmp_path / "bad.wav"
        r = jb(*base, "--seconds", "0.5", *extra, "-o", str(out))
        assert r.returncode == 2 and word in r.stderr, (extra, r.stderr)
        assert not out.exists()


def test_preset_bad_values(tmp_path: Path) -> None:
    from jenbridge.presets import PresetError, load_preset_file

    for line, word in (("bpm: 0", "bpm"), ("bpm: -1", "bpm"), ("key: H minor", "H minor"),
                       ("meter: 0", "meter")):
        path = tmp_path / "p.yaml"
        path.write_text(f"task: generate\nseconds: 1\n{line}\n")
        with pytest.raises(PresetError, match=word):
            load_preset_file(path)
