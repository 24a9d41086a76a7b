"""float16 vs float32 stored embeddings: bytes on disk and the effect on neighbour lists.

    python bench/float16.py [--dataset squad2-dev] [--limit 3000] [--k 10]

Extracts the real all-MiniLM-L6-v2 CLS embeddings (pretrained stage) once with ce extract,
then writes them as a float32 and as a float16 part with the store's own writer and
searches neighbours (ce's exact FAISS search) on each. Prints the two part sizes and, over
the examples, the mean Jaccard of the float16 and float32 k-nearest-neighbour sets
(1.0: float16 changes nothing), and the share of examples whose sets are identical.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import _models  # noqa: F401 (offline settings and CE_DATA_DIR)
import numpy as np


def jaccard(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    shared = np.array([len(set(x) & set(y)) for x, y in zip(a.tolist(), b.tolist(), strict=True)])
    return shared / (2 * a.shape[1] - shared)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="squad2-dev")
    parser.add_argument("--limit", type=int, default=3000)
    parser.add_argument("--k", default="10,100", help="Comma-separated k values.")
    args = parser.parse_args()
    ks = [int(k) for k in args.k.split(",")]

    from ce.extractors.datasets import load_dataset
    from ce.extractors.extract import ExtractOptions, embeddings_table, extract, subset
    from ce.extractors.neighbors import NeighborSearch
    from ce.query.read import read_embeddings
    from ce.store import Store

    with tempfile.TemporaryDirectory() as root:
        store = Store(Path(root) / "store")
        options = ExtractOptions(stage="pretrained", limit=args.limit, k_max=None)
        extract(store, "minilm", args.dataset, options)
        _, _, vectors = read_embeddings(store, "minilm", "pretrained", args.dataset)
        data = subset(load_dataset(args.dataset), args.limit)
        sizes = {}
        for dtype in ("float32", "float16"):
            with store.run("bench", {}) as run:
                partition = {"model": f"minilm-{dtype}", "stage": "pretrained", "dataset": args.dataset}
                run.write("embeddings", partition, embeddings_table(data, vectors.astype(dtype)))
            [part] = [p for p in store.live_parts()["embeddings"] if p.partition == partition]
            sizes[dtype] = (store.root / part.path).stat().st_size
        lists = {}
        for dtype in ("float32", "float16"):
            rounded = vectors.astype(dtype).astype(np.float32)
            lists[dtype], _ = NeighborSearch(rounded, max(ks)).all()
    n, dim = vectors.shape
    print(f"# MiniLM pretrained CLS embeddings of {n} {args.dataset} examples, dim {dim}")
    print(
        f"embeddings part: float32 {sizes['float32'] / 2**20:.2f} MiB, float16"
        f" {sizes['float16'] / 2**20:.2f} MiB (ratio {sizes['float16'] / sizes['float32']:.2f})"
    )
    for k in ks:
        j = jaccard(lists["float32"][:, :k], lists["float16"][:, :k])
        print(
            f"k = {k}: mean Jaccard float16 vs float32 neighbour sets {j.mean():.4f},"
            f" identical sets {np.mean(j == 1.0):.1%} of examples"
        )


if __name__ == "__main__":
    main()
