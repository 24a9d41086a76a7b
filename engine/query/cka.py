"""Linear CKA between every pair of models' stored embeddings, in feature space.

With X (n x d1) and Y (n x d2) the two models' vectors of the same n examples:

- biased (Kornblith et al. 2019): with column-centred X, Y,
  CKA = ||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F);
- unbiased: the same ratio of the unbiased HSIC estimator (Song et al. 2012) on the linear
  kernels K = X X^T, L = Y Y^T with zeroed diagonals,
  HSIC_u(K, L) = [tr(K~L~) + 1'K~1 1'L~1 / ((n-1)(n-2)) - 2/(n-2) 1'K~L~1] / (n(n-3)),
  close to 0 for independent inputs.

Neither needs an n x n matrix: every term is a sum over examples of products of the two
vectors, so one pass over the examples, streamed from DuckDB in blocks, accumulates X^T Y,
X^T X, Y^T Y (O(n d^2)), the column sums, the squared norms and their products (see
:class:`Sums`), and the estimators follow from those. Memory: the d x d sums and one block.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa

from .sql import execute

BLOCK = 65536  # examples read at a time


@dataclass
class Sums:
    """What one pass over the examples accumulates for a pair (x: model_i, y: model_j)."""

    n: int = 0
    xy: np.ndarray | None = None  # X^T Y
    xx: np.ndarray | None = None  # X^T X
    yy: np.ndarray | None = None  # Y^T Y
    sx: np.ndarray | None = None  # column sums
    sy: np.ndarray | None = None
    qx: np.ndarray | None = None  # sum_i |x_i|^2 x_i
    qy: np.ndarray | None = None
    rx: np.ndarray | None = None  # sum_i |y_i|^2 x_i
    ry: np.ndarray | None = None  # sum_i |x_i|^2 y_i
    scalars: dict[str, float] = field(default_factory=dict)  # sums of |x|^2, |y|^2 and products

    def add(self, x: np.ndarray, y: np.ndarray) -> None:
        nx, ny = (x * x).sum(axis=1), (y * y).sum(axis=1)
        parts = {
            "xy": x.T @ y,
            "xx": x.T @ x,
            "yy": y.T @ y,
            "sx": x.sum(axis=0),
            "sy": y.sum(axis=0),
            "qx": nx @ x,
            "qy": ny @ y,
            "rx": ny @ x,
            "ry": nx @ y,
        }
        for name, value in parts.items():
            current = getattr(self, name)
            setattr(self, name, value if current is None else current + value)
        for name, value in {
            "nx": nx.sum(),
            "ny": ny.sum(),
            "nxny": (nx * ny).sum(),
            "nx2": (nx * nx).sum(),
            "ny2": (ny * ny).sum(),
        }.items():
            self.scalars[name] = self.scalars.get(name, 0.0) + float(value)
        self.n += len(x)


def _fro2(m: np.ndarray) -> float:
    return float((m * m).sum())


def biased(s: Sums) -> float | None:
    """Linear CKA of column-centred X and Y from the pass's sums (None: a constant side)."""
    n = s.n
    if n < 2:
        return None
    mx, my = s.sx / n, s.sy / n
    xy = s.xy - n * np.outer(mx, my)
    xx = s.xx - n * np.outer(mx, mx)
    yy = s.yy - n * np.outer(my, my)
    denominator = math.sqrt(_fro2(xx) * _fro2(yy))
    return _fro2(xy) / denominator if denominator > 0 else None


def _hsic_u(n: int, tr: float, one_k: float, one_l: float, one_kl: float) -> float:
    return (tr + one_k * one_l / ((n - 1) * (n - 2)) - 2.0 / (n - 2) * one_kl) / (n * (n - 3))


def unbiased(s: Sums) -> float | None:
    """Linear CKA with the unbiased HSIC estimator, from the pass's sums (None below 4
    examples, where the estimator is undefined, or for a constant side)."""
    n, c = s.n, s.scalars
    if n < 4:
        return None
    one_k = float(s.sx @ s.sx) - c["nx"]  # 1'K~1
    one_l = float(s.sy @ s.sy) - c["ny"]
    kl = _hsic_u(
        n,
        _fro2(s.xy) - c["nxny"],  # tr(K~L~)
        one_k,
        one_l,
        float(s.sx @ s.xy @ s.sy) - float(s.sy @ s.ry) - float(s.sx @ s.rx) + c["nxny"],  # 1'K~L~1
    )
    kk = _hsic_u(
        n, _fro2(s.xx) - c["nx2"], one_k, one_k, float(s.sx @ s.xx @ s.sx) - 2 * float(s.sx @ s.qx) + c["nx2"]
    )
    ll = _hsic_u(
        n, _fro2(s.yy) - c["ny2"], one_l, one_l, float(s.sy @ s.yy @ s.sy) - 2 * float(s.sy @ s.qy) + c["ny2"]
    )
    return kl / math.sqrt(kk * ll) if kk > 0 and ll > 0 else None


PAIR_VECTORS = """
select a.vector as x, b.vector as y
from embeddings a
join embeddings b on b.stage = a.stage and b.dataset = a.dataset and b.example_id = a.example_id
where a.model = $i and b.model = $j and a.stage = $stage and a.dataset = $dataset
"""


def _matrix(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A column of equal-length float lists as an (n x d) float64 matrix."""
    values = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    flat = values.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(len(values), -1).astype(np.float64) if len(values) else np.zeros((0, 0))


def pair_sums(
    con: duckdb.DuckDBPyConnection, stage: str, dataset: str, i: str, j: str, block: int = BLOCK
) -> Sums:
    """One pass over the examples both models embedded (joined on example id), in blocks."""
    sums = Sums()
    params = {"i": i, "j": j, "stage": stage, "dataset": dataset}
    for batch in execute(con, PAIR_VECTORS, params).to_arrow_reader(batch_size=block):
        if batch.num_rows:
            sums.add(_matrix(batch.column(0)), _matrix(batch.column(1)))
    return sums


SCHEMA = pa.schema(
    [
        ("stage", pa.string()),
        ("dataset", pa.string()),
        ("model_i", pa.string()),
        ("model_j", pa.string()),
        ("n", pa.int64()),
        ("cka", pa.float64()),
        ("cka_unbiased", pa.float64()),
    ]
)


def cka_rows(con: duckdb.DuckDBPyConnection, ranks: dict[str, int], dataset: str | None = None) -> list[dict]:
    """Both estimators for every pair of models with embeddings of one stage and dataset,
    the better-ranked model first (``ranks``: model_rank)."""
    held = execute(
        con,
        "select stage, dataset, list(distinct model order by model) from embeddings"
        " where $dataset is null or dataset = $dataset group by all order by all",
        {"dataset": dataset},
    ).fetchall()
    rows = []
    for stage, ds, models in held:
        ordered = sorted(models, key=lambda m: (ranks.get(m, 10**9), m))
        for a in range(len(ordered)):
            for b in range(a + 1, len(ordered)):
                s = pair_sums(con, stage, ds, ordered[a], ordered[b])
                rows.append(
                    {
                        "stage": stage,
                        "dataset": ds,
                        "model_i": ordered[a],
                        "model_j": ordered[b],
                        "n": s.n,
                        "cka": biased(s),
                        "cka_unbiased": unbiased(s),
                    }
                )
    return rows
