"""The daemon's Broadcast-WAV writer: read back with soundfile and with a small RIFF parser."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jenbridge.daemon.outputs import BEXT_FIXED, Metadata, write_output


def parse_wav(path: Path) -> dict[str, bytes]:
    """Top-level RIFF chunks of a WAV file: {tag: payload} (LIST chunks keyed 'LIST')."""
    raw = path.read_bytes()
    assert raw[:4] == b"RIFF" and raw[8:12] == b"WAVE", raw[:12]
    assert struct.unpack("<I", raw[4:8])[0] == len(raw) - 8
    chunks, at = {}, 12
    while at < len(raw):
        tag, size = raw[at : at + 4].decode("ascii"), struct.unpack("<I", raw[at + 4 : at + 8])[0]
        chunks[tag] = raw[at + 8 : at + 8 + size]
        at += 8 + size + (size & 1)
    assert at == len(raw)
    return chunks


def bext_fields(chunks: dict[str, bytes]) -> dict[str, object]:
    """Description, originator, time reference and version of a bext chunk (EBU Tech 3285)."""
    b = chunks["bext"]
    assert len(b) >= BEXT_FIXED
    low, high, version = struct.unpack("<IIH", b[338:348])
    return {"description": b[:256].rstrip(b"\0").decode("ascii"),
            "originator": b[256:288].rstrip(b"\0").decode("ascii"),
            "reference": b[288:320].rstrip(b"\0").decode("ascii"),
            "date": b[320:330].decode("ascii"), "time_reference": low | high << 32,
            "version": version, "history": b[BEXT_FIXED:].decode("ascii")}


def info_fields(chunks: dict[str, bytes]) -> dict[str, str]:
    """LIST/INFO sub-chunks as {tag: UTF-8 text}."""
    body = chunks["LIST"]
    assert body[:4] == b"INFO"
    out, at = {}, 4
    while at < len(body):
        tag, size = body[at : at + 4].decode("ascii"), struct.unpack("<I", body[at + 4 : at + 8])[0]
        out[tag] = body[at + 8 : at + 8 + size].rstrip(b"\0").decode("utf-8")
        at += 8 + size + (size & 1)
    return out


def _meta(ref: int, prompt: str = "warm lo-fi piano, café") -> Metadata:
    return Metadata(ref, prompt, "inpaint", 2**62 + 5, "tiny", "job/1", "jenbridge 0.1.0")


@pytest.mark.parametrize(("fmt", "subtype", "tol"), [("float32", "FLOAT", 0.0),
                                                     ("pcm24", "PCM_24", 1.5 / 2**23)])
@pytest.mark.parametrize("channels", [1, 2])
def test_roundtrip_and_chunks(tmp_path: Path, fmt: str, subtype: str, tol: float,
                              channels: int) -> None:
    rng = np.random.default_rng(0)
    audio = (0.5 * rng.standard_normal((channels, 4411))).clip(-1, 1).astype(np.float32)
    ref = 5 * 2**32 + 123456  # past 32 bits: TimeReferenceHigh must be written
    path = write_output(tmp_path, "job/1", "inpaint", audio, 44100, fmt, _meta(ref))
    assert path.name == "job_1_inpaint_1.wav"
    info = sf.info(str(path))
    assert (info.samplerate, info.channels, info.frames, info.subtype) == \
        (44100, channels, 4411, subtype)
    back, _ = sf.read(str(path), dtype="float32", always_2d=True)
    assert np.abs(back.T - audio).max() <= tol
    chunks = parse_wav(path)
    assert next(iter(chunks)) == "fmt " and list(chunks)[-1] == "data"
    bext = bext_fields(chunks)
    assert bext["time_reference"] == ref and bext["version"] == 1
    assert bext["description"].startswith(f"jenbridge inpaint seed={2**62 + 5} model=tiny")
    assert bext["description"].endswith("prompt=warm lo-fi piano, caf?")  # ASCII only in bext
    assert bext["originator"] == "jenbridge 0.1.0" and bext["reference"] == "job/1"
    info_ = info_fields(chunks)
    assert info_["INAM"] == "warm lo-fi piano, café"  # the full prompt, UTF-8
    assert info_["ICMT"] == f"task=inpaint; seed={2**62 + 5}; model=tiny; job=job/1"


def test_fresh_names_never_overwrite(tmp_path: Path) -> None:
    audio = np.zeros((2, 100), np.float32)
    (tmp_path / "a_generate_1.wav").write_bytes(b"keep me")
    paths = [write_output(tmp_path, "a", "generate", audio, 48000, "float32", _meta(0))
             for _ in range(3)]
    assert [p.name for p in paths] == ["a_generate_2.wav", "a_generate_3.wav",
                                       "a_generate_4.wav"]
    assert (tmp_path / "a_generate_1.wav").read_bytes() == b"keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"a_generate_{n}.wav"
                                                          for n in range(1, 5)]


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    bad = np.zeros((2, 10), np.float32)
    with pytest.raises(ValueError, match="wav format"):
        write_output(tmp_path, "a", "generate", bad, 48000, "mp3", _meta(0))
    with pytest.raises(ValueError, match="64 bits"):
        write_output(tmp_path, "a", "generate", bad, 48000, "float32", _meta(2**64))
    assert list(tmp_path.iterdir()) == []
