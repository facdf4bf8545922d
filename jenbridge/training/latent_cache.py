"""Encode a dataset once into normalized latents for diffusion training (and carry them to a GPU).

Layout: OUT/index.json (the autoencoder's identity, latent rate, and one row per clip: file,
caption, bpm, key, meter, split, frames) and OUT/latents/NNNNNNN.npy, float16 (K, T). Building
is resumable: clips whose file exists are not encoded again. Whole clips are encoded in one
piece up to `chunk_seconds`; longer ones in consecutive chunks (the autoencoder is
convolutional with a short receptive field, so chunk seams cost little).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from jenbridge.data.audio import AudioError, normalize_loudness, read_audio
from jenbridge.data.index import scan_dataset

log = logging.getLogger("jenbridge.train")


@torch.no_grad()
def build_latent_cache(autoencoder: Path, data: Path, out: Path,
                       chunk_seconds: float = 60.0) -> Path:
    from jenbridge.training.checkpoint import load_model

    model, w = load_model(autoencoder)
    ae = w.config.autoencoder
    index = scan_dataset(data, ae.sample_rate, ae.latent_hop / ae.sample_rate * 8)
    for line in index.report.lines():
        log.info("dataset: %s", line)
    (out / "latents").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    hop = ae.latent_hop
    chunk = int(chunk_seconds * ae.sample_rate) // hop * hop
    for i, clip in enumerate(tqdm(index.clips, desc="encode latents", dynamic_ncols=True)):
        name = f"{i:07d}.npy"
        target = out / "latents" / name
        if target.is_file():
            frames = int(np.load(target, mmap_mode="r").shape[1])
        else:
            try:
                audio, _ = read_audio(clip.path, ae.sample_rate, ae.channels)
            except AudioError as err:
                log.warning("skipped: %s", err)
                continue
            audio = normalize_loudness(audio)
            n = audio.shape[1] // hop * hop
            x = torch.from_numpy(audio[:, :n])[None]  # (1, C, N)
            parts = [model.encode_normalized(x[..., s:s + chunk]) for s in range(0, n, chunk)]
            y = torch.cat(parts, dim=-1)[0].numpy().astype(np.float16)  # (K, T)
            tmp = target.with_suffix(".tmp.npy")
            np.save(tmp, y)
            tmp.replace(target)
            frames = y.shape[1]
        rows.append({"file": name, "caption": clip.caption, "bpm": clip.bpm, "key": clip.key,
                     "meter": clip.meter, "split": clip.split, "frames": frames,
                     "source": clip.path})
    meta = {"autoencoder": str(autoencoder.resolve()), "autoencoder_step": w.step,
            "latent_rate": ae.latent_rate, "latent_channels": model.kept_channels,
            "clips": rows}
    tmp = out / "index.json.tmp"
    tmp.write_text(json.dumps(meta))
    tmp.replace(out / "index.json")
    hours = sum(r["frames"] for r in rows) / ae.latent_rate / 3600
    log.info("latent cache %s: %d clips, %.2f h", out, len(rows), hours)
    return out


class LatentCrops(torch.utils.data.Dataset):
    """Fixed-length windows of cached latents; items like AudioCrops but with `latent` (K, T)."""

    def __init__(self, cache: Path, frames: int, split: str = "train") -> None:
        meta = json.loads((cache / "index.json").read_text())
        self.cache, self.frames = cache, frames
        self.rows = [r for r in meta["clips"] if r["split"] == split and r["frames"] >= frames]
        if not self.rows:
            raise ValueError(f"{cache}: no {split} clips of at least {frames} latent frames")
        self.latent_channels = int(meta["latent_channels"])

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, req: Any) -> dict[str, Any]:
        rng = np.random.default_rng(req.seed)
        row = self.rows[req.clip]
        y = np.load(self.cache / "latents" / row["file"], mmap_mode="r")
        start = int(rng.integers(0, row["frames"] - self.frames + 1))
        latent = torch.from_numpy(np.array(y[:, start:start + self.frames], dtype=np.float32))
        return {"latent": latent, "caption": row["caption"], "bpm": row["bpm"],
                "key": row["key"], "meter": row["meter"]}


def collate_latents(items: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "latent": torch.stack([i["latent"] for i in items]),
        "caption": [i["caption"] for i in items],
        "bpm": torch.tensor([i["bpm"] for i in items], dtype=torch.float32),
        "key": torch.tensor([i["key"] for i in items], dtype=torch.int64),
        "meter": torch.tensor([i["meter"] for i in items], dtype=torch.int64),
    }
