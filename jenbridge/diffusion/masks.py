"""Frame masks for JEN-1's in-context tasks (numpy only).

A mask is a float32 array of shape (T,) over latent frames: **1 = frame to generate, 0 = known
context**. The U-Net sees the masked clean latent `x0 * (1 - mask)` and the mask itself next to
the noisy latent, so one set of weights does every task:

- TEXT_TO_MUSIC: all ones (nothing known).
- INPAINT: one or more random spans inside the clip, covering a fraction of it.
- CONTINUATION: the right part (a suffix) is generated; run unidirectionally (causal).
- LEFT_EXTENSION: the left part (a prefix) is generated.
- MULTI_SPAN: several disjoint spans at once.

JEN-1 trains on the first three (batch split in thirds); left extension and multi-span infill
are bidirectional inpainting with particular masks, which the training inpainting task covers by
drawing 1..`TRAIN_MAX_SPANS` spans that may touch the clip's ends.

Random builders take a `numpy.random.Generator` and a covered-fraction range (lo, hi): the
number of generated frames n is uniform over the integers in [ceil(lo*T), floor(hi*T)]
intersected with [1, T-1] (at least one generated and one known frame); a range with no such
integer is a ValueError.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from jenbridge.config import TaskSplit

TRAIN_MAX_SPANS = 3  # inpainting rows in training draw 1..3 spans


class Task(Enum):
    TEXT_TO_MUSIC = "text_to_music"
    INPAINT = "inpaint"
    CONTINUATION = "continuation"
    LEFT_EXTENSION = "left_extension"
    MULTI_SPAN = "multi_span"


CAUSAL_TASKS = frozenset({Task.CONTINUATION})
TRAINING_TASKS = (Task.TEXT_TO_MUSIC, Task.INPAINT, Task.CONTINUATION)  # TaskSplit's order


def is_causal(task: Task) -> bool:
    """Whether `task` runs the U-Net unidirectionally (causal convs and attention)."""
    return task in CAUSAL_TASKS


def _check_frames(T: int) -> None:
    if T < 2:
        raise ValueError(f"a mask needs at least 2 frames (one known, one generated), got T={T}")


def _count(T: int, rng: np.random.Generator, fraction: Sequence[float], spans: int = 1) -> int:
    """Number of frames to generate: uniform over the allowed integers (see module docstring),
    further limited to counts that can form `spans` disjoint, non-adjacent spans."""
    _check_frames(T)
    if len(fraction) != 2:
        raise ValueError(f"fraction must be a (lo, hi) pair, got {fraction!r}")
    lo, hi = float(fraction[0]), float(fraction[1])
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"fraction range must satisfy 0 <= lo <= hi <= 1, got ({lo}, {hi})")
    n_min = max(math.ceil(lo * T - 1e-9), 1)
    n_max = min(math.floor(hi * T + 1e-9), T - 1)
    if n_min > n_max:
        raise ValueError(
            f"no whole number of frames in 1..{T - 1} covers a fraction in [{lo}, {hi}] of T={T}"
        )
    n_min, n_max = max(n_min, spans), min(n_max, T - spans + 1)
    if n_min > n_max:
        raise ValueError(
            f"no {spans} disjoint spans in T={T} frames cover a fraction in [{lo}, {hi}]"
        )
    return int(rng.integers(n_min, n_max + 1))


def _composition(total: int, parts: int, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random split of `total` into `parts` integers >= 0 (stars and bars)."""
    bars = np.sort(rng.choice(total + parts - 1, size=parts - 1, replace=False))
    edges = np.concatenate([[-1], bars, [total + parts - 1]])
    return np.diff(edges) - 1


def _spans(T: int, n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """k disjoint, non-adjacent spans of total length n at random places in T frames."""
    lengths = _composition(n - k, k, rng) + 1  # each span >= 1 frame
    gaps = _composition(T - n - (k - 1), k + 1, rng)  # outer gaps >= 0, inner gaps >= 1
    gaps[1:-1] += 1
    mask = np.zeros(T, dtype=np.float32)
    pos = 0
    for length, gap in zip(lengths, gaps[:-1]):
        pos += int(gap)
        mask[pos : pos + int(length)] = 1.0
        pos += int(length)
    return mask


def _max_spans(T: int, n: int) -> int:
    """Most disjoint non-adjacent spans n generated frames can form among T frames."""
    return min(n, T - n + 1)


def text_to_music_mask(T: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """All ones, shape (T,): every frame is generated. `rng` is unused (shared signature)."""
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    return np.ones(T, dtype=np.float32)


def inpaint_mask(
    T: int,
    rng: np.random.Generator,
    fraction: Sequence[float] = (0.2, 0.8),
    max_spans: int = 1,
) -> np.ndarray:
    """Random disjoint spans (1..max_spans of them, uniform) covering a fraction of T frames.

    Spans may touch either end of the clip. Fewer spans are drawn when the frames cannot form
    that many disjoint ones.
    """
    if max_spans < 1:
        raise ValueError(f"max_spans must be >= 1, got {max_spans}")
    n = _count(T, rng, fraction)
    k = int(rng.integers(1, min(max_spans, _max_spans(T, n)) + 1))
    return _spans(T, n, k, rng)


def multi_span_mask(
    T: int,
    rng: np.random.Generator,
    fraction: Sequence[float] = (0.2, 0.8),
    spans: int = 3,
) -> np.ndarray:
    """Exactly `spans` (>= 2) disjoint, non-adjacent random spans covering a fraction of T frames.

    The frame count is drawn among those in the range that can form `spans` disjoint,
    non-adjacent spans (at least `spans` generated and `spans - 1` known frames); ValueError if
    there is none.
    """
    if spans < 2:
        raise ValueError(f"a multi-span mask needs spans >= 2, got {spans}")
    n = _count(T, rng, fraction, spans)
    return _spans(T, n, spans, rng)


def continuation_mask(
    T: int, rng: np.random.Generator, fraction: Sequence[float] = (0.2, 0.8)
) -> np.ndarray:
    """The right part (a suffix of n frames) is generated, the left part is the prompt."""
    n = _count(T, rng, fraction)
    mask = np.zeros(T, dtype=np.float32)
    mask[T - n :] = 1.0
    return mask


def left_extension_mask(
    T: int, rng: np.random.Generator, fraction: Sequence[float] = (0.2, 0.8)
) -> np.ndarray:
    """The left part (a prefix of n frames) is generated, the right part is known."""
    n = _count(T, rng, fraction)
    mask = np.zeros(T, dtype=np.float32)
    mask[:n] = 1.0
    return mask


BUILDERS: dict[Task, Callable[..., np.ndarray]] = {
    Task.TEXT_TO_MUSIC: text_to_music_mask,
    Task.INPAINT: inpaint_mask,
    Task.CONTINUATION: continuation_mask,
    Task.LEFT_EXTENSION: left_extension_mask,
    Task.MULTI_SPAN: multi_span_mask,
}


def mask_from_regions(T: int, regions: Sequence[tuple[int, int]]) -> np.ndarray:
    """Mask of shape (T,) generating the union of half-open frame regions [start, end).

    Regions may overlap or touch; each needs 0 <= start < end <= T. At least one region.
    """
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    if len(regions) == 0:
        raise ValueError("mask_from_regions needs at least one (start, end) region")
    mask = np.zeros(T, dtype=np.float32)
    for region in regions:
        if len(region) != 2:
            raise ValueError(f"region {region!r} is not a (start, end) pair of frames")
        start, end = (int(v) for v in region)
        if not 0 <= start < end <= T:
            raise ValueError(f"region [{start}, {end}) must satisfy 0 <= start < end <= T={T}")
        mask[start:end] = 1.0
    return mask


def _split_weights(split: TaskSplit) -> np.ndarray:
    w = np.array([split.text_to_music, split.inpaint, split.continuation], dtype=np.float64)
    if not np.all(np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"task split fractions must be >= 0 with a positive sum, got {w.tolist()}")
    return w / w.sum()


def sample_tasks(batch: int, split: TaskSplit, rng: np.random.Generator) -> list[Task]:
    """Assign each of `batch` rows a training task in the TaskSplit's proportions.

    Each task gets floor(batch * p) rows; the remaining rows go to tasks by systematic sampling
    on the fractional parts, so every task's expected count is exactly batch * p (JEN-1 thirds:
    a batch of 4 gets 2/1/1 in a random order of who gets 2). Returned grouped in TaskSplit order
    (text-to-music, inpaint, continuation).
    """
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    share = _split_weights(split) * batch
    counts = np.floor(share).astype(np.int64)
    frac = share - counts
    remainder = round(batch - counts.sum())
    if remainder > 0:
        edges = np.concatenate([[0.0], np.cumsum(frac)])
        points = rng.uniform() + np.arange(remainder)
        picked = np.searchsorted(edges, points, side="right") - 1
        counts += np.bincount(np.clip(picked, 0, 2), minlength=3)
    return [task for task, c in zip(TRAINING_TASKS, counts) for _ in range(int(c))]


def training_masks(
    batch: int,
    T: int,
    split: TaskSplit,
    inpaint_fraction: Sequence[float],
    continuation_fraction: Sequence[float],
    rng: np.random.Generator,
) -> tuple[list[Task], np.ndarray, np.ndarray]:
    """Tasks, masks and causal flags for one JEN-1 training batch.

    Returns (tasks: list of `batch` Task, masks: float32 (batch, T) with 1 = generate,
    causal: float32 (batch,) with 1 exactly for continuation rows). Inpainting rows draw
    1..TRAIN_MAX_SPANS spans.
    """
    tasks = sample_tasks(batch, split, rng)
    build: dict[Task, Callable[[], np.ndarray]] = {
        Task.TEXT_TO_MUSIC: lambda: text_to_music_mask(T),
        Task.INPAINT: lambda: inpaint_mask(T, rng, inpaint_fraction, TRAIN_MAX_SPANS),
        Task.CONTINUATION: lambda: continuation_mask(T, rng, continuation_fraction),
    }
    masks = np.stack([build[task]() for task in tasks]).astype(np.float32, copy=False)
    causal = np.array([is_causal(t) for t in tasks], dtype=np.float32)
    return tasks, masks, causal
