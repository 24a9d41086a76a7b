"""Reading artifacts back from the store as arrays (for extractors that build on them)."""

from __future__ import annotations

import numpy as np

from ce.store.errors import NotFound
from ce.store.store import Store

from .sql import connect


def read_embeddings(store: Store, model: str, stage: str, dataset: str):
    """(example_id array, idx array, float32 matrix) of stored embeddings, in idx order."""
    con = connect(store)
    table = con.sql(
        "select e.example_id, x.idx, e.vector from embeddings e join examples x"
        " using (dataset, example_id)"
        " where e.model = $model and e.stage = $stage and e.dataset = $dataset order by x.idx",
        params={"model": model, "stage": stage, "dataset": dataset},
    ).to_arrow_table()
    if table.num_rows == 0:
        have = con.sql(
            "select distinct model || ' ' || stage || ' ' || dataset from embeddings order by 1"
        ).fetchall()
        listed = ", ".join(r[0] for r in have) or "none"
        raise NotFound(
            f"the store has no {stage} embeddings of {model} on {dataset} (it has:"
            f" {listed}); run ce extract --model {model} --dataset {dataset}"
            f"{' --stage pretrained' if stage == 'pretrained' else ''} first"
        )
    vectors = table["vector"].combine_chunks()
    matrix = np.array(vectors.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return table["example_id"], table["idx"].to_numpy(), matrix.reshape(len(vectors), -1)
