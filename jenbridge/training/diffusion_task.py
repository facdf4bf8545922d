"""One diffusion training step: JEN-1's multi-task loss on normalized latents.

Latents come from a latent cache or from the frozen autoencoder on the fly; text states come
from the frozen text encoder (memoized per caption). An empty caption is the null condition.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from jenbridge.config import ModelConfig, autoencoder_architecture
from jenbridge.data.crops import StepBatchSampler
from jenbridge.diffusion.objective import diffusion_loss, unet_denoiser
from jenbridge.diffusion.samplers import SAMPLERS, guided
from jenbridge.diffusion.schedule import DDPMSchedule
from jenbridge.models.builders import build_unet
from jenbridge.models.text import CachedTextEncoder, load_text_encoder
from jenbridge.training.distributed import Dist
from jenbridge.training.latent_cache import LatentCrops, collate_latents
from jenbridge.training.precision import autocast

SAMPLE_PROMPTS = ["an upbeat house track with a four-on-the-floor kick and warm chords",
                  "solo piano, slow and gentle"]


class DiffusionTask:
    kind = "diffusion"

    def __init__(self, config: ModelConfig, autoencoder: Path, d: Dist) -> None:
        from jenbridge.training.checkpoint import load_model

        self.cfg, self.tc, self.d = config, config.diffusion_training, d
        self.ae, w = load_model(autoencoder)
        self.ae = self.ae.to(d.device).requires_grad_(False)
        if autoencoder_architecture(w.config.autoencoder) != \
                autoencoder_architecture(config.autoencoder):
            raise ValueError(f"{autoencoder}: its autoencoder config differs from the run's")
        self.latent_channels = int(self.ae.kept_channels)
        rate = config.autoencoder.latent_rate
        self.crop_frames = int(round(self.tc.crop_seconds * rate))
        self.text = CachedTextEncoder(load_text_encoder(config.text.encoder,
                                                        config.text.max_tokens).to(d.device))
        if self.text.dim != config.unet.text_dim:
            raise ValueError(f"text encoder width {self.text.dim} != unet.text_dim "
                             f"{config.unet.text_dim}")
        self.model = build_unet(config.unet, self.latent_channels).to(d.device).train()
        self.net: nn.Module = DDP(self.model) if d.enabled else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=self.tc.lr,
                                     betas=tuple(self.tc.betas),  # type: ignore[arg-type]
                                     weight_decay=self.tc.weight_decay)
        self.examples_per_step = self.tc.batch_size
        self.seconds_per_example = self.tc.crop_seconds

    @torch.no_grad()
    def encode_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Audio batch -> latent batch (on-the-fly encoding with the frozen autoencoder)."""
        latent = self.ae.encode_normalized(batch.pop("audio").to(self.d.device))
        return {**batch, "latent": latent[..., : self.crop_frames]}

    def _text(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        states, mask = self.text.encode(captions)
        empty = torch.tensor([not c.strip() for c in captions], device=mask.device)
        mask = mask.masked_fill(empty[:, None], 0)  # empty caption = null text condition
        return states, mask

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        dev = self.d.device
        latent = batch["latent"].to(dev)
        text, text_mask = self._text(batch["caption"])
        gen = torch.Generator(device=dev).manual_seed(int(torch.randint(0, 2**62, (1,))))
        with autocast(dev, self.tc.precision):
            loss, stats = diffusion_loss(self.net, latent, text, text_mask, batch["bpm"].to(dev),
                                         batch["key"].to(dev), batch["meter"].to(dev),
                                         self.cfg.diffusion, gen)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.tc.grad_clip)
        self.opt.step()
        return {"loss": loss.item(), "grad_norm": gnorm.item(),
                **{k: v for k, v in stats.items() if k.startswith("loss")}}

    def state_dict(self) -> dict[str, Any]:
        return {"opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])

    def extras(self) -> dict[str, Any]:
        return {"latent_channels": self.latent_channels}

    @torch.no_grad()
    def write_samples(self, ema: nn.Module, step: int, out: Path, writer: Any) -> None:
        """Text-to-music for a few fixed prompts with the EMA U-Net; WAV + TensorBoard audio."""
        import soundfile as sf

        dev, dc = self.d.device, self.cfg.diffusion
        b, frames = len(SAMPLE_PROMPTS), self.crop_frames
        text, text_mask = self._text(SAMPLE_PROMPTS)
        cond = {"masked": torch.zeros(b, self.latent_channels, frames, device=dev),
                "mask": torch.ones(b, 1, frames, device=dev), "text": text,
                "text_mask": text_mask, "bpm": torch.zeros(b, device=dev),
                "key": torch.zeros(b, dtype=torch.int64, device=dev),
                "meter": torch.zeros(b, dtype=torch.int64, device=dev),
                "causal": torch.zeros(b, device=dev),
                "null": {"text_mask": torch.zeros_like(text_mask)}}
        g = torch.Generator(device=dev).manual_seed(0)
        x = torch.randn(b, self.latent_channels, frames, generator=g, device=dev)
        model = guided(unet_denoiser(ema), dc.guidance)
        y = SAMPLERS[dc.sampler](model, x, DDPMSchedule.from_config(dc), dc.steps, cond=cond,
                                 prediction=dc.prediction)
        audio = self.ae.decode_normalized(y).clamp(-1, 1).cpu().numpy()
        out.mkdir(parents=True, exist_ok=True)
        sr = self.cfg.autoencoder.sample_rate
        for i, a in enumerate(audio):
            sf.write(str(out / f"diffusion_step{step:08d}_{i}.wav"), a.T, sr)
            if writer is not None:
                writer.add_audio(f"diffusion/sample_{i}", np.ascontiguousarray(a[0]), step,
                                 sample_rate=sr)


def latent_batches(cache: Path, frames: int, batch: int, seed: int, stop: int, d: Dist,
                   workers: int):
    """A function start_step -> iterable of latent batches for this rank (exact resume)."""
    dataset = LatentCrops(cache, frames)

    def batches(start: int) -> Iterable[dict[str, Any]]:
        sampler = StepBatchSampler([float(r["frames"]) for r in dataset.rows], batch, seed,
                                   start, stop, d.rank, d.world)
        return torch.utils.data.DataLoader(dataset, batch_sampler=sampler,
                                           collate_fn=collate_latents, num_workers=workers)

    return batches
