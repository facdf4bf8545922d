"""WebDataset tar shards for corpora too large for a folder scan: write once, stream to training.

A shard holds samples `KEY.flac` (the clip, any rate/channels) + `KEY.json` (caption, bpm, key,
meter codes, split). Streaming splits shards across nodes (DDP ranks) and DataLoader workers,
shuffles in a buffer, decodes and crops on the fly; an undecodable sample is skipped and counted,
never fatal. Streams cannot replay a batch by step number, so a resumed run continues with fresh
random crops (folder datasets keep the exact-resume guarantee).
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from jenbridge.data.audio import match_channels, normalize_loudness, resample, rms_db
from jenbridge.data.index import SILENCE_DB, DatasetIndex

log = logging.getLogger("jenbridge.data")


def write_shards(index: DatasetIndex, out: Path, per_shard: int = 500,
                 split: str = "train") -> list[Path]:
    """Pack the index's clips of `split` into out/shard-NNNNNN.tar (FLAC inside)."""
    import webdataset as wds

    out.mkdir(parents=True, exist_ok=True)
    clips = index.split(split)
    with wds.ShardWriter(str(out / "shard-%06d.tar"), maxcount=per_shard, verbose=0) as sink:
        for i, clip in enumerate(clips):
            audio, sr = sf.read(clip.path, dtype="float32", always_2d=True)
            buf = io.BytesIO()
            sf.write(buf, audio, sr, format="FLAC", subtype="PCM_24")
            meta = {"caption": clip.caption, "bpm": clip.bpm, "key": clip.key,
                    "meter": clip.meter, "split": clip.split, "source": clip.path}
            sink.write({"__key__": f"{i:09d}", "flac": buf.getvalue(),
                        "json": json.dumps(meta).encode()})
    return sorted(out.glob("shard-*.tar"))


class ShardCrops(torch.utils.data.IterableDataset):
    """Endless stream of crops from tar shards; items like AudioCrops' (audio, caption, codes).

    urls: a brace pattern ("dir/shard-{000000..000009}.tar") or a list of paths.
    """

    def __init__(self, urls: str | list[str], sample_rate: int, channels: int, seconds: float,
                 multiple: int = 1, seed: int = 0, shuffle_buffer: int = 200,
                 epochs: int | None = None) -> None:
        self.urls = urls if isinstance(urls, str) else [str(u) for u in urls]
        self.sr, self.channels = sample_rate, channels
        self.n = max(1, round(seconds * sample_rate / multiple)) * multiple
        self.seed, self.buffer, self.epochs = seed, shuffle_buffer, epochs
        self.skipped = 0

    def _pipeline(self, epoch: int) -> Any:
        import webdataset as wds

        # shards split over ranks, then over workers: each sample once per epoch in all
        return wds.WebDataset(self.urls, shardshuffle=100, seed=self.seed + epoch,
                              nodesplitter=wds.split_by_node,
                              workersplitter=wds.split_by_worker,
                              handler=wds.warn_and_continue, empty_check=False)

    def _crop(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any] | None:
        try:
            data, sr = sf.read(io.BytesIO(sample["flac"]), dtype="float32", always_2d=True)
            meta = json.loads(sample["json"])
        except Exception as err:  # a broken sample is skipped, never fatal
            self.skipped += 1
            log.warning("skipped shard sample %s: %s", sample.get("__key__"), err)
            return None
        audio = match_channels(np.ascontiguousarray(data.T), self.channels)
        need = int(np.ceil(self.n * sr / self.sr)) + 64
        if audio.shape[1] > need:
            start = int(rng.integers(0, audio.shape[1] - need + 1))
            audio = audio[:, start:start + need]
        audio = resample(audio, sr, self.sr)
        if audio.shape[1] < self.n:
            audio = np.tile(audio, (1, -(-self.n // max(1, audio.shape[1]))))
        audio = audio[:, : self.n]
        if rms_db(audio) <= SILENCE_DB:
            self.skipped += 1
            return None
        return {"audio": torch.from_numpy(normalize_loudness(audio)),
                "caption": str(meta.get("caption", "")), "bpm": float(meta.get("bpm", 0.0)),
                "key": int(meta.get("key", 0)), "meter": int(meta.get("meter", 0))}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = torch.utils.data.get_worker_info()
        worker = 0 if info is None else info.id
        rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
        rng = np.random.default_rng([self.seed, rank, worker])
        import webdataset as wds

        epoch = 0
        while self.epochs is None or epoch < self.epochs:  # None: endless (training)
            stream = self._pipeline(epoch).compose(wds.shuffle(self.buffer, seed=self.seed))
            for sample in stream:
                item = self._crop(sample, rng)
                if item is not None:
                    yield item
            epoch += 1
