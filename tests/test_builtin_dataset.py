"""The built-in dataset: clips, manifest, determinism, splits, growth, and real tempo/key/meter.

Builds about a minute of audio (5 s clips) a few times: 10-15 s on 2 shared CPU cores.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("music21")
pytest.importorskip("pedalboard")
sf = pytest.importorskip("soundfile")

from jenbridge.conditions import check_bpm, check_meter, key_code  # noqa: E402
from jenbridge.data.builtin.build import BuildOptions, build, split_of  # noqa: E402
from jenbridge.data.builtin.render import check_renderer  # noqa: E402

try:
    check_renderer()
except ValueError as err:  # no sound font or no libfluidsynth on this machine
    pytest.skip(str(err), allow_module_level=True)

SEED = 1
OPTS = dict(minutes=1.0, seed=SEED, clip_seconds=5.0, max_clips_per_piece=2,
            heldout_fraction=0.3)


def _rows(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    folder = tmp_path_factory.mktemp("builtin") / "a"
    summary = build(BuildOptions(out=str(folder), **OPTS), progress=False)
    return folder, summary


def test_clips_and_manifest(built):
    folder, summary = built
    rows = _rows(folder)
    assert sum(r["seconds"] for r in rows) >= 60
    for r in rows:
        audio, rate = sf.read(str(folder / r["path"]), dtype="float32", always_2d=True)
        assert rate == 48000 and audio.shape == (5 * 48000, 2), (r["path"], audio.shape)
        rms = float(np.sqrt(np.mean(audio ** 2)))
        assert rms > 10 ** (-45 / 20), (r["path"], rms)  # not silent
        assert np.abs(audio[:, 0] - audio[:, 1]).max() > 1e-3, r["path"]  # not mono
        assert np.corrcoef(audio[:, 0], audio[:, 1])[0, 1] < 0.999, r["path"]
        assert isinstance(r["caption"], str) and len(r["caption"]) > 20
        assert check_bpm(r["bpm"]) == r["bpm"] and 20 <= r["bpm"] <= 400
        assert key_code(r["key"]) != 0  # "A minor" style or "none"
        assert check_meter(r["meter"]) >= 1
        assert r["split"] in ("train", "heldout")
        assert r["tags"]["instruments"] and r["tags"]["source"] == r["source"]
    assert {r["source"] for r in rows} == {"procedural", "music21"}
    assert len({r["style"] for r in rows}) >= 4
    assert summary["hours_by_split"]["train"] > 0
    assert summary["render"]["hours_per_cpu_minute"] > 0


def test_training_side_reads_the_manifest(built):
    manifest = pytest.importorskip("jenbridge.data.manifest")
    folder, _ = built
    entries, problems = manifest.read_manifest(folder)
    rows = _rows(folder)
    assert len(entries) == len(rows) and not problems.rejected and problems.bad_tags == 0
    assert all(e.bpm > 0 and e.key > 0 and e.meter > 0 and e.path.is_file() for e in entries)


def test_same_seed_same_dataset_any_worker_count(built, tmp_path):
    folder, _ = built
    other = tmp_path / "b"
    build(BuildOptions(out=str(other), workers=2, **OPTS), progress=False)
    assert (other / "manifest.jsonl").read_text() == (folder / "manifest.jsonl").read_text()
    path = _rows(folder)[-1]["path"]
    a, _ = sf.read(str(folder / path), dtype="float32")
    b, _ = sf.read(str(other / path), dtype="float32")
    assert np.array_equal(a, b)


def test_other_seed_other_dataset(built, tmp_path):
    folder, _ = built
    other = tmp_path / "c"
    build(BuildOptions(out=str(other), **{**OPTS, "seed": SEED + 1, "minutes": 0.4}),
          progress=False)
    mine = {(r["caption"], r["bpm"], r["key"]) for r in _rows(folder)}
    theirs = {(r["caption"], r["bpm"], r["key"]) for r in _rows(other)}
    assert not mine & theirs


def test_heldout_disjoint_and_stable_when_growing(built, tmp_path):
    folder, _ = built
    rows = _rows(folder)
    by_split: dict[str, set[str]] = {"train": set(), "heldout": set()}
    works: dict[str, set[str]] = {"train": set(), "heldout": set()}
    for r in rows:
        by_split[r["split"]].add(r["piece_id"])
        if r["source"] == "music21":
            works[r["split"]].add(r["tags"]["work"])
            assert r["split"] == split_of(r["tags"]["work"], OPTS["heldout_fraction"])
        else:
            assert r["split"] == split_of(r["piece_id"], OPTS["heldout_fraction"])
    assert by_split["heldout"] and by_split["train"]
    assert not by_split["train"] & by_split["heldout"]
    assert not works["train"] & works["heldout"]
    # growing a copy of the folder keeps every earlier clip, byte for byte, with its split
    grown = tmp_path / "grown"
    shutil.copytree(folder, grown)
    summary = build(BuildOptions(out=str(grown), **{**OPTS, "minutes": 1.4}), progress=False)
    assert summary["render"]["pieces_reused"] == len({r["piece_id"] for r in rows})
    assert _rows(grown)[: len(rows)] == rows
    assert sum(r["seconds"] for r in _rows(grown)) >= 84


def test_split_is_a_stable_hash():
    keys = [f"proc-s0-{i:06d}" for i in range(4000)]
    held = [k for k in keys if split_of(k, 0.05) == "heldout"]
    assert 0.03 < len(held) / len(keys) < 0.07
    assert held == [k for k in keys if split_of(k, 0.05) == "heldout"]


def test_reusing_a_folder_with_other_options_is_refused(built):
    folder, _ = built
    with pytest.raises(ValueError, match="clip_seconds"):
        build(BuildOptions(out=str(folder), **{**OPTS, "clip_seconds": 4.0}), progress=False)
    with pytest.raises(ValueError, match="minutes"):
        BuildOptions(out=str(folder), minutes=0).check()


def test_every_style_composes_on_the_grid_of_its_tempo():
    """Every style composes valid notes with no silent bar; drum onsets of quantized styles sit
    on the sixteenth grid of the recorded bpm, a four-on-the-floor kick on every beat."""
    from jenbridge.data.builtin.compose import compose
    from jenbridge.data.builtin.styles import METERS, STYLES

    seen_meters, checked = set(), 0
    for s, name in enumerate(STYLES):
        for k in range(6):
            piece = compose(name, 12.0, np.random.default_rng([s, k]), "t")
            meter = METERS[piece.facts["meter_name"]]
            seen_meters.add(meter.name)
            assert piece.meter == meter.beats and piece.tracks
            notes = [n for t in piece.tracks for n in t.notes]
            assert all(0 <= n.pitch < 128 and 1 <= n.velocity < 128 and n.end > n.start
                       for n in notes)
            bar = piece.meter * 60.0 / piece.bpm
            for b in range(int(12.0 // bar)):  # no silent bar, so no silent clip
                assert any(n.start < (b + 1) * bar and n.end > b * bar for n in notes), name
            if STYLES[name].humanize_ms or piece.facts["swing"]:
                continue
            beat = 60.0 / piece.bpm
            for t in (t for t in piece.tracks if t.is_drum):
                steps = np.array([n.start for n in t.notes]) / (beat / meter.steps_per_beat)
                assert np.abs(steps - np.round(steps)).max() < 1e-3, name
                if piece.facts["patterns"]["drums"] in ("four_on_floor", "techno"):
                    kicks = np.array([n.start for n in t.notes if n.pitch == 36]) / beat
                    assert len(kicks) and np.abs(kicks - np.round(kicks)).max() < 1e-3, name
                    checked += 1
    assert {"4/4", "3/4", "6/8"} <= seen_meters and checked >= 3


def test_every_meter_of_every_style_has_bars_of_the_recorded_length(monkeypatch):
    """Forcing each meter a style allows: bars last meter * 60 / bpm seconds (drums hit bar
    lines), so 7/8, 5/4 and 6/8 pieces carry the meter and tempo the manifest says."""
    from jenbridge.data.builtin import styles
    from jenbridge.data.builtin.compose import compose

    for name, style in list(styles.STYLES.items()):
        for meter_name in style.meters:
            monkeypatch.setitem(styles.STYLES, name, replace(style, meters={meter_name: 1.0}))
            piece = compose(name, 12.0, np.random.default_rng([len(meter_name), 1]), "t")
            assert piece.facts["meter_name"] == meter_name
            bar = piece.meter * 60.0 / piece.bpm
            for t in (t for t in piece.tracks if t.is_drum):
                starts = np.array([n.start for n in t.notes])
                bars = {int(x // bar) for x in starts}
                on_line = {int(round(x / bar)) for x in starts
                           if abs(x / bar - round(x / bar)) * bar < 0.02}
                assert len(on_line & bars) >= 0.8 * len(bars), (name, meter_name)


def test_tempo_estimate_agrees_with_recorded_bpm():
    """librosa's onset-autocorrelation tempo (the beat tracker's first stage) on a house clip."""
    librosa = pytest.importorskip("librosa")
    import soxr

    from jenbridge.data.builtin.compose import compose
    from jenbridge.data.builtin.render import render_piece

    piece = compose("house", 12.0, np.random.default_rng([3, 0]), "t")
    audio = render_piece(piece, check_renderer())
    mono = soxr.resample(audio.mean(axis=0), 48000, 22050)
    envelope = librosa.onset.onset_strength(y=mono, sr=22050)
    est = float(librosa.feature.tempo(onset_envelope=envelope, sr=22050, start_bpm=110.0)[0])
    ratios = [est / piece.bpm * m for m in (0.5, 1.0, 2.0)]
    assert min(abs(r - 1) for r in ratios) < 0.04, (est, piece.bpm)


def test_cli_builds(tmp_path, capsys):
    from jenbridge.cli import main

    out = tmp_path / "cli"
    code = main(["data", "builtin", "--out", str(out), "--minutes", "0.1", "--clip-seconds",
                 "3", "--seed", "5", "--quiet"])
    assert code == 0 and (out / "summary.json").is_file()
    assert "hours:" in capsys.readouterr().out
    assert main(["data", "builtin", "--out", str(out), "--minutes", "0", "--quiet"]) == 2
