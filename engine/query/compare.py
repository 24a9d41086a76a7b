"""The comparisons of the paper over one connection: Table 2, Table 3, the K sweep and the
slices, all generated from the table of measures (measures.py). Each returns a
:class:`Result`: a DuckDB relation (``.df()``, ``.arrow()``, ``.pl()``, ...) with the notes
on what it had to leave out."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from ce.store.errors import CeError, NotFound, did_you_mean

from . import floor, knn, measures
from .measures import sliced_sql, sweep_sql, table2_sql
from .sql import check_spill_room, execute, library


@dataclass
class Result:
    """A query's rows as a DuckDB relation, and the notes on what it left out (printed by
    the CLI on stderr). Every method of the relation works on the result itself:
    ``r.df()``, ``r.arrow()`` (a record batch reader), ``r.pl()``, ``r.fetchall()``."""

    relation: duckdb.DuckDBPyRelation
    notes: list[str] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.relation, name)

    def reader(self, batch_size: int = 65536) -> pa.RecordBatchReader:
        """The rows as a stream of Arrow record batches."""
        return self.relation.to_arrow_reader(batch_size=batch_size)

    def rows(self) -> list[dict[str, Any]]:
        """The rows as dictionaries (for small results)."""
        return self.relation.to_arrow_table().to_pylist()

    def __repr__(self) -> str:
        notes = "".join(f"\n{n}" for n in self.notes)
        return f"{self.relation}{notes}"


def k_limits(con: duckdb.DuckDBPyConnection) -> list[tuple[str, int]]:
    """(what, K_max) of every stored set of neighbour lists and OOD distances."""
    return execute(
        con,
        "select case kind when 'neighbors' then 'neighbour lists of ' || dataset else 'OOD scores of '"
        " || dataset || ' (bank ' || bank || ', ' || stage || ')' end as what, min(k_min) as k_max"
        " from list_limits group by what order by what",
    ).fetchall()


def check_k_tpr(con: duckdb.DuckDBPyConnection, ks: list[int], tpr: float) -> list[str]:
    """Raise unless tpr is in (0, 1) and every k is at most the largest stored K_max; return
    a note for each dataset whose lists are too short for some k (it is left out there)."""
    if not all(type(k) is int for k in ks):  # k and tpr become SQL text: numbers only
        raise CeError(f"k must be a whole number; got {', '.join(repr(k) for k in ks)}")
    if not _real(tpr):
        raise CeError(f"tpr must be a number between 0 and 1 (e.g. 0.95); got {tpr!r}")
    if not 0 < tpr < 1:
        raise CeError(f"tpr {tpr} must lie strictly between 0 and 1 (e.g. 0.95)")
    if any(k < 1 for k in ks):
        raise CeError("k must be at least 1")
    limits = k_limits(con)
    if limits and max(ks) > max(k_max for _, k_max in limits):
        raise CeError(
            f"k {max(ks)} is above K_max = {max(k for _, k in limits)}, the largest"
            " in the store; use a smaller k, or recompute with ce neighbors --k-max"
            " or ce ood --k-max"
        )
    return [
        f"note: {what} stop at K_max = {k_max}; left out for k > {k_max}"
        for what, k_max in limits
        if max(ks) > k_max
    ]


def _real(value: object) -> bool:
    """A real number (not a bool, not text): safe to write into SQL as a number."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def checked_reference(con: duckdb.DuckDBPyConnection, reference: str | None) -> str | None:
    """``reference`` if the store holds runs of it (None: the largest model leads)."""
    if reference is None:
        return None
    known = [r[0] for r in execute(con, "select model from models order by model").fetchall()]
    if reference not in known:
        raise NotFound(
            f"no model {reference!r} in the store{did_you_mean(reference, known)}; name one of"
            f" {', '.join(known[:8]) or 'none'} as the reference"
        )
    return reference


def _check_dataset(con: duckdb.DuckDBPyConnection, dataset: str | None) -> None:
    if dataset is None:
        return
    known = [
        r[0]
        for r in execute(
            con, "select distinct dataset from predictions union select distinct dataset from neighbors"
        ).fetchall()
    ]
    if dataset not in known:
        raise NotFound(
            f"no predictions or neighbours for dataset {dataset!r} in the store{did_you_mean(dataset, known)}"
        )


def table2(
    con: duckdb.DuckDBPyConnection,
    dataset: str | None = None,
    k: int = 10,
    tpr: float = 0.95,
    ci: float | None = None,
    replicates: int = 1000,
    seed: int = 0,
    reference: str | None = None,
    with_: tuple[str, ...] = (),
) -> Result:
    """The paper's Table 2 rows for every model pair, optionally for one dataset, with the
    p-value of McNemar's test for the errors and, with ``ci``, bootstrap intervals of every
    agreement. Each pair names the reference (else the larger model) first. ``with_`` adds
    optional measures by name (measures.OPTIONAL: 'ranks', 'cka')."""
    notes = check_k_tpr(con, [k], tpr)
    tpr = float(tpr)
    _check_dataset(con, dataset)
    chosen = measures.selected(with_)
    members = floor.members_of(floor.grouped_models(con))
    # the intervals join every pair's rows per example, the floors their replicas' lists
    per_pair = ("predictions", "neighbors") if ci is not None else ("neighbors",) if members else ()
    check_spill_room(con, ("predictions", "ood_scores"), "Table 2", per_pair)
    kernels = evaluated_kernels(con, chosen, [k], dataset)
    sql = table2_sql(chosen, kernels)
    params = {"k": k, "tpr": tpr, "reference": checked_reference(con, reference)}
    if dataset is not None:
        sql, params = f"select * from ({sql}) where dataset = $dataset", params | {"dataset": dataset}
    table = execute(con, sql, params).to_arrow_table()  # one row per pair: small
    chi2 = table["errors_mcnemar_chi2"].to_pylist()
    p_values = [None if x is None else math.erfc(math.sqrt(x / 2)) for x in chi2]  # chi2, 1 df
    position = table.column_names.index("errors_mcnemar_chi2") + 1
    table = table.add_column(position, "errors_mcnemar_p", pa.array(p_values, pa.float64()))
    exact = [
        mcnemar_exact(b, c)
        for b, c in zip(table["flips_c_to_w"].to_pylist(), table["flips_w_to_c"].to_pylist(), strict=True)
    ]
    position = table.column_names.index("flips_w_to_c") + 1
    table = table.add_column(position, "flips_mcnemar_p", pa.array(exact, pa.float64()))
    notes += _prompt_notes(table) + _distribution_notes(con, table) + _representation_notes(con, table)
    level = _check_bootstrap(ci, replicates, seed)
    if ci is not None:
        table = _with_intervals(con, table, k, tpr, ci, replicates, seed, chosen)
    data = {}
    if members:
        sources = [s for s in floor.table2_sources(k, tpr) if s[2][0].measure is not None]
        data = floor.computed(con, sources, replicates, seed)
    table = floor.with_floors(table, data, members, level)
    notes += _floor_notes(table, members) + _derived_notes(con, table, members)
    return Result(con.from_arrow(table), notes)


def _derived_notes(
    con: duckdb.DuckDBPyConnection, table: pa.Table, members: dict[str, list[str]]
) -> list[str]:
    """A note on the pairs of a replica and a model compressed from its very weights: their
    gap to the floor measures compression alone, where the pairs across replicas add
    retraining (what group_agreement() weighs)."""
    grouped = {m for ms in members.values() for m in ms}
    if not grouped:
        return []
    made = {  # model -> (its source: the folder or id it was loaded from, its parent)
        r[0]: (r[1], r[2]) for r in execute(con, "select model, source, parent from models").fetchall()
    }
    pairs = sorted(
        {
            (i, j)
            for i, j in zip(table["model_i"].to_pylist(), table["model_j"].to_pylist(), strict=True)
            if i in grouped and _derived(made.get(j), i, made.get(i))
        }
    )
    if not pairs:
        return []
    shown = ", ".join(f"{j} from {i}" for i, j in pairs[:4]) + (", ..." if len(pairs) > 4 else "")
    return [
        f"note: {len(pairs)} pair(s) set a model beside the replica it was compressed from ({shown}):"
        " their gap measures compression alone; pairs across replicas add retraining, and"
        " group_agreement() (ce compare --table groups) weighs them all"
    ]


def _check_bootstrap(ci: float | None, replicates: int, seed: int) -> float:
    """The interval level (``ci``, else 0.95 for the noise floor's intervals), once ``ci``,
    ``replicates`` and ``seed`` are checked: they become SQL text, so numbers only."""
    if (ci is not None and not _real(ci)) or type(replicates) is not int or type(seed) is not int:
        raise CeError(
            f"ci must be a number, replicates and seed whole numbers (got {ci!r}, {replicates!r}, {seed!r})"
        )
    level = 0.95 if ci is None else float(ci)
    if not 0 < level < 1:
        raise CeError(f"ci {level} must lie strictly between 0 and 1 (e.g. 0.95)")
    if not 10 <= replicates <= floor.MAX_REPLICATES:
        raise CeError(
            f"the bootstrap needs at least 10 replicates and at most {floor.MAX_REPLICATES}"
            f" (1000 is usual); got {replicates}"
        )
    return level


NO_REPLICAS = (
    "note: no replica groups in the store, so the noise floor (the *_floor, *_gap and *_noise"
    " columns) is empty, not zero: nothing tells these differences from retraining noise;"
    " fine-tune with ce finetune --seeds 0,1,2, or ingest with --replica-of MODEL, to have one"
)


def _floor_notes(table: pa.Table, members: dict[str, list[str]]) -> list[str]:
    """Why floor columns are empty: no replica groups, or pairs led by a model without."""
    if not members:
        return [NO_REPLICAS] if table.num_rows else []
    grouped = {m for ms in members.values() for m in ms}
    leaders = sorted(set(table["model_i"].to_pylist()) - grouped)
    if not leaders:
        return []
    shown = ", ".join(leaders[:6]) + (f" and {len(leaders) - 6} more" if len(leaders) > 6 else "")
    return [
        f"note: {shown} lead pairs but have no replicas, so those pairs' floor columns are empty;"
        " a floor needs the reference fine-tuned with several seeds (ce finetune --seeds)"
    ]


def _of_dataset(rows: list[dict], dataset: str | None) -> list[dict]:
    """The rows of ``dataset`` (as a row's dataset or OOD test set); all without one."""
    return rows if dataset is None else [r for r in rows if dataset in (r["dataset"], r["ood_dataset"])]


def _derived(other: tuple | None, model: str, facts: tuple | None) -> bool:
    """Whether a model with ``other`` (source, parent) was made from ``model`` (with
    ``facts``): its parent is that model or the folder it was loaded from."""
    parent = other[1] if other else None
    return parent is not None and parent in (model, facts[0] if facts else None)


def noise_floor(
    con: duckdb.DuckDBPyConnection,
    k: int = 10,
    tpr: float = 0.95,
    ci: float = 0.95,
    replicates: int = floor.FLOOR_REPLICATES,
    seed: int = 0,
    dataset: str | None = None,
) -> Result:
    """The retraining noise floor: per characteristic (errors, representations after
    fine-tuning at k, OOD sets at k and tpr, the attack sets, changed answers, top-1
    agreement, JS), dataset and replica group, the agreement between the group's replicas:
    replica pairs, mean (``floor``) with its bootstrap interval, min and max (``dataset``:
    only the rows of that dataset, or of that OOD test set)."""
    notes, level, members = _floor_settings(con, k, tpr, ci, replicates, seed, dataset)
    if not members:
        return Result(con.from_arrow(floor.FLOOR_SCHEMA.empty_table()), notes + [NO_REPLICAS])
    data = floor.computed(con, floor.table2_sources(k, float(tpr)), replicates, seed)
    rows = _of_dataset(floor.floor_rows(data, members, level), dataset)
    return Result(con.from_arrow(pa.Table.from_pylist(rows, floor.FLOOR_SCHEMA)), notes)


def _floor_settings(con, k: int, tpr: float, ci: float, replicates: int, seed: int, dataset: str | None):
    """(notes, interval level, {group: members}) once k, tpr, the bootstrap and the dataset
    are checked."""
    _check_dataset(con, dataset)
    notes = check_k_tpr(con, [k], tpr)
    level = _check_bootstrap(ci, replicates, seed)
    return notes, level, floor.members_of(floor.grouped_models(con))


def group_agreement(
    con: duckdb.DuckDBPyConnection,
    k: int = 10,
    tpr: float = 0.95,
    ci: float = 0.95,
    replicates: int = floor.FLOOR_REPLICATES,
    seed: int = 0,
    reference: str | None = None,
    dataset: str | None = None,
) -> Result:
    """Every pair of replica groups (the reference's group first) per characteristic and
    dataset: the between-group agreement (mean over cross pairs, interval, min, max), each
    group's floor, the gap between-minus-floor of the first with its interval and reading,
    and the permutation test over replica labels (p_value, splittings tried); ``dataset``
    keeps the rows of that dataset (or OOD test set)."""
    notes, level, members = _floor_settings(con, k, tpr, ci, replicates, seed, dataset)
    if len(members) < 2:
        why = NO_REPLICAS if not members else "note: one replica group only; groups compare in pairs"
        return Result(con.from_arrow(floor.GROUP_SCHEMA.empty_table()), notes + [why])
    data = floor.computed(con, floor.table2_sources(k, float(tpr)), replicates, seed)
    ranks = floor.ranks(con, checked_reference(con, reference))
    rows = _of_dataset(floor.group_rows(data, members, ranks, level, seed), dataset)
    table = pa.Table.from_pylist(rows, floor.GROUP_SCHEMA)
    small = sorted({(r["replicas_i"], r["replicas_j"]) for r in rows})
    notes += [
        f"note: with {a} and {b} replicas the permutation test has {math.comb(a + b, a)} splittings,"
        f" so its p-value is at least {_least_p(a, b):.2g}"
        for a, b in small
        if _least_p(a, b) > 0.05
    ]
    return Result(con.from_arrow(table), notes)


def _least_p(a: int, b: int) -> float:
    """The smallest p-value the permutation test can give for groups of ``a`` and ``b``."""
    return (2 if a == b else 1) / math.comb(a + b, a)


def cka(con: duckdb.DuckDBPyConnection, dataset: str | None = None, reference: str | None = None) -> Result:
    """Linear CKA between every pair of models' stored embeddings per stage and dataset,
    the reference first: ``cka`` (column-centred, Kornblith et al. 2019) and
    ``cka_unbiased`` (the unbiased HSIC estimator, near 0 for independent inputs), computed
    in feature space from blocks of examples (never an n x n matrix; see ce.query.cka)."""
    from .cka import SCHEMA, cka_rows

    _check_dataset(con, dataset)
    rows = cka_rows(con, floor.ranks(con, checked_reference(con, reference)), dataset)
    return Result(con.from_arrow(pa.Table.from_pylist(rows, SCHEMA)))


def pie_examples(
    con: duckdb.DuckDBPyConnection, reference: str | None = None, dataset: str | None = None
) -> Result:
    """Pruning-identified exemplars: the examples where another replica group's modal
    answer differs from the reference group's (the group of ``reference``, else of the
    store's reference, else of the best-ranked model with replicas), with the votes."""
    groups = floor.grouped_models(con)
    _check_dataset(con, dataset)
    if not groups:
        return Result(execute(con, "select * from pie_examples(null) limit 0"), [NO_REPLICAS])
    named = checked_reference(con, reference)
    ranks = floor.ranks(con, named)
    first = min(groups, key=lambda m: (ranks.get(m, 10**9), m))
    notes = []
    if named is not None and named not in groups:
        notes.append(
            f"note: {named} has no replicas, so the PIEs are those of the group of {first},"
            f" {groups[first]}; name a replica as the reference for another group's"
        )
    sql = "select * from pie_examples($group)"
    params: dict[str, Any] = {"group": groups[first]}
    if dataset is not None:
        sql, params = sql + " where dataset = $dataset", params | {"dataset": dataset}
    return Result(execute(con, sql, params), notes)


def mcnemar_exact(b: int | None, c: int | None) -> float | None:
    """McNemar's exact test: the two-sided binomial p-value of ``b`` discordant examples one
    way against ``c`` the other (each way has probability 1/2 under no difference)."""
    if b is None or c is None or b + c == 0:
        return None
    from scipy.stats import binom

    return min(1.0, 2.0 * float(binom.cdf(min(b, c), b + c, 0.5)))


def _prompt_notes(table: pa.Table) -> list[str]:
    """A note per pair whose logs hashed different prompts for the same documents."""
    rows = table.select(["dataset", "model_i", "model_j", "prompts_differ"]).to_pylist()
    notes = [  # a pair has a row per OOD test set, bank and stage: one note each
        f"note: {r['model_i']} and {r['model_j']} saw different prompts for {r['prompts_differ']}"
        f" document(s) of {r['dataset']} (their logs' prompt_hash differs): their changed answers"
        " there may come from the prompt, not the model"
        for r in rows
        if r["prompts_differ"]
    ]
    return list(dict.fromkeys(notes))


def _representation_notes(con: duckdb.DuckDBPyConnection, table: pa.Table) -> list[str]:
    """A note per pair whose neighbours were compared on representations of a different kind:
    another pooling, or hidden states at another relative depth (see the representations view)."""
    kinds = {
        (r[0], r[1], r[2]): r[3:]
        for r in execute(
            con, "select model, stage, dataset, pooling, layer, blocks from representations"
        ).fetchall()
    }
    notes = []
    for stage, column in (("pretrained", "repr_before"), ("finetuned", "repr_after")):
        compared = table.filter(pc.is_valid(table[column])).select(["dataset", "model_i", "model_j"])
        for r in compared.to_pylist():
            a = kinds.get((r["model_i"], stage, r["dataset"]))
            b = kinds.get((r["model_j"], stage, r["dataset"]))
            if a and b and (a[0] != b[0] or _depth(a) != _depth(b)):
                notes.append(
                    f"note: {r['model_i']} and {r['model_j']} represent {r['dataset']} ({stage}) differently"
                    f" ({r['model_i']}: {_pooled(a)}; {r['model_j']}: {_pooled(b)}), so their neighbour"
                    " agreement compares those representations"
                )
    return list(dict.fromkeys(notes))


POOLED = {"cls": "first token", "last": "last token", "mean": "mean over tokens"}


def _depth(kind: tuple) -> float:
    """The relative depth of a representation's hidden state; runs made before ce recorded it
    took the last block's."""
    _, layer, blocks = kind
    return 1.0 if layer is None or not blocks else layer / blocks


def _pooled(kind: tuple) -> str:
    pooling, layer, blocks = kind
    where = (
        "the last block"
        if layer is None
        else "the embedding output"
        if layer == 0
        else f"block {layer} of {blocks}"
    )
    return f"{POOLED.get(pooling, pooling)} of {where}"


def _distribution_notes(con: duckdb.DuckDBPyConnection, table: pa.Table) -> list[str]:
    """A note per dataset whose changed answers are compared but whose models (some of
    them) stored no answer distribution: why KL, JS, top-1 and calibration are empty."""
    compared = set(table.filter(pc.is_valid(table["changes"]))["dataset"].to_pylist())
    if not compared:
        return []
    lacking = execute(
        con,
        "select dataset, string_agg(model, ', ' order by model) from (select dataset, model from predictions"
        " group by all having count(probs) = 0) group by dataset order by dataset",
    ).fetchall()
    return [
        f"note: no answer distributions on {dataset} for {models} (no per-answer probabilities"
        " stored: a generation log, an error list or a table without them): KL, JS, top-1"
        " agreement and calibration of their pairs are empty"
        for dataset, models in lacking
        if dataset in compared
    ]


def evaluated_kernels(
    con: duckdb.DuckDBPyConnection, chosen: tuple[measures.Measure, ...], ks: list[int], dataset: str | None
) -> dict[str, str]:
    """Evaluate the kernels of the ``chosen`` measures once (all pairs, every k of ``ks``),
    register their rows with the connection and return {kernel: the SQL source of its rows}
    (see Measure.summary_sql)."""
    wanted = {m.kernel for m in chosen if m.kernel}
    out = {}
    if "knn" in wanted:
        ranks = any(m.kernel == "knn" and m.optional == "ranks" for m in chosen)
        con.register("_knn_agreement", knn.agreement(con, ks, ranks=ranks, dataset=dataset))
        out["knn"] = knn.SOURCE
    if "cka" in wanted:
        from .cka import SCHEMA, cka_rows

        con.register("_cka_agreement", pa.Table.from_pylist(cka_rows(con, {}, dataset), SCHEMA))
        out["cka"] = "_cka_agreement"
    return out


def _with_intervals(
    con, table: pa.Table, k: int, tpr: float, level: float, replicates: int, seed: int, chosen
) -> pa.Table:
    from .stats import intervals

    bounds = intervals(con, k, tpr, level, replicates, seed, chosen)
    rows = table.to_pylist()
    for name in bounds:
        m = measures.BY_NAME[name]
        position = table.column_names.index(name) + 1
        for side, offset in (("lo", 0), ("hi", 1)):
            values = [_bound(bounds, m, r, offset) for r in rows]
            table = table.add_column(position, f"{name}_{side}", pa.array(values, pa.float64()))
            position += 1
    return table


def _bound(bounds: dict, m: measures.Measure, row: dict, offset: int) -> float | None:
    """The lower (``offset`` 0) or upper bound of ``m`` on a Table 2 row: the intervals name
    pairs in name order, so a row that shows the pair the other way round reads the
    interval of the measure's mirror (negative flips of (i, j) are positive flips of (j, i))."""
    name = m.mirror if m.mirror and row["model_i"] > row["model_j"] else m.name
    return bounds[name].get(_in_name_order(row, m.keys), (None, None))[offset]


def _in_name_order(row: dict, keys: tuple[str, ...]) -> tuple:
    """A row's key with its pair in name order, as the per-example macros (and so the
    intervals) name pairs; Table 2 shows the reference first."""
    values = {c: row[c] for c in keys}
    values["model_i"], values["model_j"] = sorted((row["model_i"], row["model_j"]))
    return tuple(values[c] for c in keys)


SWEEP_KS = (1, 5, 10, 20, 50, 100)


def sweep(
    con: duckdb.DuckDBPyConnection,
    ks: list[int] | tuple[int, ...] = SWEEP_KS,
    tpr: float = 0.95,
    reference: str | None = None,
    ci: float = 0.95,
    replicates: int = floor.FLOOR_REPLICATES,
    seed: int = 0,
    floors: bool = True,
    with_: tuple[str, ...] = (),
) -> Result:
    """The data of the paper's Figure 1: every k-dependent measure against k for every pair,
    long format; distribution rows name their bank and all rows the stage of their embeddings.
    Where the store has replica groups, each row of a floored measure (representations after
    fine-tuning, OOD sets) also has the floor of model_i's group at that k, the gap, its
    ``ci`` interval (``replicates`` bootstrap replicates) and its reading (``noise``);
    ``floors=False`` leaves those columns empty and spares their bootstrap (a figure of
    the values alone). The agreements read the neighbour lists once for every k (the
    floors join their replicas' lists at each k). ``with_``: 'ranks' adds the neighbour
    rank agreement; CKA does not depend on k and is refused."""
    notes = check_k_tpr(con, list(ks), tpr)
    level = _check_bootstrap(ci, replicates, seed)
    params = {"tpr": float(tpr), "reference": checked_reference(con, reference)}
    chosen = measures.selected(with_)
    if any(m.kernel == "cka" for m in chosen):
        raise CeError("CKA does not depend on k: see it in ce compare --table 2 --with cka or --table cka")
    members = floor.members_of(floor.grouped_models(con)) if floors else {}
    per_pair = ("neighbors",) if members else ()  # the floors join their replicas' lists per pair
    check_spill_room(con, ("ood_scores",), "the sweep", per_pair)  # else the lists are streamed
    kernels = evaluated_kernels(con, chosen, list(ks), None)
    relation = execute(con, sweep_sql(list(ks), chosen, kernels), params)
    by_k: dict[int, dict] = {k: {} for k in ks}
    for k in sorted(set(ks)) if members else ():
        sources = floor.long_sources(k, float(tpr), ("repr_after", "distribution"))
        by_k[k] = floor.computed(con, sources, replicates, seed)
    table = floor.with_long_floors(
        relation.to_arrow_table(), lambda r: by_k[r["k"]].get(r["characteristic"]), members, level
    )
    return Result(con.from_arrow(table), notes + (_floor_notes(table, members) if floors else []))


def table3(con: duckdb.DuckDBPyConnection) -> Result:
    """The paper's Table 3: accuracy before and under each attack, per model."""
    return Result(execute(con, library()["table3"].text))


LENGTHS = (20, 50, 100, 200)  # the bounds of the length slices, in words


def _length_slices() -> tuple[str, str]:
    """(label, sort key) of the length slices: '0-19 words', ..., '200+ words'."""
    lows = (0, *LENGTHS)
    cases = " ".join(
        f"when w < {hi} then '{lo}-{hi - 1} words'" for lo, hi in zip(lows, LENGTHS, strict=False)
    )
    return f"case {cases} else '{LENGTHS[-1]}+ words' end", "w"


SLICES = {  # name -> (the slice's label, what slices sort by), over examples x with w words
    "answerable": (
        "case when x.is_impossible then 'unanswerable' when x.is_impossible is null"
        " then 'n/a' else 'answerable' end",
        "0",
    ),
    "label": ("coalesce('label ' || x.label::varchar, 'no label')", "coalesce(x.label, 1e9)"),
    "length": _length_slices(),
}


def sliced(
    con: duckdb.DuckDBPyConnection,
    by: str,
    k: int = 10,
    tpr: float = 0.95,
    reference: str | None = None,
    ci: float = 0.95,
    replicates: int = floor.FLOOR_REPLICATES,
    seed: int = 0,
) -> Result:
    """Every measure of Table 2 per slice of the examples (long format); distribution rows
    name their bank, representation and distribution rows the stage of their embeddings.
    Where the store has replica groups, floored measures also have the floor of model_i's
    group in the slice, the gap, its interval and its reading, as in Table 2."""
    if by not in SLICES:
        raise NotFound(f"unknown slice {by!r}{did_you_mean(by, SLICES)}; use {', '.join(SLICES)}")
    notes = check_k_tpr(con, [k], tpr)
    level = _check_bootstrap(ci, replicates, seed)
    label, order = SLICES[by]
    params = {"reference": checked_reference(con, reference)}
    relation = execute(con, sliced_sql(label, order, k, float(tpr)), params)
    members = floor.members_of(floor.grouped_models(con))
    data = {}
    if members:
        names = tuple(f.name for f in floor.TABLE2_FLOORED)
        data = floor.computed(con, floor.long_sources(k, float(tpr), names, label), replicates, seed)
    table = floor.with_long_floors(
        relation.to_arrow_table(), lambda r: data.get(r["characteristic"]), members, level
    )
    return Result(con.from_arrow(table), notes + _floor_notes(table, members))


__all__ = [
    "Result",
    "checked_reference",
    "cka",
    "group_agreement",
    "k_limits",
    "noise_floor",
    "pie_examples",
    "sliced",
    "sweep",
    "table2",
    "table3",
]
