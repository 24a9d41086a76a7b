"""Comparison tables assembled from the SQL library (the Python API behind ce compare)."""

from __future__ import annotations

import pyarrow as pa

from .errors import NotFound, did_you_mean
from .sql import execute, library
from .store import Store


def table2(store: Store, dataset: str | None = None) -> pa.RecordBatchReader:
    """The paper's Table 2 rows for every model pair, optionally for one dataset."""
    con = store.connect()
    sql, params = library()["table2"].text.rstrip().rstrip(";"), {}
    if dataset is not None:
        known = [r[0] for r in execute(con, "select distinct dataset from predictions").fetchall()]
        if dataset not in known:
            raise NotFound(
                f"no predictions for dataset {dataset!r} in {store.root}{did_you_mean(dataset, known)}"
            )
        sql, params = f"select * from ({sql}) where dataset = $dataset", {"dataset": dataset}
    return execute(con, sql, params).to_arrow_reader(batch_size=65536)
