"""Engine speed: seconds to make 10 s of 48 kHz stereo, ONNX Runtime vs torch eager, side by side.

For each config (tiny, small, paper) a random-weight bundle is exported once
(`python -m onnx_export --random NAME --out DIR`, seed 0) and then measured in two fresh
processes, so each one's peak memory is its own:

- ort:   the real engine (jenbridge.engine, no torch): a warm-up call, then `generate` of
         `--seconds` with `--steps` sampler steps; every stage timed (text, each U-Net call,
         decoder, resample); peak RSS (getrusage) and peak Python/numpy heap (tracemalloc).
- torch: the same weights rebuilt in torch (onnx_export.sources.build_random, same seed; the
         U-Net's parity with unet.onnx is checked on one input), eager, inference mode: the text
         encoder, the U-Net at the engine's window lengths with the guidance batch of 2, and the
         decoder over the whole latent, each timed the same way.

The measured U-Net time per call is extrapolated to the config's default steps:
  total = text + (U-Net per call) x default steps x windows + decoder + resample
(`resample` is the same numpy code on both sides and is taken from the ORT run). Both
backends run with the same number of CPU threads, neither spin-waiting (the engine turns ORT's
spinning off; the torch worker runs with OMP_WAIT_POLICY=PASSIVE).

  python benchmarks/engine.py [--configs tiny small paper] [--bundles DIR] [--seconds 10]
                              [--steps 3] [--threads N] [--no-paper] [--no-torch]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

PROMPT = "warm lo-fi hip hop, dusty drums, mellow Rhodes chords, vinyl crackle"
ROOT = Path(__file__).resolve().parent.parent


def _peak_rss_mb() -> float:
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return kb / 1024 / (1024 if sys.platform == "darwin" else 1)


# ---- ONNX Runtime worker (the engine; never imports torch) --------------------------------------

def ort_worker(args: argparse.Namespace) -> dict[str, Any]:
    import tracemalloc

    import numpy as np

    from jenbridge.engine import Engine

    tracemalloc.start()
    start = time.perf_counter()
    engine = Engine(args.bundle, threads=args.threads, window_frames=args.window_frames)
    load = time.perf_counter() - start
    engine.generate("warm-up", 1.0, seed=0, steps=1)  # first-run allocations (other prompt:
    # the text encoder's cache must miss in the measured call)
    result = engine.generate(PROMPT, args.seconds, seed=1, steps=args.steps)
    _, heap_peak = tracemalloc.get_traced_memory()
    assert result.audio.shape == (2, round(args.seconds * 48000)), result.audio.shape
    assert np.isfinite(result.audio).all()
    m = engine.manifest
    frames = engine._frames_for(args.seconds, 48000)
    from jenbridge.engine.windows import plan_windows

    plan = plan_windows(np.ones(frames, np.float32), engine.window_frames,
                        engine.overlap_frames, False)
    t = result.timings
    inputs = parity_inputs(m.latent_channels, m.text_dim, plan[0].frames)
    np.savez(args.parity, out=engine.sessions.unet(inputs), **inputs)
    return {
        "backend": "ort", "config": m.name, "load_s": load, "providers": list(result.providers),
        "threads": engine.sessions.threads, "default_steps": m.sampler.steps,
        "sampler": m.sampler.sampler, "guidance": m.sampler.guidance,
        "windows": [w.frames for w in plan], "latent_rate": m.latent_rate,
        "text_s": t.get("text", 0.0), "unet_call_s": statistics.median(result.unet_calls),
        "decoder_s": t.get("decoder", 0.0), "resample_s": t.get("resample", 0.0),
        "measured_total_s": t["total"], "measured_steps": result.steps,
        "peak_rss_mb": _peak_rss_mb(), "heap_peak_mb": heap_peak / 2**20,
        "torch_loaded": "torch" in sys.modules,
    }


def parity_inputs(channels: int, text_dim: int, frames: int) -> dict[str, Any]:
    """A fixed U-Net input of the guidance shape (batch 2: conditional, null), numpy."""
    import numpy as np

    rng = np.random.default_rng(frames)
    x = rng.standard_normal((2, channels, frames), dtype=np.float32)
    text = rng.standard_normal((2, 12, text_dim), dtype=np.float32)
    text[1] = 0.0
    return dict(x=x, t=np.full(2, 999.0, np.float32), masked=np.zeros_like(x),
                mask=np.ones((2, 1, frames), np.float32), text=text,
                text_mask=np.array([[1.0] * 12, [0.0] * 12], np.float32),
                bpm=np.array([120.0, 0.0], np.float32), key=np.array([10, 0], np.int64),
                meter=np.array([4, 0], np.int64), causal=np.zeros(2, np.float32))


# ---- torch eager worker (same weights) --------------------------------------------------------

def _median_time(fn: Any, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_worker(args: argparse.Namespace) -> dict[str, Any]:
    import numpy as np
    import torch

    from jenbridge.config import load_config
    from onnx_export.sources import build_random

    torch.set_num_threads(args.threads)
    models = build_random(load_config(args.config), seed=0)
    unet, ae, text = models.unet, models.autoencoder, models.text_encoder
    K, windows = models.latent_channels, [int(w) for w in args.windows.split(",")]
    with torch.inference_mode():
        ids, mask = text.tokenize([PROMPT])
        text_s = _median_time(lambda: text(ids, mask), args.repeats)
        states = text(ids, mask)

        def unet_inputs(frames: int) -> dict[str, torch.Tensor]:
            g = torch.Generator().manual_seed(frames)
            x = torch.randn(2, K, frames, generator=g)
            return dict(x=x, t=torch.full((2,), 999.0), masked=torch.zeros_like(x),
                        mask=torch.ones(2, 1, frames), text=torch.cat([states, 0 * states]),
                        text_mask=torch.cat([mask, 0 * mask]).float(),
                        bpm=torch.zeros(2), key=torch.zeros(2, dtype=torch.long),
                        meter=torch.zeros(2, dtype=torch.long), causal=torch.zeros(2))

        # same weights? the ORT worker's U-Net output on a fixed input, recomputed in torch
        saved = np.load(args.parity)
        want = unet(**{k: torch.from_numpy(saved[k]) for k in saved.files if k != "out"})
        parity = float(np.abs(want.numpy() - saved["out"]).max())
        per_window = []
        for frames in windows:
            batch = unet_inputs(frames)
            per_window.append(_median_time(lambda b=batch: unet(**b), args.repeats))
        frames_total = round(args.seconds * 48000 / ae.latent_hop) + 1
        latent = torch.randn(1, K, frames_total)
        decoder_s = _median_time(lambda: ae.decode_normalized(latent), max(1, args.repeats // 2))
    return {
        "backend": "torch", "config": args.config, "text_s": text_s,
        "unet_call_s": statistics.mean(per_window), "decoder_s": decoder_s,
        "parity_max_abs": parity, "peak_rss_mb": _peak_rss_mb(),
        "torch_version": torch.__version__, "threads": torch.get_num_threads(),
    }


# ---- driver -----------------------------------------------------------------------------------

def _run_worker(argv: list[str], timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(Path(__file__).resolve()), *argv]
    # OpenMP threads sleep instead of spinning, like the engine's ORT sessions: on a shared CPU
    # torch's spinning team is otherwise many times slower (one thread waits for a descheduled
    # one at every barrier)
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_WAIT_POLICY": "PASSIVE"}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                         env=env)
    if out.returncode != 0:
        raise RuntimeError(f"worker {argv[:2]} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _export(name: str, folder: Path, threads: int) -> None:
    if (folder / "manifest.json").is_file():
        return
    print(f"exporting a random-weight {name} bundle to {folder} ...", flush=True)
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "onnx_export", "--random", name, "--out", str(folder),
           "--threads", str(threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if out.returncode != 0:
        raise RuntimeError(f"export of {name} failed:\n{out.stderr[-3000:]}")
    print(f"  exported in {time.perf_counter() - start:.0f} s", flush=True)


def _total(r: dict[str, Any], steps: int, windows: int, resample: float) -> float:
    return r["text_s"] + r["unet_call_s"] * steps * windows + r["decoder_s"] + resample


def report(rows: list[tuple[dict[str, Any], dict[str, Any] | None]], seconds: float) -> str:
    head = (f"| config | steps (sampler) | windows x frames | text ms | U-Net ms/call ORT / "
            f"torch (x) | decoder ms ORT / torch (x) | {seconds:g} s of audio: ORT s / torch s "
            "(x) | real-time factor ORT | peak RSS MB ORT / torch | parity |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for o, t in rows:
        n, steps = len(o["windows"]), o["default_steps"]
        ort_total = _total(o, steps, n, o["resample_s"])
        cells = [o["config"], f"{steps} ({o['sampler']})", f"{n} x {max(o['windows'])}",
                 f"{1e3 * o['text_s']:.1f}"]
        if t is None:
            cells += [f"{1e3 * o['unet_call_s']:.0f} / -", f"{1e3 * o['decoder_s']:.0f} / -",
                      f"{ort_total:.2f} / -", f"{seconds / ort_total:.1f}",
                      f"{o['peak_rss_mb']:.0f} / -", "-"]
        else:
            torch_total = _total(t, steps, n, o["resample_s"])
            cells += [f"{1e3 * o['unet_call_s']:.0f} / {1e3 * t['unet_call_s']:.0f} "
                      f"({t['unet_call_s'] / o['unet_call_s']:.2f}x)",
                      f"{1e3 * o['decoder_s']:.0f} / {1e3 * t['decoder_s']:.0f} "
                      f"({t['decoder_s'] / o['decoder_s']:.2f}x)",
                      f"{ort_total:.2f} / {torch_total:.2f} ({torch_total / ort_total:.2f}x)",
                      f"{seconds / ort_total:.1f}",
                      f"{o['peak_rss_mb']:.0f} / {t['peak_rss_mb']:.0f}",
                      f"{t['parity_max_abs']:.1e}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", nargs="+", default=["tiny", "small", "paper"])
    p.add_argument("--bundles", type=Path, default=Path("/tmp/jenbridge-bench"),
                   help="folder of the exported bundles (made on first use, then reused)")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--steps", type=int, default=3, help="sampler steps measured")
    p.add_argument("--repeats", type=int, default=3, help="timed torch calls per stage")
    p.add_argument("--threads", type=int, default=None, help="CPU threads (default: all)")
    p.add_argument("--no-paper", action="store_true", help="skip the 728M-parameter paper size")
    p.add_argument("--no-torch", action="store_true", help="ONNX Runtime only")
    p.add_argument("--window-frames", type=int, help="engine window (default: training crop)")
    p.add_argument("--timeout", type=float, default=3000, help="seconds per worker")
    p.add_argument("--worker", choices=("ort", "torch"), help=argparse.SUPPRESS)
    p.add_argument("--bundle", help=argparse.SUPPRESS)
    p.add_argument("--config", help=argparse.SUPPRESS)
    p.add_argument("--windows", help=argparse.SUPPRESS)
    p.add_argument("--parity", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.threads is None:
        from jenbridge.engine.providers import default_threads

        args.threads = default_threads()
    if args.worker:
        fn = ort_worker if args.worker == "ort" else torch_worker
        print(json.dumps(fn(args)))
        return 0
    configs = [c for c in args.configs if not (args.no_paper and c == "paper")]
    rows = []
    for name in configs:
        folder = args.bundles / name
        _export(name, folder, args.threads)
        common = ["--seconds", str(args.seconds), "--steps", str(args.steps), "--threads",
                  str(args.threads), "--repeats", str(args.repeats),
                  "--parity", str(args.bundles / f"{name}-parity.npz")]
        if args.window_frames:
            common += ["--window-frames", str(args.window_frames)]
        o = _run_worker(["--worker", "ort", "--bundle", str(folder), *common], args.timeout)
        assert not o["torch_loaded"], "the engine imported torch"
        t = None
        if not args.no_torch:
            t = _run_worker(["--worker", "torch", "--bundle", str(folder), "--config", name,
                             "--windows", ",".join(map(str, o["windows"])), *common],
                            args.timeout)
        print(f"{name}: ORT U-Net {1e3 * o['unet_call_s']:.0f} ms/call"
              + (f", torch {1e3 * t['unet_call_s']:.0f} ms/call" if t else ""), flush=True)
        rows.append((o, t))
    o0 = rows[0][0]
    print(f"\n{args.seconds:g} s of 48 kHz stereo, {o0['threads']} threads, "
          f"providers {', '.join(o0['providers'])}; U-Net batch 2 (guidance), "
          f"{args.steps} steps measured and extrapolated per step to each config's default")
    print(report(rows, args.seconds))
    return 0


if __name__ == "__main__":
    sys.exit(main())
