"""Neighbour agreement of every model pair, in one pass over the lists per dataset and stage.

The definition is SQL (``sql/macros/knn_agreement_examples.sql``): per example both models
embedded, the Jaccard of the two k-nearest-neighbour sets. Evaluated as written it joins
every pair's lists and intersects them element by element: pairs x examples x k^2. Here
the same values come from work that grows with models x examples:

1. DuckDB streams the lists of all models for a range of examples (``idx``); they become
   one array ``lists[example, model, position]`` (:func:`blocks`).
2. Per example, the ids of all models' first k are sorted once (numpy, vectorised); each
   distinct id gets a slot, and each model's set becomes a bitmap over the slots
   (``ceil(models * k / 64)`` words).
3. A pair's overlap is the popcount of ``bitmap_i & bitmap_j``, for all pairs.

Steps 2-3 and the rank sums walk each example's sorted ids once, compiled with numba
(parallel over examples). Every k of a sweep comes from the same lists, read once.
Optionally (``ranks``) it also gives Spearman's rho of the two lists' ranks over their union
(:func:`spearman_union`). A list is read as a set: an id repeated in one list counts once.
The tests check every value against the SQL macros and an independent recount.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ce.store.errors import QueryError
from ce.store.schema import HEAD

from .sql import execute

CELLS_AT_ONCE = 2**22  # ids (examples x models x k) sorted at a time: bounds the kernel's memory
IDS_AT_ONCE = 2**25  # ids (examples x models x k_max) read from the store by one query
SOURCE = (  # the rows of knn_agreement($k) from the registered kernel results (Measure.summary_sql)
    "(select *, chance_knn_jaccard(k, n - 1) as chance_jaccard,"
    " chance_knn_rank_rho(k, n - 1) as chance_rank_rho from _knn_agreement where k = $k)"
)
SUMS = pa.schema(
    [
        ("dataset", pa.string()),
        ("stage", pa.string()),
        ("model_i", pa.string()),
        ("model_j", pa.string()),
        ("k", pa.int64()),
        ("n", pa.int64()),
        ("mean_jaccard", pa.float64()),
        ("var_jaccard", pa.float64()),
        ("mutual_knn", pa.float64()),
        ("rank_n", pa.int64()),
        ("mean_rank_rho", pa.float64()),
        ("var_rank_rho", pa.float64()),
    ]
)


@dataclass
class Block:
    """The neighbour lists of a range of examples: ``lists[e, m, p]`` (the p-th neighbour of
    example e for model m, -1 past the list's end), ``lengths[e, m]`` (0: model m has no
    list for e)."""

    lists: np.ndarray
    lengths: np.ndarray

    def parts(self) -> Iterator[Block]:
        """The block in pieces of at most CELLS_AT_ONCE ids (the kernel's working set)."""
        n_examples, n_models, k_max = self.lists.shape
        step = max(1, CELLS_AT_ONCE // (n_models * k_max))
        for start in range(0, n_examples, step):
            yield Block(self.lists[start : start + step], self.lengths[start : start + step])


def blocks(
    con: duckdb.DuckDBPyConnection, dataset: str, stage: str, models: list[str], k_max: int
) -> Iterator[Block]:
    """The lists of ``models`` (first ``k_max`` ids) in blocks of examples, streamed: each
    block is one query over an idx range of about IDS_AT_ONCE / (models x k_max) examples."""
    per_block = max(1, IDS_AT_ONCE // (len(models) * k_max))
    where = {"dataset": dataset, "stage": stage}
    starts = [
        r[0]
        for r in execute(
            con,
            "select idx from (select distinct idx from neighbors where dataset = $dataset and stage = $stage)"
            " qualify (row_number() over (order by idx) - 1) % $every = 0 order by idx",
            where | {"every": per_block},
        ).fetchall()
    ]
    column = "neighbors_head" if k_max <= HEAD else f"neighbors[1:{k_max}]"
    for lo, hi in zip(starts, [*starts[1:], None], strict=True):
        batch = execute(
            con,
            f"select list_position($models, model) - 1 as m, idx, {column} as nearest from neighbors"
            " where dataset = $dataset and stage = $stage and idx >= $lo and ($hi is null or idx < $hi)",
            where | {"lo": lo, "hi": hi, "models": models},
        ).to_arrow_table()
        yield _block(batch, models, k_max, dataset, stage)


def _block(batch: pa.Table, models: list[str], k_max: int, dataset: str, stage: str) -> Block:
    idx = batch["idx"].to_numpy()
    present, example = np.unique(idx, return_inverse=True)
    nearest = batch["nearest"].combine_chunks()
    if nearest.values.null_count:  # SQL reads a list as a set without its nulls: refuse, never guess
        first_null = pc.index(nearest.values.is_null(), True).as_py()
        row = pc.list_parent_indices(nearest)[first_null].as_py()
        raise QueryError(
            f"the neighbour list of example idx {int(idx[row])} for model"
            f" {models[int(batch['m'][row].as_py())]!r} ({dataset}, {stage}) holds a null id; remove"
            " the run that wrote it (ce runs) or re-extract the model"
        )
    offsets = nearest.offsets.to_numpy(zero_copy_only=False)
    values = nearest.values.to_numpy(zero_copy_only=False).astype(np.int32)
    valid = nearest.is_valid().to_numpy(zero_copy_only=False)
    lists = np.full((len(present), len(models), k_max), -1, dtype=np.int32)
    lengths = np.zeros((len(present), len(models)), dtype=np.int32)
    from .knn_compiled import fill

    twice = fill(lists, lengths, example, batch["m"].to_numpy(), offsets, values, valid)
    if twice >= 0:
        raise QueryError(
            f"the store holds two neighbour lists of example idx {int(idx[twice])} for model"
            f" {models[int(batch['m'][twice].as_py())]!r} ({dataset}, {stage}); remove one of the"
            " runs that wrote them (ce runs) or re-import the bundle"
        )
    return Block(lists, lengths)


def _sorted_ids(lists: np.ndarray, k: int) -> tuple[np.ndarray, int, int]:
    """Per example, all models' first k ids sorted, each packed with where it came from:
    ``key = id << low | m << shift | p`` (ids offset to be non-negative; -1 past a list's
    end). Returns (keys, low, shift)."""
    n_examples, n_models, _ = lists.shape
    shift = max(1, (k - 1).bit_length())
    low = max(1, (n_models - 1).bit_length()) + shift
    values = lists[:, :, :k]
    top = int(values.max()) + 1 if values.size else 0
    small = values.min(initial=0) >= -1 and (top + 1) < 2 ** (31 - low)
    dtype = np.int32 if small else np.int64
    offset = 1 if small else 2**31
    origin = ((np.arange(n_models)[:, None] << shift) + np.arange(k)[None, :]).astype(dtype)
    keys = (values.astype(dtype) + dtype(offset)) << dtype(low)
    keys |= origin
    keys = keys.reshape(n_examples, n_models * k)
    keys.sort(axis=1)
    return keys, low, shift


def overlaps(lists: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(``shared[pair, e]``: the ids both models' first-k sets hold, for every pair i < j
    in the order of :func:`pairs`; ``size[m, e]``: the distinct ids of each set)."""
    n_models = lists.shape[1]
    keys, low, shift = _sorted_ids(lists, k)
    from .knn_compiled import overlaps as compiled

    return compiled(keys, low, shift, n_models, (n_models * k + 63) // 64)


def pairs(n_models: int) -> tuple[np.ndarray, np.ndarray]:
    """Every pair of model positions (i < j), in name order, as :func:`overlaps` lists them."""
    i, j = np.triu_indices(n_models, 1)
    return i, j


def rank_sums(lists: np.ndarray, k: int) -> tuple[np.ndarray, ...]:
    """Per pair (as :func:`pairs`) and example, over the ids both first-k lists hold: their
    number s and the sums of their 1-based ranks p (in model i's list), q (in model j's) and
    p*q. A repeated id takes the rank of its first place."""
    n_models = lists.shape[1]
    keys, low, shift = _sorted_ids(lists, k)
    from .knn_compiled import rank_sums as compiled

    return compiled(keys, low, shift, n_models)


def spearman_union(k: int, s, sp, sq, spq) -> np.ndarray:
    """Spearman's rho between two k-lists over their union: each list ranks its own ids 1..k
    and ties the ids only the other holds at the bottom (their mid-rank), as Spearman's rho
    with ties does. From the shared ids' count s and rank sums (see :func:`rank_sums`); NaN
    where the union holds one id (k = 1, the same neighbour): no ranks to correlate."""
    s, sp, sq, spq = (np.asarray(x, dtype=np.float64) for x in (s, sp, sq, spq))
    union = 2 * k - s
    tie = (k + 1 + union) / 2
    total = k * (k + 1) / 2
    mean = (total + (k - s) * tie) / union
    squares = k * (k + 1) * (2 * k + 1) / 6 + (k - s) * tie**2
    cross = spq + tie * (total - sp) + tie * (total - sq)
    spread = squares - union * mean**2
    defined = spread > 1e-9
    return np.where(defined, (cross - union * mean**2) / np.where(defined, spread, 1.0), np.nan)


@dataclass
class Moments:
    """Count, mean and sum of squared deviations per pair, merged block by block (Chan et al.)."""

    n: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    @classmethod
    def zeros(cls, pairs: int) -> Moments:
        return cls(np.zeros(pairs, np.int64), np.zeros(pairs), np.zeros(pairs))

    def add(self, values: np.ndarray, valid: np.ndarray) -> None:
        """Merge ``values[pair, e]`` where ``valid``."""
        n = valid.sum(axis=1)
        mean = np.where(valid, values, 0.0).sum(axis=1) / np.maximum(n, 1)
        self.merge(n, mean, np.where(valid, (values - mean[:, None]) ** 2, 0.0).sum(axis=1))

    def merge(self, n: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Merge the count, mean and squared deviations of another set of values."""
        both = self.n + n
        delta = mean - self.mean
        self.mean = self.mean + delta * n / np.maximum(both, 1)
        self.m2 = self.m2 + m2 + delta**2 * self.n * n / np.maximum(both, 1)
        self.n = both

    def means(self) -> list:
        return [None if n == 0 else float(x) for n, x in zip(self.n, self.mean, strict=True)]

    def variances(self) -> list:
        return [None if n == 0 else float(x / n) for n, x in zip(self.n, self.m2, strict=True)]


def held_lists(con: duckdb.DuckDBPyConnection, dataset: str | None) -> list[tuple[str, str, list[str]]]:
    """(dataset, stage, models in name order) of every set of stored neighbour lists."""
    return execute(
        con,
        "select dataset, stage, list(distinct model order by model) from neighbors"
        " where $dataset is null or dataset = $dataset group by all order by all",
        {"dataset": dataset},
    ).fetchall()


def agreement(
    con: duckdb.DuckDBPyConnection, ks: list[int], ranks: bool = False, dataset: str | None = None
) -> pa.Table:
    """Per dataset, stage, model pair (name order) and k of ``ks``: the examples both models
    listed to k (``n``), the mean and population variance of their Jaccard, the mean
    mutual-kNN overlap |A and B| / k and, with ``ranks``, the mean and variance of
    Spearman's rho over the union (``rank_n``: the examples where it is defined)."""
    from .knn_compiled import jaccard_moments

    ks = sorted(set(ks))
    out: dict[str, list] = {f.name: [] for f in SUMS}
    for ds, stage, models in held_lists(con, dataset):
        if len(models) < 2:
            continue
        i, j = pairs(len(models))
        jac, mutual, rho = ({k: Moments.zeros(len(i)) for k in ks} for _ in range(3))
        for block in (part for whole in blocks(con, ds, stage, models, max(ks)) for part in whole.parts()):
            for k in ks:
                listed = (block.lengths >= k).T  # (model, example)
                shared, size = overlaps(block.lists, k)
                n, mean, m2, mean_shared = jaccard_moments(shared, size, listed, i, j)
                jac[k].merge(n, mean, m2)
                mutual[k].merge(n, mean_shared / k, np.zeros(len(i)))
                if ranks:
                    valid = listed[i] & listed[j]
                    values = spearman_union(k, *rank_sums(block.lists, k))
                    distinct = (size[i] == k) & (size[j] == k)  # a repeated id: no ranks
                    rho[k].add(np.nan_to_num(values), valid & distinct & ~np.isnan(values))
        for k in ks:
            count = len(i)
            out["dataset"] += [ds] * count
            out["stage"] += [stage] * count
            out["model_i"] += [models[a] for a in i]
            out["model_j"] += [models[b] for b in j]
            out["k"] += [k] * count
            out["n"] += jac[k].n.tolist()
            out["mean_jaccard"] += jac[k].means()
            out["var_jaccard"] += jac[k].variances()
            out["mutual_knn"] += mutual[k].means()
            out["rank_n"] += rho[k].n.tolist() if ranks else [None] * count
            out["mean_rank_rho"] += rho[k].means() if ranks else [None] * count
            out["var_rank_rho"] += rho[k].variances() if ranks else [None] * count
    table = pa.table(out, schema=SUMS)
    return table.filter(pc.greater(table["n"], 0))  # as the SQL: pairs with examples in common
