"""Task masks (1 = generate, 0 = known): shapes, coverage ranges, placement, batch task split."""

from __future__ import annotations

import numpy as np
import pytest

from jenbridge.config import TaskSplit
from jenbridge.diffusion.masks import (
    BUILDERS,
    TRAIN_MAX_SPANS,
    Task,
    continuation_mask,
    inpaint_mask,
    is_causal,
    left_extension_mask,
    mask_from_regions,
    multi_span_mask,
    sample_tasks,
    text_to_music_mask,
    training_masks,
)


def runs(mask: np.ndarray) -> int:
    """Number of maximal runs of ones."""
    return int(np.sum(np.diff(np.concatenate([[0.0], mask])) == 1.0))


@pytest.mark.parametrize("task", list(Task))
def test_builders_shape_dtype_values(task):
    rng = np.random.default_rng(0)
    for T in (8, 37, 256):
        m = BUILDERS[task](T, rng)
        assert m.shape == (T,) and m.dtype == np.float32
        assert set(np.unique(m)) <= {0.0, 1.0}
        assert m.sum() >= 1


def test_text_to_music_all_ones():
    assert np.all(text_to_music_mask(5) == 1.0)


@pytest.mark.parametrize("builder", [inpaint_mask, continuation_mask, left_extension_mask,
                                     multi_span_mask])
@pytest.mark.parametrize("fraction", [(0.2, 0.8), (0.1, 0.3), (0.5, 0.5)])
def test_covered_fraction_within_range(builder, fraction):
    rng = np.random.default_rng(1)
    T = 100
    covered = np.array([builder(T, rng, fraction).mean() for _ in range(400)])
    lo, hi = fraction
    assert covered.min() >= lo - 1e-9 and covered.max() <= hi + 1e-9
    if hi > lo:  # the whole range gets used, roughly uniformly
        assert covered.min() < lo + 0.05 and covered.max() > hi - 0.05
        assert abs(covered.mean() - (lo + hi) / 2) < 0.03


def test_small_clip_exact_range():
    """On a short clip the frame count is still inside [ceil(lo*T), floor(hi*T)] and leaves
    at least one known frame."""
    rng = np.random.default_rng(2)
    for T in (2, 3, 5, 9):
        counts = {int(continuation_mask(T, rng, (0.2, 0.8)).sum()) for _ in range(200)}
        assert min(counts) >= max(1, int(np.ceil(0.2 * T))) and max(counts) <= T - 1


def test_continuation_is_a_suffix_and_left_extension_a_prefix():
    rng = np.random.default_rng(3)
    for _ in range(200):
        T = int(rng.integers(2, 64))
        c = continuation_mask(T, rng)
        assert runs(c) == 1 and c[-1] == 1.0 and c[0] == 0.0 and np.all(np.diff(c) >= 0)
        e = left_extension_mask(T, rng)
        assert runs(e) == 1 and e[0] == 1.0 and e[-1] == 0.0 and np.all(np.diff(e) <= 0)


def test_multi_span_exact_disjoint_count():
    rng = np.random.default_rng(4)
    for T in (8, 64):
        for spans in (2, 3, 4):
            for _ in range(100):
                m = multi_span_mask(T, rng, (0.2, 0.8), spans=spans)
                assert runs(m) == spans  # maximal runs == spans: disjoint and not touching
                assert 0.2 * T <= m.sum() <= 0.8 * T


def test_inpaint_span_counts():
    rng = np.random.default_rng(5)
    assert {runs(inpaint_mask(50, rng)) for _ in range(100)} == {1}
    seen = {runs(inpaint_mask(50, rng, max_spans=TRAIN_MAX_SPANS)) for _ in range(300)}
    assert seen == set(range(1, TRAIN_MAX_SPANS + 1))
    # spans reach the clip's ends sometimes (left-extension / continuation shaped infill)
    masks = [inpaint_mask(20, rng) for _ in range(300)]
    assert any(m[0] == 1.0 for m in masks) and any(m[-1] == 1.0 for m in masks)


def test_mask_from_regions():
    m = mask_from_regions(10, [(0, 2), (5, 7), (6, 8)])
    assert m.tolist() == [1, 1, 0, 0, 0, 1, 1, 1, 0, 0]
    assert m.dtype == np.float32
    assert np.all(mask_from_regions(4, [(0, 4)]) == 1.0)
    for bad in ([], [(3, 3)], [(-1, 2)], [(2, 11)], [(5, 2)], [(1, 2, 3)]):
        with pytest.raises(ValueError):
            mask_from_regions(10, bad)


def test_mask_errors():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="at least 2 frames"):
        continuation_mask(1, rng)
    for bad in [(0.8, 0.2), (-0.1, 0.5), (0.5, 1.2), (0.5,)]:
        with pytest.raises(ValueError, match="fraction"):
            inpaint_mask(100, rng, bad)
    with pytest.raises(ValueError, match="no whole number"):
        continuation_mask(4, rng, (0.3, 0.45))  # 1.2..1.8 frames
    with pytest.raises(ValueError, match="spans >= 2"):
        multi_span_mask(64, rng, spans=1)
    with pytest.raises(ValueError, match="disjoint spans"):
        multi_span_mask(8, rng, (0.875, 0.875), spans=3)  # 7 of 8 frames: one known frame
    with pytest.raises(ValueError, match="max_spans"):
        inpaint_mask(64, rng, max_spans=0)


def test_causal_tasks():
    assert is_causal(Task.CONTINUATION)
    assert not any(is_causal(t) for t in Task if t is not Task.CONTINUATION)


def test_sample_tasks_split():
    rng = np.random.default_rng(6)
    thirds = TaskSplit()
    tasks = sample_tasks(4, thirds, rng)
    assert len(tasks) == 4 and sorted({tasks.count(t) for t in set(tasks)}) == [1, 2]
    assert sample_tasks(8, TaskSplit(text_to_music=2.0), rng).count(Task.TEXT_TO_MUSIC) == 4
    only = TaskSplit(text_to_music=1.0, inpaint=0.0, continuation=0.0)
    assert sample_tasks(5, only, rng) == [Task.TEXT_TO_MUSIC] * 5
    # expected counts are exact even when the batch does not divide: batch 1 over many draws
    uneven = TaskSplit(text_to_music=0.5, inpaint=0.3, continuation=0.2)
    draws = [sample_tasks(1, uneven, rng)[0] for _ in range(4000)]
    for task, p in zip((Task.TEXT_TO_MUSIC, Task.INPAINT, Task.CONTINUATION), (0.5, 0.3, 0.2)):
        assert abs(draws.count(task) / 4000 - p) < 0.03
    big = sample_tasks(3000, thirds, rng)
    assert all(big.count(t) == 1000 for t in (Task.TEXT_TO_MUSIC, Task.INPAINT,
                                              Task.CONTINUATION))
    with pytest.raises(ValueError, match="split"):
        sample_tasks(4, TaskSplit(text_to_music=-1.0), rng)
    with pytest.raises(ValueError, match="split"):
        sample_tasks(4, TaskSplit(text_to_music=0.0, inpaint=0.0, continuation=0.0), rng)
    with pytest.raises(ValueError, match="batch"):
        sample_tasks(0, thirds, rng)


def test_training_masks():
    rng = np.random.default_rng(7)
    tasks, masks, causal = training_masks(30, 40, TaskSplit(), (0.2, 0.8), (0.2, 0.8), rng)
    assert masks.shape == (30, 40) and masks.dtype == np.float32 and causal.shape == (30,)
    for task, m, c in zip(tasks, masks, causal):
        assert c == (1.0 if task is Task.CONTINUATION else 0.0)
        if task is Task.TEXT_TO_MUSIC:
            assert np.all(m == 1.0)
        elif task is Task.CONTINUATION:
            assert runs(m) == 1 and m[-1] == 1.0 and 8 <= m.sum() <= 32
        else:
            assert 1 <= runs(m) <= TRAIN_MAX_SPANS and 8 <= m.sum() <= 32
    assert [tasks.count(t) for t in (Task.TEXT_TO_MUSIC, Task.INPAINT, Task.CONTINUATION)] == [
        10, 10, 10]
