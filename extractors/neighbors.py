"""Nearest neighbours by cosine with FAISS: exact by default, HNSW behind a flag.

Vectors are L2-normalised in place (no second copy), queries are searched in blocks so that
memory stays near the size of the embedding matrix, the query itself is excluded, and ties
are broken by the smaller index so that every run gives the same lists.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from ce.engine.errors import CeError

INDEXES = ("exact", "hnsw")
BLOCK = 4096
TIE_MARGIN = 4  # extra candidates fetched so that ties at the K_max boundary break by index


@dataclass
class NeighborLists:
    indices: np.ndarray  # (n, k) int64, nearest first
    similarities: np.ndarray  # (n, k) float32, cosine
    provenance: dict = field(default_factory=dict)


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (float32, C-contiguous); zero rows stay zero."""
    if vectors.dtype != np.float32 or not (vectors.flags.c_contiguous and vectors.flags.writeable):
        vectors = np.array(vectors, dtype=np.float32, order="C")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    np.divide(vectors, np.maximum(norms, 1e-12), out=vectors)
    return vectors


def check_k(k_max: int, n: int) -> int:
    if k_max < 1:
        raise CeError("--k-max must be at least 1")
    return min(k_max, n - 1)


def _search_block(search: Callable, block: np.ndarray, start: int, k: int):
    """Top-k of one block of queries, self excluded, ties broken by index."""
    sims, idx = search(block)
    rows = np.arange(len(block))[:, None]
    own = idx == (start + rows)
    sims = np.where(own | (idx < 0), -np.inf, sims)
    order = np.lexsort((np.where(idx < 0, np.iinfo(np.int64).max, idx), -sims), axis=1)
    idx, sims = np.take_along_axis(idx, order, 1)[:, :k], np.take_along_axis(sims, order, 1)[:, :k]
    return idx.astype(np.int64), sims.astype(np.float32)


def neighbors(
    vectors: np.ndarray, k_max: int = 100, index: str = "exact", progress: Callable[[int], None] | None = None
) -> NeighborLists:
    """The ``k_max`` nearest neighbours of every row among the other rows, by cosine."""
    import faiss

    if index not in INDEXES:
        raise CeError(f"unknown index {index!r}; use {' or '.join(INDEXES)}")
    x = normalize(vectors)
    n, dim = x.shape
    k = check_k(k_max, n)
    if k < 1:
        raise CeError("need at least two embedded examples to find neighbours")
    fetch = min(n, k + 1 + TIE_MARGIN)
    if index == "exact":

        def search(q):
            return faiss.knn(q, x, fetch, metric=faiss.METRIC_INNER_PRODUCT)

        provenance = {"index": "exact (faiss.knn, inner product)"}
    else:
        hnsw = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        hnsw.hnsw.efSearch = max(64, 2 * fetch)
        hnsw.add(x)

        def search(q):
            return hnsw.search(q, fetch)

        provenance = {"index": f"hnsw (M=32, efSearch={hnsw.hnsw.efSearch})"}
    out_idx = np.empty((n, k), np.int64)
    out_sim = np.empty((n, k), np.float32)
    for start in range(0, n, BLOCK):
        block = x[start : start + BLOCK]
        out_idx[start : start + len(block)], out_sim[start : start + len(block)] = _search_block(
            search, block, start, k
        )
        if progress:
            progress(len(block))
    if index != "exact":
        provenance[f"recall_at_{k}"] = _recall(x, out_idx, k)
    return NeighborLists(out_idx, out_sim, provenance | {"k_max": k})


def _recall(x: np.ndarray, approx: np.ndarray, k: int, sample: int = 1000) -> float:
    """recall@k of approximate lists against exact search, on a fixed sample of queries."""
    import faiss

    rng = np.random.default_rng(0)
    rows = np.sort(rng.choice(len(x), size=min(sample, len(x)), replace=False))
    hits = 0
    for start in range(0, len(rows), BLOCK):
        chunk = rows[start : start + BLOCK]
        _, exact = faiss.knn(x[chunk], x, min(len(x), k + 1), metric=faiss.METRIC_INNER_PRODUCT)
        for r, ex in zip(chunk, exact, strict=True):
            truth = set(ex[ex != r][:k].tolist())
            hits += len(truth & set(approx[r].tolist()))
    return hits / (len(rows) * k)


def neighbors_table(example_ids: pa.Array, idx: np.ndarray, lists: NeighborLists) -> pa.Table:
    """Rows of the store's neighbors kind; neighbour positions become example idx values."""
    k = lists.indices.shape[1]
    as_idx = idx[lists.indices]  # search positions -> dataset idx
    return pa.table(
        {
            "example_id": example_ids,
            "idx": pa.array(idx, pa.int64()),
            "neighbors": pa.FixedSizeListArray.from_arrays(pa.array(as_idx.reshape(-1)), k),
            "similarities": pa.FixedSizeListArray.from_arrays(pa.array(lists.similarities.reshape(-1)), k),
        }
    )


def recompute_neighbors(
    store,
    model: str,
    dataset: str,
    stage: str = "finetuned",
    k_max: int = 100,
    index: str = "exact",
    progress: bool = True,
) -> dict:
    """``ce neighbors``: neighbour lists from embeddings already in the store."""
    from ce.engine.read import read_embeddings

    from .extract import search_with_progress

    if index not in INDEXES:
        raise CeError(f"unknown index {index!r}; use {' or '.join(INDEXES)}")
    check_k(k_max, 2)
    ids, idx, vectors = read_embeddings(store, model, stage, dataset)
    if len(vectors) < 2:
        raise CeError("need at least two embedded examples to find neighbours")
    params = {"model": model, "stage": stage, "dataset": dataset, "k_max": k_max, "index": index}
    with store.run("neighbors", params, model=model, dataset=dataset, stage=stage) as run:
        lists = search_with_progress(vectors, k_max, index, progress)
        run.annotate(neighbors=lists.provenance)
        run.write(
            "neighbors",
            {"model": model, "stage": stage, "dataset": dataset},
            neighbors_table(ids, idx, lists),
        )
    return {"run_id": run.run_id, "examples": len(vectors), **lists.provenance}
