"""Cost per second of 48 kHz stereo audio: our STFT-domain autoencoder vs a waveform conv stack.

JEN-1 describes a SoundStream/EnCodec-like waveform autoencoder; DESIGN §1 expects a waveform
stack at 48 kHz to cost ~100x more than an STFT-domain design. This measures both on this
machine, fp32 CPU, same thread count, median of several runs:

  (a) `Autoencoder` at a shipped config (default `small`), eager torch (FFT STFT) and in the
      conv form its ONNX graphs use;
  (b) a plain waveform conv stack of the same role: strided Conv1d encoder, strides
      (2, 4, 5, 8) = hop 320, channels 32 -> 512, 128 latent channels, one residual unit per
      stage (EnCodec without its LSTM), mirrored by a ConvTranspose1d decoder.

For each: parameters, ms per audio-second for encode+decode (inference, no grad) and for a
training step (forward + backward), GFLOP per audio-second (torch's FLOP counter: convs and
matmuls; FFTs are not counted), and the ratio (b)/(a).

    python benchmarks/autoencoder_cost.py [--config small] [--seconds 2] [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from jenbridge.config import load_config
from jenbridge.models.autoencoder import Autoencoder
from jenbridge.models.builders import build_autoencoder


class ResidualUnit(nn.Module):
    """Residual unit: ELU, dilated conv, ELU, conv k=1, skip. EnCodec: kernel 3, hidden ch/2;
    SoundStream/DAC: kernel 7, hidden ch, dilations 1, 3, 9."""

    def __init__(self, ch: int, kernel: int = 3, dilation: int = 1, hidden: int | None = None):
        super().__init__()
        hidden = hidden or ch // 2
        pad = dilation * (kernel - 1) // 2
        self.block = nn.Sequential(
            nn.ELU(),
            nn.Conv1d(ch, hidden, kernel, padding=pad, dilation=dilation),
            nn.ELU(),
            nn.Conv1d(hidden, ch, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class WaveformAutoencoder(nn.Module):
    """SoundStream/EnCodec-like waveform autoencoder: (B, C, N) <-> (B, latent, N / hop).

    `units` residual units per stage (dilations 1, 3, 9, ...) of kernel `kernel`; `dac=True`
    uses full-width hidden convs as SoundStream/DAC do, else EnCodec's half width.
    """

    def __init__(
        self,
        channels: int = 2,
        base: int = 32,
        strides=(2, 4, 5, 8),
        latent: int = 128,
        units: int = 1,
        kernel: int = 3,
        dac: bool = False,
    ):
        super().__init__()

        def stage(ch: int) -> list[nn.Module]:
            return [ResidualUnit(ch, kernel, 3**i, ch if dac else None) for i in range(units)]

        enc: list[nn.Module] = [nn.Conv1d(channels, base, 7, padding=3)]
        ch = base
        for s in strides:
            # kernel 2s, stride s, padding ceil(s/2): N -> N/s exactly
            enc += [
                *stage(ch),
                nn.ELU(),
                nn.Conv1d(ch, 2 * ch, 2 * s, stride=s, padding=(s + 1) // 2),
            ]
            ch *= 2
        enc += [nn.ELU(), nn.Conv1d(ch, latent, 7, padding=3)]
        dec: list[nn.Module] = [nn.Conv1d(latent, ch, 7, padding=3)]
        for s in reversed(strides):
            pad, out_pad = (s + 1) // 2, s % 2  # N -> N*s exactly
            dec += [
                nn.ELU(),
                nn.ConvTranspose1d(
                    ch, ch // 2, 2 * s, stride=s, padding=pad, output_padding=out_pad
                ),
            ]
            ch //= 2
            dec += stage(ch)
        dec += [nn.ELU(), nn.Conv1d(ch, channels, 7, padding=3)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.hop = 1
        for s in strides:
            self.hop *= s

    def encode(self, audio: torch.Tensor) -> torch.Tensor:
        return self.encoder(audio)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z)


Codec = Autoencoder | WaveformAutoencoder


def median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm-up: allocator, oneDNN primitive caches
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def measure(name: str, model: Codec, hop: int, seconds: float, runs: int) -> dict[str, Any]:
    frames = max(1, round(seconds * 48000 / hop))
    audio = 0.1 * torch.randn(1, 2, frames * hop)
    secs = audio.shape[-1] / 48000
    model.eval()

    def infer() -> None:
        with torch.no_grad():
            out = model.decode(model.encode(audio))
        assert out.shape == audio.shape, (out.shape, audio.shape)

    def train_step() -> None:
        model.zero_grad(set_to_none=True)
        model.decode(model.encode(audio)).square().mean().backward()

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.decode(model.encode(audio))
    return {
        "name": name,
        "params_m": sum(p.numel() for p in model.parameters()) / 1e6,
        "infer_ms": median_ms(infer, runs) / secs,
        "train_ms": median_ms(train_step, runs) / secs,
        "gflop": counter.get_total_flops() / 1e9 / secs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="small", help="shipped config name or YAML path")
    parser.add_argument("--seconds", type=float, default=2.0, help="audio per run")
    parser.add_argument("--runs", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    parser.add_argument("--no-dac", action="store_true", help="skip the DAC-sized waveform stack")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    def run(name: str, model: Codec, hop: int) -> dict[str, Any]:
        return measure(name, model, hop, args.seconds, args.runs)

    ae = build_autoencoder(load_config(args.config).autoencoder)
    rows = [run(f"(a) STFT AE {args.config}, FFT", ae, ae.latent_hop)]
    with mock.patch("torch.onnx.is_in_onnx_export", return_value=True):  # the ONNX graphs' form
        rows.append(run(f"(a) STFT AE {args.config}, conv STFT", ae, ae.latent_hop))
    wave = WaveformAutoencoder()
    rows.append(run("(b) waveform 32->512, EnCodec-like", wave, wave.hop))
    if not args.no_dac:
        # the size of the 48 kHz waveform codecs people train (DAC: 64->1024, 3 units of k=7)
        dac = WaveformAutoencoder(base=64, units=3, kernel=7, dac=True)
        rows.append(run("(b') waveform 64->1024, DAC-like", dac, dac.hop))

    print(f"fp32 CPU, {args.threads} threads, {args.seconds:g} s of 48 kHz stereo per run, "
          f"median of {args.runs}; ms and GFLOP per second of audio")  # fmt: skip
    print(f"{'model':38s} {'params M':>9s} {'enc+dec ms':>11s} {'train ms':>9s} {'GFLOP':>7s}")
    for r in rows:
        print(f"{r['name']:38s} {r['params_m']:9.2f} {r['infer_ms']:11.1f} "
              f"{r['train_ms']:9.1f} {r['gflop']:7.1f}")  # fmt: skip
    base = rows[0]
    for r in rows[2:]:
        print(f"{r['name']} / (a) FFT: {r['infer_ms'] / base['infer_ms']:.1f}x enc+dec, "
              f"{r['train_ms'] / base['train_ms']:.1f}x train step, "
              f"{r['gflop'] / base['gflop']:.1f}x GFLOP")  # fmt: skip


if __name__ == "__main__":
    main()
