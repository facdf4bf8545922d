"""Training throughput: examples/s and audio-seconds/s per optimizer step, autoencoder and
diffusion, for the `tiny` and `small` configs, measured side by side in one run; optionally at
several precisions (fp32 vs bf16 autocast, jenbridge.training.precision).

Runs the real training steps (AutoencoderTask / DiffusionTask.train_step semantics: forward,
loss, backward, clip, AdamW) on synthetic batches of the configured shapes, so data loading is
excluded (it runs in worker processes during training). Median of the timed steps.

  python benchmarks/train_throughput.py [--configs tiny small] [--device cpu|cuda] [--steps 5]
                                       [--precision fp32 bf16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from jenbridge.config import load_config
from jenbridge.diffusion.objective import diffusion_loss
from jenbridge.losses.stft_loss import MultiResolutionSTFTLoss
from jenbridge.models.builders import build_autoencoder, build_unet
from jenbridge.training.precision import autocast, resolve


def _time(step, warmup: int, steps: int, device: torch.device) -> float:
    for _ in range(warmup):
        step()
    times = []
    for _ in range(steps):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def autoencoder_step(name: str, device: torch.device, steps: int,
                     precision: str) -> tuple[float, int, float]:
    cfg = load_config(name)
    ae, tc = cfg.autoencoder, cfg.autoencoder_training
    model = build_autoencoder(ae).to(device).train()
    loss_fn = MultiResolutionSTFTLoss().to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr)
    n = round(tc.crop_seconds * ae.sample_rate / ae.latent_hop) * ae.latent_hop
    audio = 0.1 * torch.randn(tc.batch_size, ae.channels, n, device=device)

    def step() -> None:
        with autocast(device, precision):
            recon, z = model(audio)
            loss = loss_fn(recon.float(), audio) + tc.latent_l2 * z.float().pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()

    return _time(step, 1, steps, device), tc.batch_size, n / ae.sample_rate


def diffusion_step(name: str, device: torch.device, steps: int,
                   precision: str) -> tuple[float, int, float]:
    cfg = load_config(name)
    ae, tc, dc = cfg.autoencoder, cfg.diffusion_training, cfg.diffusion
    k = max(1, round(ae.latent_channels * 0.75))  # whitening keeps ~this many channels
    frames = round(tc.crop_seconds * ae.latent_rate)
    model = build_unet(cfg.unet, k).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=tc.lr)
    b = tc.batch_size
    g = torch.Generator(device=device).manual_seed(0)
    latents = torch.randn(b, k, frames, device=device)
    text = torch.randn(b, 24, cfg.unet.text_dim, device=device)
    text_mask = torch.ones(b, 24, dtype=torch.int64, device=device)
    bpm = torch.full((b,), 120.0, device=device)
    key = torch.full((b,), 10, dtype=torch.int64, device=device)
    meter = torch.full((b,), 4, dtype=torch.int64, device=device)

    def step() -> None:
        with autocast(device, precision):
            loss, _ = diffusion_loss(model, latents, text, text_mask, bpm, key, meter, dc, g)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), tc.grad_clip)
        opt.step()

    return _time(step, 1, steps, device), b, frames / ae.latent_rate


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["tiny", "small"])
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--steps", type=int, default=5, help="timed steps per row (median)")
    p.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--precision", nargs="+", default=["auto"], choices=["auto", "bf16", "fp32"],
                   help="autocast precisions to compare (default: auto = what training uses)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(f"device {device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"{'config':8} {'model':11} {'prec':4} {'batch':>5} {'crop s':>6} {'s/step':>8} "
          f"{'ex/s':>8} {'audio s/s':>9} {'steps/10h':>9}")
    for name in args.configs:
        for label, fn in (("autoencoder", autoencoder_step), ("diffusion", diffusion_step)):
            for prec in args.precision:
                dt, batch, seconds = fn(name, device, args.steps, prec)
                print(f"{name:8} {label:11} {resolve(prec, device):4} {batch:5d} {seconds:6.2f} "
                      f"{dt:8.3f} {batch / dt:8.2f} {batch * seconds / dt:9.1f} "
                      f"{36000 / dt:9.0f}")


if __name__ == "__main__":
    main()
