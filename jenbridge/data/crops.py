"""Random training crops, addressed by (step, rank) so that training resumes exactly.

The batch of global step s is drawn from a numpy generator seeded with (seed, s): a resumed run
sees the same examples as an uninterrupted one, and rank r of a world of size W takes slice r of
the global batch, so W processes see exactly what one process would with the whole batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from jenbridge.data.audio import AudioError, normalize_loudness, read_audio, rms_db
from jenbridge.data.index import SILENCE_DB, Clip


@dataclass(frozen=True)
class CropRequest:
    clip: int  # index into the clip list
    seed: int  # seeds the crop position (and retries)


class StepBatchSampler:
    """Yields, for steps start..stop-1, this rank's CropRequests of the global batch."""

    def __init__(self, durations: list[float], global_batch: int, seed: int, start_step: int,
                 stop_step: int, rank: int = 0, world: int = 1) -> None:
        if not durations:
            raise ValueError("no usable clips to train on (see the dataset report)")
        if global_batch % world:
            raise ValueError(f"batch size {global_batch} is not divisible by {world} processes")
        seconds = np.asarray(durations, dtype=np.float64)
        self.p = seconds / seconds.sum()  # longer files yield proportionally more crops
        self.global_batch, self.seed = global_batch, seed
        self.start, self.stop, self.rank, self.world = start_step, stop_step, rank, world

    def batch_for_step(self, step: int) -> list[CropRequest]:
        rng = np.random.default_rng([self.seed, step])
        clips = rng.choice(len(self.p), size=self.global_batch, p=self.p)
        seeds = rng.integers(0, 2**62, size=self.global_batch)
        per = self.global_batch // self.world
        lo = self.rank * per
        return [CropRequest(int(c), int(s)) for c, s in zip(clips[lo:lo + per], seeds[lo:lo + per])]

    def __iter__(self) -> Iterator[list[CropRequest]]:
        for step in range(self.start, self.stop):
            yield self.batch_for_step(step)

    def __len__(self) -> int:
        return max(0, self.stop - self.start)


class AudioCrops(torch.utils.data.Dataset):
    """Crops of ~`seconds` (a whole number of `multiple` samples) at `sample_rate`, `channels`
    channels, loudness-normalized.

    Items: dict(audio (C, N) float32 tensor, caption str, bpm float, key int, meter int).
    A crop that turns out silent is re-drawn elsewhere (a few tries); a file that fails to
    decode at training time is replaced by another clip and counted in `failures`.
    """

    def __init__(self, clips: list[Clip], sample_rate: int, channels: int, seconds: float,
                 multiple: int = 1, normalize_db: float | None = -20.0) -> None:
        self.clips, self.sr, self.channels = clips, sample_rate, channels
        # crop length in samples, rounded to a multiple of the model's hop (latent frame)
        self.n = max(1, round(seconds * sample_rate / multiple)) * multiple
        self.normalize_db = normalize_db
        self.failures = 0

    def __len__(self) -> int:
        return len(self.clips)

    def _read(self, clip: Clip, rng: np.random.Generator) -> np.ndarray:
        span = self.n / self.sr + 0.05  # a little extra so resampling never comes up short
        room = max(0.0, clip.seconds - span)
        start = float(rng.uniform(0.0, room)) if room > 0 else 0.0
        audio, _ = read_audio(clip.path, self.sr, self.channels, start=start, seconds=span)
        if audio.shape[1] < self.n:  # file shorter than a crop: loop-pad (never plain silence)
            reps = -(-self.n // max(1, audio.shape[1]))
            audio = np.tile(audio, (1, reps))
        return audio[:, : self.n]

    def __getitem__(self, req: CropRequest | int) -> dict[str, object]:
        if isinstance(req, int):
            req = CropRequest(req, req)
        rng = np.random.default_rng(req.seed)
        idx = req.clip
        audio = None
        for _ in range(6):
            clip = self.clips[idx]
            try:
                audio = self._read(clip, rng)
            except AudioError:
                self.failures += 1
                idx = int(rng.integers(len(self.clips)))
                continue
            if rms_db(audio) > SILENCE_DB:
                break
        if audio is None:
            raise RuntimeError("six crops in a row failed to decode: is the dataset readable?")
        if self.normalize_db is not None:
            audio = normalize_loudness(audio, self.normalize_db)
        clip = self.clips[idx]
        return {"audio": torch.from_numpy(np.ascontiguousarray(audio)), "caption": clip.caption,
                "bpm": clip.bpm, "key": clip.key, "meter": clip.meter}


def collate(items: list[dict[str, object]]) -> dict[str, object]:
    """Stack audio (B, C, N) and conditions; captions stay a list of str."""
    return {
        "audio": torch.stack([i["audio"] for i in items]),  # type: ignore[misc]
        "caption": [i["caption"] for i in items],
        "bpm": torch.tensor([i["bpm"] for i in items], dtype=torch.float32),
        "key": torch.tensor([i["key"] for i in items], dtype=torch.int64),
        "meter": torch.tensor([i["meter"] for i in items], dtype=torch.int64),
    }
