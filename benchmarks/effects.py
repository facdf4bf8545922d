"""Effect chain cost: plugin_host offline and streaming vs pedalboard's own Pedalboard, and the
price of running items out of process.

A mastering-style chain (HighpassFilter, Compressor, Chorus, Reverb at mix 0.3,
BrickwallLimiter) over `--seconds` of 48 kHz stereo, timed as:

- pedalboard:        pedalboard.Pedalboard([...])(audio): the baseline (no streaming, no
                     latency bookkeeping between effects)
- offline:           EffectChain.process(audio)
- stream:            EffectChain.stream() fed `--chunk`-frame chunks (mean and worst chunk)
- isolated offline / isolated stream: the same chain with every item in a worker process
- vst3 offline / vst3 stream: ZaMaximX2 (Debian zam-plugins), if installed

Each row prints seconds, real-time factor (audio seconds per wall second) and the ratio
to the pedalboard baseline.

  python benchmarks/effects.py [--seconds 30] [--chunk 512] [--block 256]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pedalboard

from plugin_host import EffectChain

RATE = 48000
CHAIN = [
    {"effect": "HighpassFilter", "cutoff_frequency_hz": 30},
    {"effect": "Compressor", "threshold_db": -18, "ratio": 3},
    {"effect": "Chorus", "mix": 0.2},
    {"effect": "Reverb", "room_size": 0.4, "mix": 0.3},
    {"effect": "BrickwallLimiter", "ceiling_db": -1},
]
VST3 = Path("/usr/lib/vst3/ZaMaximX2.vst3")


def _audio(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * RATE)) / RATE
    tone = 0.3 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 0.5 * t))
    return (np.stack([tone, 0.8 * tone]) + 0.05 * rng.standard_normal((2, t.size))).astype(
        np.float32
    )


def _offline(chain: EffectChain, x: np.ndarray) -> float:
    start = time.perf_counter()
    chain.process(x)
    return time.perf_counter() - start


def _stream(chain: EffectChain, x: np.ndarray, chunk: int) -> tuple[float, float]:
    times = []
    with chain.stream() as live:
        live.process(x[:, :chunk])  # the first call resets every item (worker round trips)
        for start in range(chunk, x.shape[1], chunk):
            began = time.perf_counter()
            live.process(x[:, start : start + chunk])
            times.append(time.perf_counter() - began)
    return float(np.sum(times)), float(np.max(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--chunk", type=int, default=512)
    parser.add_argument("--block", type=int, default=256)
    args = parser.parse_args()
    x = _audio(args.seconds)
    # The same effects as one pedalboard.Pedalboard (the Reverb fully wet: no chain mix there).
    board = pedalboard.Pedalboard([
        pedalboard.HighpassFilter(cutoff_frequency_hz=30),
        pedalboard.Compressor(threshold_db=-18, ratio=3),
        pedalboard.Chorus(mix=0.2),
        pedalboard.Reverb(room_size=0.4),
        pedalboard.BrickwallLimiter(ceiling_db=-1),
    ])
    start = time.perf_counter()
    board(x, RATE)
    baseline = time.perf_counter() - start

    rows: list[tuple[str, float, str]] = [("pedalboard", baseline, "")]
    with EffectChain(CHAIN, RATE, block_size=args.block) as chain:
        rows.append(("offline", _offline(chain, x), f"latency {chain.latency_samples}"))
        total, worst = _stream(chain, x, args.chunk)
        rows.append(("stream", total, f"worst chunk {worst * 1e3:.2f} ms"))
    isolated = [{**item, "isolate": True} for item in CHAIN]
    with EffectChain(isolated, RATE, block_size=args.block) as chain:
        rows.append(("isolated offline", _offline(chain, x), "5 worker processes"))
        total, worst = _stream(chain, x, args.chunk)
        rows.append(("isolated stream", total, f"worst chunk {worst * 1e3:.2f} ms"))
    if VST3.exists():
        with EffectChain([{"plugin": str(VST3)}], RATE, block_size=args.block) as chain:
            rows.append(("vst3 offline", _offline(chain, x), "ZaMaximX2 alone"))
            total, worst = _stream(chain, x, args.chunk)
            rows.append(("vst3 stream", total, f"worst chunk {worst * 1e3:.2f} ms"))

    print(f"{args.seconds:g} s of 48 kHz stereo, chunks of {args.chunk}, blocks of {args.block}")
    print(f"{'':18s} {'seconds':>8s} {'x realtime':>11s} {'vs pedalboard':>14s}")
    for name, seconds, note in rows:
        print(f"{name:18s} {seconds:8.3f} {args.seconds / seconds:11.0f} "
              f"{seconds / baseline:13.2f}x  {note}")


if __name__ == "__main__":
    main()
