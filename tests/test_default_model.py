"""The shipped default model: inside the package, small enough, intact, and what `jenbridge
serve` and the CLI use when no model is named."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
from test_daemon import Client, free_port

from jenbridge.bundle import read_manifest
from jenbridge.daemon.config import DEFAULT_BUNDLE

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(not (DEFAULT_BUNDLE / "manifest.json").is_file(),
                                reason="no shipped model bundle yet")


def test_shipped_bundle_is_small_and_intact() -> None:
    manifest = read_manifest(DEFAULT_BUNDLE, verify=True)  # every file's sha256
    size = sum(f.stat().st_size for f in DEFAULT_BUNDLE.iterdir())
    assert size <= 80e6, size
    assert manifest.name == "small" and manifest.weights_dtype == "int8"
    assert manifest.training.get("diffusion_steps", 0) > 0
    assert manifest.training.get("autoencoder_steps", 0) > 0


def test_cli_uses_it_without_a_model(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "jenbridge", "generate", "--seconds", "1",
                        "--steps", "2", "--seed", "1", "-q", "-o", str(tmp_path / "a.wav")],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 0, r.stderr
    audio, sr = sf.read(tmp_path / "a.wav", always_2d=True)
    assert (sr, audio.shape) == (48000, (48000, 2)) and abs(audio).max() > 0


def test_serve_uses_it_without_a_model(tmp_path: Path) -> None:
    music, out = tmp_path / "music", tmp_path / "out"
    music.mkdir()
    out.mkdir()
    port = free_port()
    with (tmp_path / "serve.log").open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "jenbridge", "serve", "--port",
                                 str(port), "--output-dir", str(out), "--allow", str(music),
                                 "--threads", "1"], cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT,
                                env={**os.environ, "OMP_NUM_THREADS": "1"})
        c = Client(port)
        try:
            msg = None
            for _ in range(600):  # up to 60 s: imports, sha256 of the bundle, sessions
                assert proc.poll() is None, (tmp_path / "serve.log").read_text()
                c.send("/jb/hello", "h")
                msg = c.recv(0.1)
                if msg:
                    break
            assert msg is not None and msg[0] == "/jb/hello" and msg[1][2] == "small", msg
            c.send("/jb/generate", "g", "seconds", 1.0, "steps", 2)
            done = c.final("g", timeout=120)
            assert done[0] == "/jb/done" and Path(done[1][1]).parent == out.resolve(), done
        finally:
            c.close()
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
    assert proc.returncode == 0
