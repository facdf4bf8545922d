"""Shared test fixtures: the tiny config and a short clip of real (synthesized) music."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jenbridge.config import ModelConfig, load_config

CLIP_RATE = 48000
CLIP_SECONDS = 3.0
PAN = {"piano": -0.4, "bass": 0.0, "drums": 0.25}  # -1 left .. +1 right


def _sound_font() -> Path | None:
    """FluidR3 GM (Debian fluid-soundfont-gm) if installed, else pretty_midi's TimGM6mb."""
    system = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
    if system.is_file():
        return system
    try:
        import pretty_midi
    except ImportError:
        return None
    bundled = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    return bundled if bundled.is_file() else None


def _song(seconds: float):
    """Two bars of pop at 120 bpm: piano chords (panned left), bass (centre), drums (channel 10)."""
    import pretty_midi

    pm = pretty_midi.PrettyMIDI(initial_tempo=120.0)
    piano = pretty_midi.Instrument(program=0, name="piano")
    bass = pretty_midi.Instrument(program=33, name="bass")
    drums = pretty_midi.Instrument(program=0, is_drum=True, name="drums")
    beat = 0.5
    chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)]  # C Am F G
    for i, chord in enumerate(chords * 2):
        start = i * 2 * beat
        if start >= seconds:
            break
        for pitch in chord:
            piano.notes.append(pretty_midi.Note(90, pitch, start, start + 2 * beat - 0.05))
        root = chord[0] - 24
        for j in range(4):  # eighth notes on the root, accent on the beat
            t = start + j * beat / 2
            bass.notes.append(
                pretty_midi.Note(100 if j % 2 == 0 else 75, root, t, t + beat / 2 - 0.02)
            )
    for k in range(int(seconds / (beat / 2))):
        t = k * beat / 2
        drums.notes.append(pretty_midi.Note(70, 42, t, t + 0.05))  # closed hi-hat on eighths
        if k % 4 == 0:
            drums.notes.append(pretty_midi.Note(110, 36, t, t + 0.1))  # kick on 1 and 3
        if k % 4 == 2:
            drums.notes.append(pretty_midi.Note(100, 38, t, t + 0.1))  # snare on 2 and 4
    # a little panning (MIDI CC 10, used by the CLI path) matching PAN
    for inst in (piano, bass, drums):
        cc = round(64 + 63 * PAN[inst.name])
        inst.control_changes.append(pretty_midi.ControlChange(10, cc, 0.0))
    pm.instruments.extend([piano, bass, drums])
    return pm


def _render(pm, sf2: Path, workdir: Path) -> np.ndarray:
    """Render to (2, N) float32 at CLIP_RATE: pyfluidsynth if importable, else fluidsynth CLI."""
    try:
        import fluidsynth  # noqa: F401  (pyfluidsynth, which pretty_midi drives)
    except ImportError:
        pass
    else:
        # pretty_midi renders mono: render each instrument and pan it (constant power)
        parts = [
            (inst.fluidsynth(fs=CLIP_RATE, synthesizer=str(sf2)), PAN[inst.name])
            for inst in pm.instruments
        ]
        n = max(len(wave) for wave, _ in parts)
        out = np.zeros((2, n), np.float32)
        for wave, pan in parts:
            angle = (pan + 1) * np.pi / 4
            out[0, : len(wave)] += np.cos(angle) * wave
            out[1, : len(wave)] += np.sin(angle) * wave
        return out
    exe = shutil.which("fluidsynth")
    if exe is None:
        pytest.skip("neither pyfluidsynth nor the fluidsynth CLI is installed")
    import soundfile as sf

    mid, wav = workdir / "clip.mid", workdir / "clip.wav"
    pm.write(str(mid))
    cmd = [
        exe,
        "-ni",
        "-q",
        "-g",
        "0.5",
        "-r",
        str(CLIP_RATE),
        "-O",
        "float",
        "-F",
        str(wav),
        str(sf2),
        str(mid),
    ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
    audio, rate = sf.read(str(wav), dtype="float32", always_2d=True)  # (N, 2)
    assert rate == CLIP_RATE, rate
    return audio.T.copy()


@pytest.fixture(scope="session")
def music_clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[np.ndarray, int]:
    """(audio float32 (2, N), 48000): 3 s of stereo music from a General MIDI sound font."""
    pytest.importorskip("pretty_midi")
    sf2 = _sound_font()
    if sf2 is None:
        pytest.skip("no General MIDI sound font found")
    audio = _render(_song(CLIP_SECONDS), sf2, tmp_path_factory.mktemp("music_clip"))
    n = int(CLIP_SECONDS * CLIP_RATE)
    audio = np.pad(audio, ((0, 0), (0, max(0, n - audio.shape[1]))))[:, :n]
    peak = float(np.abs(audio).max())
    if peak < 1e-3:
        raise RuntimeError(f"the rendered clip is silent (peak {peak}); sound font {sf2}")
    return (audio * (0.5 / peak)).astype(np.float32), CLIP_RATE  # peak-normalized to -6 dBFS


@pytest.fixture(scope="session")
def tiny_config() -> ModelConfig:
    return load_config("tiny")


@pytest.fixture(scope="session")
def dataset(tmp_path_factory: pytest.TempPathFactory, music_clip) -> Path:
    """Good clips (one at 44.1 kHz, one mono, one FLAC) plus every kind of broken input."""
    audio, sr = music_clip
    root = tmp_path_factory.mktemp("dataset")
    rows = []
    for i, shift in enumerate([0, 7000, 19000, 31000]):
        clip = np.roll(audio, shift, axis=1)
        name = f"good{i}.flac" if i == 3 else f"good{i}.wav"
        if i == 1:  # another sample rate: kept and resampled
            import soxr

            sf.write(root / name, soxr.resample(clip.T, sr, 44100), 44100)
        elif i == 2:  # mono: becomes stereo
            sf.write(root / name, clip.mean(axis=0), sr)
        else:
            sf.write(root / name, clip.T, sr)
        rows.append(
            {
                "path": name,
                "caption": f"piano and bass, take {i}",
                "bpm": 120,
                "key": "C major",
                "meter": 4,
            }
        )
    (root / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunk" + bytes(range(200)))
    sf.write(root / "silent.wav", np.zeros((CLIP_RATE * 2, 2), np.float32), CLIP_RATE)
    sf.write(root / "short.wav", audio[:, :1000].T, CLIP_RATE)
    sf.write(root / "nocaption.wav", audio.T, CLIP_RATE)
    rows += [
        {"path": "corrupt.wav", "caption": "broken"},
        {"path": "silent.wav", "caption": "nothing"},
        {"path": "short.wav", "caption": "too short"},
        {"path": "nocaption.wav", "bpm": "fast", "key": "H minor"},
        {"path": "missing.wav", "caption": "not there"},
    ]
    with (root / "manifest.jsonl").open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
        f.write("{not json\n")
    return root


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model bundle (jenbridge/bundle.py) of the `tiny` config with random weights, exported
    once per session (~30 s on 2 cores, nearly all of it the ONNX exporter); treat as read-only.

    The weights are `onnx_export.sources.build_random(load_config("tiny"), seed=0)` (the seed is
    in the manifest's training.seed), so a test can rebuild the torch models it came from.
    fp32 weights, ~95 MB (91 of them the MiniLM text encoder).
    """
    pytest.importorskip("torch")
    pytest.importorskip("onnxscript")
    from onnx_export.bundle_writer import export_bundle
    from onnx_export.sources import build_random

    out = tmp_path_factory.mktemp("tiny_bundle") / "tiny"
    export_bundle(build_random(load_config("tiny"), seed=0), out)
    return out


@pytest.fixture()
def client(daemon):
    """A python-osc client of the module's `daemon` fixture (test_daemon.Daemon): replies come
    back to its own socket; closed after the test."""
    c = daemon.client()
    yield c
    c.close()
