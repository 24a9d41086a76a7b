"""Nearest neighbours by cosine with FAISS: exact by default, HNSW behind a flag.

Vectors are L2-normalised in place (no second copy) and searched in blocks of queries whose
lists go straight into the store, so memory stays near the size of the embedding matrix. The
query itself is excluded, and ties are broken by the smaller index, so every run gives the
same lists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pyarrow as pa

from ce.store.errors import CeError

INDEXES = ("exact", "hnsw")
BLOCK = 4096  # queries per search
TIE_MARGIN = 4  # extra candidates fetched so that ties at the K_max boundary break by index


def normalize(vectors: np.ndarray) -> np.ndarray:
    """L2-normalise rows in place (float32, C-contiguous); zero rows stay zero."""
    if vectors.dtype != np.float32 or not (vectors.flags.c_contiguous and vectors.flags.writeable):
        vectors = np.array(vectors, dtype=np.float32, order="C")
    norms = np.sqrt(np.einsum("ij,ij->i", vectors, vectors))[:, None]  # no (n, d) temporary
    np.divide(vectors, np.maximum(norms, 1e-12), out=vectors)
    return vectors


class NeighborSearch:
    """The ``k_max`` nearest other rows of every row of ``vectors`` (normalised in place)."""

    def __init__(self, vectors: np.ndarray, k_max: int = 100, index: str = "exact"):
        import faiss

        if index not in INDEXES:
            raise CeError(f"unknown index {index!r}; use {' or '.join(INDEXES)}")
        if k_max < 1:
            raise CeError("--k-max must be at least 1")
        if len(vectors) < 2:
            raise CeError("need at least two embedded examples to find neighbours")
        if len(vectors) > np.iinfo(np.int32).max:
            raise CeError("neighbour lists hold 32-bit example positions: at most 2**31 - 1 examples")
        self.x = normalize(vectors)
        self.k = min(k_max, len(self.x) - 1)
        self.fetch = min(len(self.x), self.k + 1 + TIE_MARGIN)
        self.index = index
        if index == "exact":
            self.provenance = {"index": "exact (faiss.knn, inner product)"}
        else:
            self._hnsw = faiss.IndexHNSWFlat(self.x.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
            self._hnsw.hnsw.efSearch = max(64, 2 * self.fetch)
            self._hnsw.add(self.x)
            self.provenance = {"index": f"hnsw (M=32, efSearch={self._hnsw.hnsw.efSearch})"}
        self.provenance["k_max"] = self.k

    def _search(self, queries: np.ndarray, exact: bool | None = None):
        import faiss

        if exact if exact is not None else self.index == "exact":
            return faiss.knn(queries, self.x, self.fetch, metric=faiss.METRIC_INNER_PRODUCT)
        return self._hnsw.search(queries, self.fetch)

    def _block(self, rows: np.ndarray, exact: bool | None = None):
        """(indices, similarities) of ``rows``: self excluded, ties broken by index."""
        sims, idx = self._search(self.x[rows], exact)
        drop = (idx == rows[:, None]) | (idx < 0)
        sims = np.where(drop, -np.inf, sims)
        idx = np.where(drop, np.iinfo(np.int64).max, idx)
        order = np.lexsort((idx, -sims), axis=1)[:, : self.k]
        return np.take_along_axis(idx, order, 1), np.take_along_axis(sims, order, 1)

    def blocks(
        self, progress: Callable[[int], None] | None = None
    ) -> Iterator[tuple[slice, np.ndarray, np.ndarray]]:
        """(rows, indices, similarities) for consecutive blocks of rows."""
        for start in range(0, len(self.x), BLOCK):
            rows = np.arange(start, min(start + BLOCK, len(self.x)))
            idx, sims = self._block(rows)
            yield slice(start, rows[-1] + 1), idx, sims.astype(np.float32)
            if progress:
                progress(len(rows))
        if self.index != "exact":
            self.provenance[f"recall_at_{self.k}"] = self.recall()

    def all(self) -> tuple[np.ndarray, np.ndarray]:
        """Every list at once (for small matrices and tests)."""
        parts = list(self.blocks())
        return np.vstack([p[1] for p in parts]), np.vstack([p[2] for p in parts])

    def recall(self, sample: int = 1000) -> float:
        """recall@k of the approximate lists against exact search, on a fixed sample."""
        rng = np.random.default_rng(0)
        rows = np.sort(rng.choice(len(self.x), size=min(sample, len(self.x)), replace=False))
        approx, _ = self._block(rows)
        exact, _ = self._block(rows, exact=True)
        hits = sum(len(set(a) & set(e)) for a, e in zip(approx.tolist(), exact.tolist(), strict=True))
        return hits / (len(rows) * self.k)


def write_neighbors(
    writer,
    search: NeighborSearch,
    example_ids: pa.Array,
    idx: np.ndarray,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Stream the lists of ``search`` into a part of the neighbors kind; neighbour positions
    become the examples' idx values."""
    for rows, nb, sims in search.blocks(progress):
        k = nb.shape[1]
        writer.write(
            pa.table(
                {
                    "example_id": example_ids[rows.start : rows.stop],
                    "idx": pa.array(idx[rows], pa.int64()),
                    "neighbors": pa.FixedSizeListArray.from_arrays(
                        pa.array(idx[nb].reshape(-1).astype(np.int32)), k
                    ),
                    "similarities": pa.FixedSizeListArray.from_arrays(pa.array(sims.reshape(-1)), k),
                }
            )
        )


def store_neighbors(
    run,
    partition: dict[str, str],
    vectors: np.ndarray,
    example_ids: pa.Array,
    idx: np.ndarray,
    k_max: int,
    index: str,
    progress: bool = True,
) -> dict:
    """Search neighbours of ``vectors`` (normalised in place) into ``run``, with a progress bar."""
    from .progress import bar as progress_bar

    search = NeighborSearch(vectors, k_max, index)
    label = f"neighbours {partition['model']} {partition['stage']} {partition['dataset']}"
    with (
        progress_bar(label, len(vectors), "query", progress=progress) as bar,
        run.part_writer("neighbors", partition) as writer,
    ):
        write_neighbors(writer, search, example_ids, idx, bar.update)
    run.annotate(neighbors=search.provenance)
    return search.provenance


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
    from ce.query.read import read_embeddings

    if index not in INDEXES:
        raise CeError(f"unknown index {index!r}; use {' or '.join(INDEXES)}")
    if k_max < 1:
        raise CeError("--k-max must be at least 1")
    ids, idx, vectors = read_embeddings(store, model, stage, dataset)
    if len(vectors) < 2:
        raise CeError("need at least two embedded examples to find neighbours")
    params = {"model": model, "stage": stage, "dataset": dataset, "k_max": k_max, "index": index}
    partition = {"model": model, "stage": stage, "dataset": dataset}
    with store.run("neighbors", params, model=model, dataset=dataset, stage=stage) as run:
        provenance = store_neighbors(run, partition, vectors, ids, idx, k_max, index, progress)
    return {"run_id": run.run_id, "examples": len(vectors), **provenance}
