"""`jenbridge generate | inpaint | continue | extend | vary` end to end on the tiny bundle: files
in, files out, atomic writes that never overwrite without --overwrite, and exit code 2 with a
message on bad arguments."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jenbridge import cli
from jenbridge.commands import generate as command


@pytest.fixture(autouse=True)
def commands(monkeypatch: pytest.MonkeyPatch) -> None:
    """The five rows of jenbridge.commands.generate.CLI_ROWS in the CLI table."""
    for name, row in command.CLI_ROWS.items():
        monkeypatch.setitem(cli.COMMANDS, name, row)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """0.6 s of stereo at 44.1 kHz as 16-bit FLAC (a file that is not the model's format)."""
    t = np.arange(round(0.6 * 44100)) / 44100
    audio = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.3 * np.sin(2 * np.pi * 331 * t)])
    path = tmp_path_factory.mktemp("cli") / "clip.flac"
    sf.write(path, audio.T, 44100, subtype="PCM_16")
    return path


def jb(*argv: object) -> int:
    """Run the CLI in-process; the exit code (argparse's own errors exit through SystemExit)."""
    try:
        return cli.main([str(a) for a in argv])
    except SystemExit as stop:
        return int(stop.code or 0)


def test_generate_to_wav(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "gen.wav"
    assert jb("generate", "--model", tiny_bundle, "-p", "piano", "--seconds", 0.3, "--seed", 3,
              "--bpm", 100, "--key", "A minor", "--meter", "3/4", "-o", out) == 0
    audio, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == 48000 and audio.shape == (14400, 2) and np.abs(audio).max() > 0
    assert "seed 3" in capsys.readouterr().out
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp file left


def test_generate_options_and_formats(tiny_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "gen.ogg"
    assert jb("generate", "--model", tiny_bundle, "--seconds", 0.3, "--sample-rate", 44100,
              "--channels", 1, "--steps", 2, "--sampler", "ddim", "--providers", "cpu", "-q",
              "-o", out) == 0
    info = sf.info(out)
    assert (info.samplerate, info.channels, info.format) == (44100, 1, "OGG")


def test_inpaint_continue_extend_vary(tiny_bundle: Path, clip: Path, tmp_path: Path) -> None:
    src, _ = sf.read(clip, dtype="float32", always_2d=True)
    out = tmp_path / "inpaint.wav"
    assert jb("inpaint", clip, "--model", tiny_bundle, "--region", "0.1:0.2", "--region",
              "0.4:0.5", "-p", "fill", "-q", "-o", out) == 0
    got, sr = sf.read(out, dtype="float32", always_2d=True)
    assert sr == 44100 and got.shape == src.shape
    assert np.array_equal(got[: round(0.09 * sr) - 1], src[: round(0.09 * sr) - 1])
    assert not np.array_equal(got[round(0.1 * sr) : round(0.2 * sr)],
                              src[round(0.1 * sr) : round(0.2 * sr)])

    out = tmp_path / "continue.flac"
    assert jb("continue", clip, "--model", tiny_bundle, "--seconds", 0.25, "-q", "-o", out) == 0
    got, _ = sf.read(out, dtype="float32", always_2d=True)
    assert got.shape == (src.shape[0] + round(0.25 * 44100), 2)
    assert np.array_equal(got[: src.shape[0]], src)  # 16-bit input survives 24-bit FLAC exactly

    out = tmp_path / "extend.wav"
    assert jb("extend", clip, "--model", tiny_bundle, "--seconds", 0.2, "-q", "-o", out) == 0
    got, _ = sf.read(out, dtype="float32", always_2d=True)
    assert got.shape == (src.shape[0] + round(0.2 * 44100), 2)
    assert np.array_equal(got[round(0.2 * 44100) :], src)

    out = tmp_path / "vary.wav"
    assert jb("vary", clip, "--model", tiny_bundle, "--strength", 0, "-q", "-o", out) == 0
    got, _ = sf.read(out, dtype="float32", always_2d=True)
    assert np.array_equal(got, src)


def test_refuses_to_overwrite(tiny_bundle: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "keep.wav"
    out.write_bytes(b"precious")
    assert jb("generate", "--model", tiny_bundle, "--seconds", 0.1, "-q", "-o", out) == 2
    assert "already exists" in capsys.readouterr().err and out.read_bytes() == b"precious"
    assert jb("generate", "--model", tiny_bundle, "--seconds", 0.1, "-q", "--overwrite",
              "-o", out) == 0
    assert sf.info(out).frames == 4800


def test_write_atomic_never_clobbers_a_late_file(tmp_path: Path) -> None:
    out = tmp_path / "late.wav"
    command.check_output(out, overwrite=False)  # free when checked ...
    out.write_bytes(b"appeared meanwhile")  # ... taken before the write
    with pytest.raises(ValueError, match="already exists"):
        command.write_atomic(out, np.zeros((2, 10), np.float32), 48000, overwrite=False)
    assert out.read_bytes() == b"appeared meanwhile"
    assert [p.name for p in tmp_path.iterdir()] == ["late.wav"]


BAD_ARGS = [
    (["generate", "--seconds", "-1"], "positive"),
    (["generate", "--seconds", "1", "--bpm", "10"], "bpm"),
    (["generate", "--seconds", "1", "--key", "H major"], "key"),
    (["generate", "--seconds", "1", "--meter", "0"], "meter"),
    (["generate", "--seconds", "1", "--sampler", "euler"], "sampler"),
    (["generate", "--seconds", "1", "--steps", "0"], "steps"),
    (["generate", "--seconds", "1", "--providers", "warp"], "execution provider"),
    (["inpaint", "CLIP", "--region", "0.5:0.2"], "reversed"),
    (["inpaint", "CLIP", "--region", "0.5:9"], "outside"),
    (["inpaint", "CLIP", "--region", "abc"], "START:END"),
    (["continue", "missing.wav", "--seconds", "1"], "does not exist"),
    (["vary", "CLIP", "--strength", "2"], "strength"),
]


@pytest.mark.parametrize("argv,words", BAD_ARGS, ids=[w for _, w in BAD_ARGS])
def test_bad_arguments_exit_2(tiny_bundle: Path, clip: Path, tmp_path: Path, capsys,
                              argv: list[str], words: str) -> None:
    argv = [str(clip) if a == "CLIP" else str(tmp_path / a) if a.endswith(".wav") else a
            for a in argv]
    assert jb(*argv, "--model", tiny_bundle, "-q", "-o", tmp_path / "out.wav") == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "out.wav").exists()


def test_bad_output_and_missing_default_bundle(tiny_bundle: Path, tmp_path: Path, capsys,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    assert jb("generate", "--model", tiny_bundle, "--seconds", 0.1, "-o", tmp_path / "x.mp4") == 2
    assert "unsupported extension" in capsys.readouterr().err
    assert jb("generate", "--seconds", 0.1, "-o", tmp_path / "no" / "x.wav") == 2
    assert "does not exist" in capsys.readouterr().err
    monkeypatch.setattr(command, "DEFAULT_BUNDLE", tmp_path / "absent")
    assert jb("generate", "--seconds", 0.1, "-o", tmp_path / "x.wav") == 2
    assert "pass --model" in capsys.readouterr().err

