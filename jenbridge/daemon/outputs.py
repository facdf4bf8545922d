"""Broadcast-WAV output files, written atomically under a fresh name.

Why a writer of our own: a DAW places an imported file at its Broadcast-WAV `bext`
TimeReference (REAPER's InsertMedia, Pro Tools' "spot to original time stamp", Nuendo), so the
daemon must write that chunk. libsndfile can write `bext`, but python-soundfile does not expose
the `sf_command(SFC_SET_BROADCAST_INFO)` call that does it, and scipy's and the standard
library's wave writers write no extra chunks. The RIFF layout is small and fixed, so it is
written here directly (numpy for the samples, struct for the headers):

  RIFF <size> WAVE
    fmt   16 bytes (PCM, format 1, 24-bit) or 18 bytes (IEEE float, format 3, cbSize 0)
    fact  4 bytes: frames per channel (required for non-PCM data)
    bext  602 bytes + CodingHistory (EBU Tech 3285 v1): Description (256 ASCII), Originator
          (32), OriginatorReference (32), OriginationDate (10, yyyy-mm-dd), OriginationTime
          (8, hh-mm-ss), TimeReference (uint64 low/high: the first sample's position on the
          time line, in samples since midnight / the session start), Version (1), UMID (64),
          loudness fields (5 x int16, zero), 180 reserved bytes
    LIST INFO: INAM (the prompt), ICMT (task, seed, model, job), ISFT (jenbridge version)
    data  interleaved little-endian samples

Every chunk is padded to an even size (RIFF rule). Files stay under 4 GiB (RIFF's 32-bit sizes;
the daemon's max_request_seconds keeps them far below). `write_output` writes a temporary file
in the output folder, then hard-links it to `<job>_<task>_<n>.wav` with the first free n
(os.link fails if the name exists, so an existing file is never overwritten), and removes the
temporary file in every case, so an interrupted write leaves nothing behind.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMATS = ("float32", "pcm24")
BEXT_FIXED = 602  # bytes before CodingHistory
MAX_NAMES = 100000  # `_n` suffixes tried before giving up
TMP_PREFIX = ".jb-"  # temporary files start with this (and end with .tmp)


@dataclass(frozen=True)
class Metadata:
    """What goes into the file besides the samples."""

    time_reference: int  # samples since the time line's origin at the file's rate
    prompt: str
    task: str
    seed: int
    model: str
    job_id: str
    software: str
    notes: str = ""  # e.g. "preset=...; take=2/4; grid lock ..." (ICMT and the bext text)


def _fixed(text: str, size: int) -> bytes:
    """ASCII, NUL-padded to `size` bytes (non-ASCII characters become '?')."""
    return text.encode("ascii", "replace")[:size].ljust(size, b"\0")


def _chunk(tag: bytes, payload: bytes) -> bytes:
    pad = b"\0" if len(payload) % 2 else b""
    return tag + struct.pack("<I", len(payload)) + payload + pad


def bext_payload(meta: Metadata, now: dt.datetime | None = None) -> bytes:
    """The 602-byte bext body plus a one-line CodingHistory."""
    now = now or dt.datetime.now()
    if not 0 <= meta.time_reference < 2**64:
        raise ValueError(f"time reference {meta.time_reference} does not fit 64 bits")
    notes = f" {meta.notes}" if meta.notes else ""
    description = (f"jenbridge {meta.task} seed={meta.seed} model={meta.model}{notes} "
                   f"prompt={meta.prompt}")
    body = b"".join([
        _fixed(description, 256), _fixed(meta.software, 32), _fixed(meta.job_id, 32),
        _fixed(now.strftime("%Y-%m-%d"), 10), _fixed(now.strftime("%H-%M-%S"), 8),
        struct.pack("<IIH", meta.time_reference & 0xFFFFFFFF, meta.time_reference >> 32, 1),
        bytes(64), struct.pack("<5h", 0, 0, 0, 0, 0), bytes(180),
    ])
    assert len(body) == BEXT_FIXED, len(body)
    return body + b"A=PCM,T=jenbridge\r\n"


def info_payload(meta: Metadata) -> bytes:
    """LIST/INFO body (UTF-8 text, NUL-terminated): the full prompt survives here."""
    comment = f"task={meta.task}; seed={meta.seed}; model={meta.model}; job={meta.job_id}"
    if meta.notes:
        comment += f"; {meta.notes}"
    fields = [(b"INAM", meta.prompt), (b"ICMT", comment), (b"ISFT", meta.software)]
    return b"INFO" + b"".join(_chunk(tag, value.encode("utf-8") + b"\0")
                              for tag, value in fields)


def wav_bytes(audio: np.ndarray, sr: int, fmt: str, meta: Metadata) -> Iterator[bytes]:
    """The file as byte blocks: headers first, then the samples. audio: float32 (C, N)."""
    if fmt not in FORMATS:
        raise ValueError(f"wav format must be one of {FORMATS}, got {fmt!r}")
    channels, frames = audio.shape
    if fmt == "float32":
        data = np.ascontiguousarray(audio.T, dtype="<f4").tobytes()
        width, code = 4, 3
        fmt_body = struct.pack("<HHIIHHH", code, channels, sr, sr * channels * width,
                               channels * width, 8 * width, 0)
    else:
        ints = np.ascontiguousarray(np.round(np.clip(audio.T, -1.0, 1.0) * 8388607.0), "<i4")
        data = ints.view(np.uint8).reshape(-1, 4)[:, :3].tobytes()  # low 3 bytes, LE
        width, code = 3, 1
        fmt_body = struct.pack("<HHIIHH", code, channels, sr, sr * channels * width,
                               channels * width, 8 * width)
    head = _chunk(b"fmt ", fmt_body)
    if code == 3:
        head += _chunk(b"fact", struct.pack("<I", frames))
    head += _chunk(b"bext", bext_payload(meta)) + _chunk(b"LIST", info_payload(meta))
    pad = b"\0" if len(data) % 2 else b""
    riff_size = 4 + len(head) + 8 + len(data) + len(pad)
    if riff_size >= 2**32:
        raise ValueError("output too large for a RIFF file (4 GiB)")
    yield b"RIFF" + struct.pack("<I", riff_size) + b"WAVE" + head
    yield b"data" + struct.pack("<I", len(data))
    yield data + pad


def safe_stem(text: str) -> str:
    """A job id made safe for a file name: letters, digits, '-' and '_' (others become '_')."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", text)[:64]
    return stem or "job"


def write_output(folder: Path, job_id: str, task: str, audio: np.ndarray, sr: int, fmt: str,
                 meta: Metadata) -> Path:
    """Write a new `<job>_<task>_<n>.wav` in `folder` atomically; return its path."""
    tmp = folder / f"{TMP_PREFIX}{os.getpid()}-{safe_stem(job_id)}.tmp"
    try:
        with open(tmp, "wb") as f:
            for block in wav_bytes(audio, sr, fmt, meta):
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
        stem = f"{safe_stem(job_id)}_{task}"
        for n in range(1, MAX_NAMES + 1):
            path = folder / f"{stem}_{n}.wav"
            try:
                os.link(tmp, path)
                return path
            except FileExistsError:
                continue
            except OSError:  # no hard links on this file system: claim the name, then replace
                try:
                    fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
                except FileExistsError:
                    continue
                os.close(fd)
                os.replace(tmp, path)
                return path
        raise OSError(f"no free output name {stem}_<n>.wav in {folder}")
    finally:
        tmp.unlink(missing_ok=True)
