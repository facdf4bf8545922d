"""Evaluation clips: consecutive parts of one piece are joined into longer excerpts.

A real dataset folder (WAV files + manifest.jsonl) cut from one known signal per piece, read
back through jenbridge.evaluation.clips as the continuation suite reads it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from jenbridge.data.manifest import read_manifest
from jenbridge.evaluation.clips import load_clips

SR = 48000
PART = 1.0  # seconds per file


def _piece(seed: int, parts: int) -> np.ndarray:
    """A signal whose every sample differs from its neighbours' file: a join in the wrong order
    or with a gap cannot equal it."""
    rng = np.random.default_rng(seed)
    return (0.3 * rng.standard_normal((2, parts * int(PART * SR)))).astype(np.float32)


def _write(root: Path, pieces: dict[str, tuple[np.ndarray, list[int], str]],
           extra_rows: list[dict] | None = None) -> None:
    """pieces: id -> (audio, the part indices written, split)."""
    n = int(PART * SR)
    rows = []
    for pid, (audio, parts, split) in pieces.items():
        for k in parts:
            name = f"{pid}-{k}.wav"
            sf.write(root / name, audio[:, k * n:(k + 1) * n].T, SR, subtype="FLOAT")
            rows.append({"path": name, "caption": f"{pid} part {k}", "bpm": 120, "key": "C major",
                         "meter": 4, "split": split, "piece_id": pid, "clip": k,
                         "tags": {"style": pid}})
    rows += extra_rows or []
    (root / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")


def test_consecutive_parts_join_into_excerpts_without_overlap(tmp_path: Path) -> None:
    a, b, c = _piece(1, 5), _piece(2, 3), _piece(3, 3)
    _write(tmp_path, {"a": (a, [0, 1, 2, 3, 4], "heldout"),
                      "b": (b, [0, 2], "heldout"),       # part 1 missing: never joined over
                      "c": (c, [0, 1, 2], "train")})     # other split: not evaluation clips
    clips, _, info = load_clips(tmp_path, SR, 2, count=10, seconds=2.0, probe_per_class=0)
    n = int(2 * SR)
    # piece a gives [0, 1] and [2, 3]; part 4 is left alone (too short); b's parts have gaps
    assert [Path(c.path).name for c in clips] == ["a-0.wav", "a-2.wav"]
    np.testing.assert_array_equal(clips[0].audio, a[:, :n])
    np.testing.assert_array_equal(clips[1].audio, a[:, n:2 * n])
    assert clips[0].caption == "a part 0" and clips[0].label == "a" and clips[0].bpm == 120
    assert info["skipped"] == {"shorter than 2 s": 4}  # a-4, b-0, b-2 and (probe pool) c-2
    # a length that fits in one file reads each file on its own, as before
    single, _, _ = load_clips(tmp_path, SR, 2, count=10, seconds=1.0, probe_per_class=0)
    assert len(single) == 7 and all(c.audio.shape == (2, SR) for c in single)
    # longer than any piece: nothing to evaluate is a clear error
    with pytest.raises(ValueError, match="no usable clips of at least 6 s"):
        load_clips(tmp_path, SR, 2, count=10, seconds=6.0, probe_per_class=0)


def test_part_fields_need_both_piece_and_a_whole_index(tmp_path: Path) -> None:
    sf.write(tmp_path / "x.wav", np.zeros((SR, 2), np.float32), SR)
    rows = [{"path": "x.wav", "caption": "x", "piece_id": "p", "clip": 0},
            {"path": "x.wav", "caption": "x", "piece_id": "p", "clip": "3"},  # CSV-style
            {"path": "x.wav", "caption": "x", "clip": 2},                      # no piece
            {"path": "x.wav", "caption": "x", "piece_id": "p", "clip": -1},
            {"path": "x.wav", "caption": "x", "piece_id": "p", "clip": 1.5},
            {"path": "x.wav", "caption": "x", "piece_id": "p", "clip": True}]
    (tmp_path / "manifest.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    entries, _ = read_manifest(tmp_path)
    assert [(e.piece, e.part) for e in entries] == [("p", 0), ("p", 3), ("", -1), ("", -1),
                                                    ("", -1), ("", -1)]


def test_continuation_suite_runs_on_the_joined_excerpts(tiny_bundle: Path,
                                                         tmp_path: Path) -> None:
    """`jenbridge eval --continue-seconds` through the runner: the other suites keep their
    1-s clips, the continuation suite gets the 2-s excerpts (1.2 s context + 0.8 s)."""
    pytest.importorskip("librosa")
    pytest.importorskip("matplotlib")
    from jenbridge.evaluation.context import Settings
    from jenbridge.evaluation.runner import EvalRequest, evaluate

    data = tmp_path / "data"
    data.mkdir()
    _write(data, {"a": (_piece(1, 4), [0, 1, 2, 3], "heldout")})
    settings = Settings(seconds=1.0, steps=2, grooves=(0.0,), continue_seconds=2.0)
    report = evaluate(EvalRequest(model=tiny_bundle, data=data, out=tmp_path / "eval",
                                  suites=("autoencoder", "continue"), clips=4,
                                  settings=settings, threads=1), log=lambda _: None)
    assert report["data"]["clips"] == 4  # four 1-s clips for the autoencoder suite
    assert report["suites"]["autoencoder"]["clips"] == 4
    cont = report["suites"]["continue"]
    assert report["data"]["continue"]["clips"] == cont["clips"] == 2
    assert cont["context_seconds"] == pytest.approx(1.2)
    assert cont["continuation_seconds"] == pytest.approx(0.8)
    assert cont["metrics"]["mel_to_truth"]["n"]["model"] == 2
