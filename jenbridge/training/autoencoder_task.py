"""One autoencoder training step: multi-resolution STFT + waveform L1 reconstruction, a latent
L2 bound, and an optional adversarial loss.

JEN-1's noise-robust masking happens inside the autoencoder's training forward (a fraction of
latent frames zeroed before the decoder). The discriminator, when enabled, joins at
`adversarial_start` and trains with hinge losses; the generator adds hinge + feature matching.

With `trainable: decoder` only the decoder learns (ServedDecoder): the encoder and the latent
statistics of the --init-from autoencoder stay as they are, so its latent space, the latent
cache and any diffusion model trained on it stay valid.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from jenbridge.config import ModelConfig
from jenbridge.losses.adversarial import (
    MultiScaleSTFTDiscriminator,
    discriminator_hinge_loss,
    feature_matching_loss,
    generator_hinge_loss,
)
from jenbridge.losses.stft_loss import MultiResolutionSTFTLoss
from jenbridge.models.autoencoder import Autoencoder
from jenbridge.models.builders import build_autoencoder
from jenbridge.training.distributed import Dist
from jenbridge.training.precision import autocast


class ServedDecoder(nn.Module):
    """The decoder-only training forward: audio (B, C, N) -> (reconstruction, raw latent z).

    The frozen encoder's latent goes through the normalizer and back (the projection onto the
    kept channels that every served latent has been through), then JEN-1's frame masking, then
    the decoder."""

    def __init__(self, model: Autoencoder) -> None:
        super().__init__()
        self.model = model
        for p in self.encoder_parameters():
            p.requires_grad_(False)

    def encoder_parameters(self) -> list[nn.Parameter]:
        m = self.model
        parts: list[nn.Module] = [m.enc_in, m.enc_norm, m.enc_blocks, m.downs, m.enc_out_norm,
                                  m.to_latent]
        return [p for part in parts for p in part.parameters()]

    def forward(self, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        with torch.no_grad():
            z = m.encode(audio)
            served = m.norm.denormalize(m.norm.normalize(z))
        return m.decode(m.mask_latent(served)), z


class AutoencoderTask:
    kind = "autoencoder"

    def __init__(self, config: ModelConfig, d: Dist) -> None:
        self.cfg, self.tc, self.d = config, config.autoencoder_training, d
        self.model = build_autoencoder(config.autoencoder).to(d.device).train()
        self.decoder_only = self.tc.trainable == "decoder"
        forward: nn.Module = ServedDecoder(self.model) if self.decoder_only else self.model
        self.net: nn.Module = DDP(forward) if d.enabled else forward
        self.stft_loss = MultiResolutionSTFTLoss().to(d.device)
        trained = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(trained, lr=self.tc.lr,
                                     betas=tuple(self.tc.betas),  # type: ignore[arg-type]
                                     weight_decay=self.tc.weight_decay)
        self.disc: nn.Module | None = None
        if self.tc.adversarial:
            self.disc = MultiScaleSTFTDiscriminator(config.autoencoder.channels).to(d.device)
            self.disc_net: nn.Module = DDP(self.disc) if d.enabled else self.disc
            self.opt_d = torch.optim.AdamW(self.disc.parameters(), lr=self.tc.lr,
                                           betas=tuple(self.tc.betas),  # type: ignore[arg-type]
                                           weight_decay=self.tc.weight_decay)
        self.probe: torch.Tensor | None = None  # fixed example reconstructed in audio samples
        # metadata of the --init-from weights that stays true of these (decoder-only: the
        # latent statistics were gathered over stats_seconds of audio and are kept)
        self.inherited: dict[str, Any] = {}
        self.examples_per_step = self.tc.batch_size
        self.seconds_per_example = self.tc.crop_seconds

    def train_step(self, batch: dict[str, Any], step: int) -> dict[str, float]:
        audio = batch["audio"].to(self.d.device)  # (B, C, N)
        adv_on = self.disc is not None and step >= self.tc.adversarial_start
        logs: dict[str, float] = {}
        with autocast(self.d.device, self.tc.precision):
            recon, z = self.net(audio)
            stft = self.stft_loss(recon.float(), audio)  # frequency domain
            wave = (recon.float() - audio).abs().mean()  # time domain: also rewards right phase
            loss = stft + self.tc.waveform_l1 * wave
            if not self.decoder_only:  # the frozen encoder's latent cannot move
                loss = loss + self.tc.latent_l2 * z.float().pow(2).mean()
            if adv_on:
                real_logits, real_feats = self.disc_net(audio)
                fake_logits, fake_feats = self.disc_net(recon)
                adv = generator_hinge_loss(fake_logits)
                fm = feature_matching_loss(real_feats, fake_feats)
                loss = loss + self.tc.adversarial_weight * (adv + fm)
                logs |= {"adv": adv.item(), "fm": fm.item()}
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        gnorm = torch.nn.utils.clip_grad_norm_(
            [p for p in self.model.parameters() if p.requires_grad], self.tc.grad_clip)
        self.opt.step()
        if adv_on:
            assert self.disc is not None
            with autocast(self.d.device, self.tc.precision):
                real_logits, _ = self.disc_net(audio)
                fake_logits, _ = self.disc_net(recon.detach())
                d_loss = discriminator_hinge_loss(real_logits, fake_logits)
            self.opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            torch.nn.utils.clip_grad_norm_(self.disc.parameters(), self.tc.grad_clip)
            self.opt_d.step()
            logs["disc"] = d_loss.item()
        return {"loss": loss.item(), "stft": stft.item(), "wave": wave.item(),
                "grad_norm": gnorm.item(), **logs}

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"opt": self.opt.state_dict(), "inherited": self.inherited}
        if self.disc is not None:
            state |= {"disc": self.disc.state_dict(), "opt_d": self.opt_d.state_dict()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.opt.load_state_dict(state["opt"])
        self.inherited = dict(state.get("inherited", {}))
        if self.disc is not None and "disc" in state:
            self.disc.load_state_dict(state["disc"])
            self.opt_d.load_state_dict(state["opt_d"])

    def extras(self) -> dict[str, Any]:
        return {**self.inherited, "latent_channels": self.model.kept_channels}

    @torch.no_grad()
    def write_samples(self, ema: nn.Module, step: int, out: Path, writer: Any) -> None:
        """Reconstruct the first example of a fixed probe batch; WAV + TensorBoard audio."""
        import soundfile as sf

        if self.probe is None:
            return
        audio = self.probe.to(self.d.device)
        model: Any = ema  # the EMA copy of the Autoencoder (always in eval mode)
        recon = (model.decode_normalized(model.encode_normalized(audio)) if self.decoder_only
                 else model.decode(model.encode(audio)))
        out.mkdir(parents=True, exist_ok=True)
        pair = torch.cat([audio[0], recon[0].float()], dim=-1).clamp(-1, 1).cpu().numpy()
        sf.write(str(out / f"ae_step{step:08d}.wav"), pair.T, self.cfg.autoencoder.sample_rate)
        if writer is not None:
            writer.add_audio("autoencoder/original_then_recon", np.ascontiguousarray(pair[0]),
                             step, sample_rate=self.cfg.autoencoder.sample_rate)
