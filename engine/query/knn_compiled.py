"""The compiled loops of the neighbour-agreement kernel (see ce.query.knn), apart so that
numba is imported, and its cache loaded, only when a kernel runs. Each walks one example's
ids at a time, in parallel over examples; ``cache=True`` keeps the machine code beside
this file after the first compilation."""

from __future__ import annotations

import os

import numba
import numpy as np

from ce.store.errors import QueryError

if os.environ.get("CE_THREADS"):
    try:
        threads = int(os.environ["CE_THREADS"])
    except ValueError:
        raise QueryError(
            f"CE_THREADS is {os.environ['CE_THREADS']!r}, not a number of threads; set it to a whole"
            " number such as 2, or unset it to use every core"
        ) from None
    numba.set_num_threads(max(1, min(threads, numba.config.NUMBA_NUM_THREADS)))


@numba.njit(cache=True)
def fill(lists, lengths, example, model, offsets, values, valid) -> int:  # pragma: no cover (compiled)
    """Place each row's list (its first k_max ids) at [example, model]; the first row that
    repeats an (example, model) already placed, or -1."""
    k_max = lists.shape[2]
    placed = np.zeros(lengths.shape, dtype=np.bool_)
    for r in range(len(example)):
        e, m = example[r], model[r]
        if placed[e, m]:
            return r
        placed[e, m] = True
        if not valid[r]:
            continue
        start, stop = offsets[r], offsets[r + 1]
        lengths[e, m] = stop - start
        for p in range(min(stop - start, k_max)):
            lists[e, m, p] = values[start + p]
    return -1


@numba.njit(cache=True, inline="always")
def popcount(x):  # pragma: no cover (compiled)
    x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
    x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
    x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
    return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)


@numba.njit(cache=True, parallel=True)
def overlaps(keys, low, shift, n_models, words):  # pragma: no cover (compiled)
    n_examples, width = keys.shape
    shared = np.zeros((n_models * (n_models - 1) // 2, n_examples), np.int32)
    sizes = np.zeros((n_models, n_examples), np.int32)
    model_bits = (1 << low) - 1
    for e in numba.prange(n_examples):
        bits = np.zeros((n_models, words), np.uint64)
        slot, last, last_model = -1, -1, -1
        for c in range(width):  # equal ids are adjacent: one slot each
            key = keys[e, c]
            value, m = key >> low, (key & model_bits) >> shift
            if value != last:
                slot, last = slot + 1, value
            elif m == last_model:
                continue  # the same id again in one list
            last_model = m
            bits[m, slot >> 6] |= np.uint64(1) << np.uint64(slot & 63)
        pair = 0
        for a in range(n_models):
            total = 0
            for w in range(words):
                total += popcount(bits[a, w])
            sizes[a, e] = total
            for b in range(a + 1, n_models):
                total = 0
                for w in range(words):
                    total += popcount(bits[a, w] & bits[b, w])
                shared[pair, e] = total
                pair += 1
    return shared, sizes


@numba.njit(cache=True, parallel=True)
def rank_sums(keys, low, shift, n_models):  # pragma: no cover (compiled)
    n_examples, width = keys.shape
    n_pairs = n_models * (n_models - 1) // 2
    s = np.zeros((n_pairs, n_examples), np.int64)
    sp, sq, spq = np.zeros_like(s), np.zeros_like(s), np.zeros_like(s)
    model_bits, place_bits = (1 << low) - 1, (1 << shift) - 1
    for e in numba.prange(n_examples):
        rank = np.zeros(n_models, np.int64)  # each model's rank of the current id (0: not held)
        c = 0
        while c < width:
            value, stop = keys[e, c] >> low, c
            while stop < width and keys[e, stop] >> low == value:
                m = (keys[e, stop] & model_bits) >> shift
                if rank[m] == 0:  # sorted by model, then place: the first place comes first
                    rank[m] = (keys[e, stop] & place_bits) + 1
                stop += 1
            for a in range(n_models):
                if rank[a] == 0:
                    continue
                for b in range(a + 1, n_models):
                    if rank[b] == 0:
                        continue
                    pair = a * n_models - a * (a + 1) // 2 + b - a - 1
                    s[pair, e] += 1
                    sp[pair, e] += rank[a]
                    sq[pair, e] += rank[b]
                    spq[pair, e] += rank[a] * rank[b]
            for c2 in range(c, stop):
                rank[(keys[e, c2] & model_bits) >> shift] = 0
            c = stop
    return s, sp, sq, spq


@numba.njit(cache=True, parallel=True)
def jaccard_moments(shared, size, listed, i, j):  # pragma: no cover (compiled)
    """Per pair, over the examples both models listed: their count, the mean and the sum of
    squared deviations of the Jaccard, and the mean overlap."""
    n_pairs, n_examples = shared.shape
    n, mean, m2, mean_shared = (
        np.zeros(n_pairs, np.int64),
        np.zeros(n_pairs),
        np.zeros(n_pairs),
        np.zeros(n_pairs),
    )
    for pair in numba.prange(n_pairs):
        a, b = i[pair], j[pair]
        count, total, overlap = 0, 0.0, 0.0
        for e in range(n_examples):
            if listed[a, e] and listed[b, e]:
                count += 1
                total += shared[pair, e] / max(size[a, e] + size[b, e] - shared[pair, e], 1)
                overlap += shared[pair, e]
        centre = total / max(count, 1)
        squares = 0.0
        for e in range(n_examples):
            if listed[a, e] and listed[b, e]:
                d = shared[pair, e] / max(size[a, e] + size[b, e] - shared[pair, e], 1) - centre
                squares += d * d
        n[pair], mean[pair], m2[pair], mean_shared[pair] = count, centre, squares, overlap / max(count, 1)
    return n, mean, m2, mean_shared
