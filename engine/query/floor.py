"""The noise floor: how much a model agrees with itself retrained with another seed.

A replica group (view ``replicas``) holds models made by one recipe with different seeds.
For a characteristic (an agreement of Table 2, or the attack sets), the group's floor is
the agreement between its replicas: the mean over its replica pairs, with their min and
max. A pair (reference, other) is read as its gap to the floor of the reference's group:
gap = agreement - floor, negative when the other model agrees less with the reference than
a retrained reference does (for the measures of disagreement, flips, changed answers and
JS, the sign is the same: value - floor, positive when the pair disagrees more).

Intervals come from one paired Poisson bootstrap: each replicate weights every example by
a Poisson(1) draw that depends on the example (its hash), the replicate and the seed only,
the same for every pair, so a replicate's floor (the mean over replica pairs) and the
pair's value in it move together, and the gap's interval is the percentile interval of
their differences. The draws are made in numpy (:func:`weights`, splitmix64 of the
example's hash), one matrix product per batch of examples, which is many times faster
than weighting each (pair, example, replicate) row in SQL.

Between two groups that both have replicas, the between-group agreement (the mean over
their cross pairs) is compared with the within-group agreements by a
permutation test over the replica labels: every way of splitting the pooled models into
groups of the same sizes (or 20,000 seeded random ones when there are more), the statistic
being mean(within) - mean(between) (the reverse for disagreements); the p-value is the
share of splittings whose statistic is at least the observed one. With three replicas a
side, 20 splittings, two of which give the observed statistic (the groups swapped), so the
p-value cannot fall below 0.1: a group comparison needs more replicas to be significant.
A model compressed from a replica shares that replica's training: their pair measures
compression alone (Table 2 notes such pairs), where a pair across replicas adds retraining;
the between-group mean weighs every cross pair alike, as Hooker et al.'s populations do.
"""

from __future__ import annotations

import itertools
import math
import random
import weakref
from collections.abc import Iterable
from dataclasses import dataclass

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from .measures import BY_NAME, OOD_KEYS, Measure, by_source, shared_rows, sliced_rows
from .sql import execute
from .stats import POISSON_CDF

FLOOR_REPLICATES = 1000
PERMUTATIONS = 20000  # splittings tried at most; below that number every one is


@dataclass(frozen=True)
class Floored:
    """A characteristic with a noise floor: a measure of Table 2 or the attack sets."""

    name: str
    label: str
    closer: int  # +1 when a higher value means closer models (agreements), -1 for disagreements
    measure: Measure | None  # None: the attack sets


AGREEMENTS = ("errors", "repr_after", "distribution", "top1")
DISAGREEMENTS = ("flips", "changes", "js")
FLOORED: tuple[Floored, ...] = tuple(
    Floored(name, BY_NAME[name].label, +1 if name in AGREEMENTS else -1, BY_NAME[name])
    for name in (*AGREEMENTS, *DISAGREEMENTS)
) + (Floored("attacks", "attack sets", +1, None),)
FLOORED_BY_NAME = {f.name: f for f in FLOORED}
TABLE2_FLOORED = tuple(f for f in FLOORED if f.measure is not None)

ATTACK_ROWS = (
    "select dataset, model_i, model_j, attack, example_id as x_key,"
    " (broken_i and broken_j)::int as num_0, (broken_i or broken_j)::int as den_0"
    " from attack_agreement_examples()"
)
MIN_REPLICAS = 2  # a group needs this many replicas for a floor
GROUPED = f"select model from replicas where replicas >= {MIN_REPLICAS}"

READINGS = {
    -1: "beyond retraining noise",
    0: "within retraining noise",
    1: "closer than its replicas",
}


def grouped_models(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """{model: its replica group} for every model of a group of two or more."""
    return dict(
        execute(con, f"select model, replica_group from replicas where replicas >= {MIN_REPLICAS}").fetchall()
    )


def has_groups(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store holds a replica group of two or more (so a floor can be had)."""
    return bool(execute(con, f"{GROUPED} limit 1").fetchall())


def members_of(groups: dict[str, str]) -> dict[str, list[str]]:
    """{group: its models, by name} from {model: group}."""
    out: dict[str, list[str]] = {}
    for model, group in sorted(groups.items()):
        out.setdefault(group, []).append(model)
    return out


@dataclass
class PairValue:
    """A pair's value of one measure at one key, and its bootstrap replicates."""

    value: float | None
    draws: np.ndarray  # the value in each bootstrap replicate (nan where it has no denominator)


BATCH = 262144  # per-example rows read at a time
WEIGHTS_AT_ONCE = 2**22  # bootstrap weights held at once (replicates x examples): 32 MB
MAX_REPLICATES = 100_000


def weights(h: np.ndarray, replicates: int, seed: int) -> np.ndarray:
    """Poisson(1) weights (replicates x examples) of examples with 64-bit hashes ``h``: a
    draw is a function of (example, replicate, seed) only, so every pair that holds an
    example weights it alike in a replicate (the paired bootstrap)."""
    b = np.arange(replicates, dtype=np.uint64)[:, None]
    with np.errstate(over="ignore"):
        z = h[None, :] ^ (b * np.uint64(0x9E3779B97F4A7C15)) ^ np.uint64((seed * 0xBF58476D1CE4E5B9) % 2**64)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)  # splitmix64's finaliser
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    u = (z >> np.uint64(11)).astype(np.float64) / float(2**53)
    return np.searchsorted(np.asarray(POISSON_CDF), u, side="right").astype(np.float64)


def pair_draws(
    con: duckdb.DuckDBPyConnection,
    rows_sql: str,
    keys: tuple[str, ...],
    count: int,
    replicates: int,
    seed: int,
) -> list[dict[tuple, dict[tuple[str, str], PairValue]]]:
    """For each of ``count`` measures of ``rows_sql`` (per-example rows: ``keys``, model_i,
    model_j, x_key, num_0, den_0, ...): {key: {(model_i, model_j): value and bootstrap
    replicates}}, for the pairs with a model of a replica group only (the others need none).

    The rows stream from DuckDB in batches ordered by example, so each batch's examples are
    weighted once (replicates x examples) and every pair's replicate sums are one matrix
    product: memory grows with a batch and the pairs, not with the store."""
    named = ", ".join(keys)
    sums = ", ".join(f"coalesce(num_{i}, 0)::double, coalesce(den_{i}, 0)::double" for i in range(count))
    sql = (
        f"select {named}, model_i, model_j, hash(x_key) as h, {sums} from ({rows_sql})"
        f" where model_i in ({GROUPED}) or model_j in ({GROUPED}) order by h"
    )
    columns: dict[tuple, int] = {}  # (key, pair) -> its column in the sums
    totals: list[np.ndarray] = []  # per column: num, den of each measure x (the sum, each replicate's)
    width = len(keys)
    for batch in execute(con, sql).to_arrow_reader(batch_size=BATCH):
        named_columns = [pc.cast(batch.column(i), pa.string()) for i in range(width + 2)]
        joined = pc.binary_join_element_wise(
            *named_columns, "\x1f", null_handling="replace", null_replacement="\x00"
        ).dictionary_encode()
        local = joined.indices.to_numpy(zero_copy_only=False)
        found, first_row = np.unique(local, return_index=True)
        place = np.zeros(len(joined.dictionary), dtype=np.int64)
        used = []  # the batch's columns, as global column numbers
        for i, (code, r) in enumerate(zip(found, first_row, strict=True)):
            row = [named_columns[c][int(r)].as_py() for c in range(width + 2)]
            column_key = (tuple(row[:width]), (row[width], row[width + 1]))
            if column_key not in columns:
                columns[column_key] = len(columns)
                totals.append(np.zeros((2 * count, 1 + replicates)))
            used.append(columns[column_key])
            place[code] = i
        h = np.asarray(batch.column(width + 2).to_numpy(zero_copy_only=False), dtype=np.uint64)
        examples, example_of = np.unique(h, return_inverse=True)
        column_of = place[local]
        values = [
            np.asarray(batch.column(width + 3 + m).to_numpy(zero_copy_only=False), dtype=np.float64)
            for m in range(2 * count)
        ]
        order = np.argsort(example_of, kind="stable")  # rows by example: a chunk is a slice
        by_example = example_of[order]
        step = max(1, WEIGHTS_AT_ONCE // (1 + replicates))
        for start in range(0, len(examples), step):
            stop = min(start + step, len(examples))
            rows = order[np.searchsorted(by_example, start) : np.searchsorted(by_example, stop)]
            w = np.concatenate([np.ones((1, stop - start)), weights(examples[start:stop], replicates, seed)])
            cells = (example_of[rows] - start, column_of[rows])
            for m in range(2 * count):
                dense = np.zeros((stop - start, len(used)))
                np.add.at(dense, cells, values[m][rows])
                summed = w @ dense  # (1 + replicates) x columns: the plain sum, then each replicate's
                for i, c in enumerate(used):
                    totals[c][m] += summed[:, i]
    out: list[dict] = [{} for _ in range(count)]
    for (key, pair), c in columns.items():
        sums_ = totals[c]
        for i in range(count):
            num, den = sums_[2 * i], sums_[2 * i + 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                ratio = np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)
            value = None if den[0] <= 0 else float(ratio[0])
            out[i].setdefault(key, {})[pair] = PairValue(value, ratio[1:])
    return out


def _mean(values: Iterable[float | None]) -> float | None:
    kept = [v for v in values if v is not None and not math.isnan(v)]
    return sum(kept) / len(kept) if kept else None


def _percentiles(values: np.ndarray, level: float) -> tuple[float | None, float | None]:
    """The percentile interval of ``values`` (linear interpolation, as DuckDB's
    quantile_cont), nan left out."""
    kept = values[~np.isnan(values)]
    if not len(kept):
        return None, None
    lo, hi = np.quantile(kept, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


@dataclass
class Floor:
    """A group's floor at one key: its replica pairs' values and the bootstrap of their mean."""

    group: str
    replicas: int
    values: dict[tuple[str, str], float]
    draws: np.ndarray

    @property
    def mean(self) -> float | None:
        return _mean(self.values.values())


def floors_at(pairs: dict[tuple[str, str], PairValue], members: dict[str, list[str]]) -> dict[str, Floor]:
    """{group: its floor} for the groups with at least one replica pair among ``pairs``."""
    out = {}
    for group, models in members.items():
        inside = {p: pairs[p] for p in itertools.combinations(sorted(models), 2) if p in pairs}
        inside = {p: v for p, v in inside.items() if v.value is not None}
        if not inside:
            continue
        draws = _nanmean([v.draws for v in inside.values()])
        answered = len({m for p in inside for m in p})  # replicas with this measure here
        out[group] = Floor(group, answered, {p: v.value for p, v in inside.items()}, draws)
    return out


def _nanmean(rows: list[np.ndarray]) -> np.ndarray:
    """The mean of each replicate over ``rows``, nan left out (nan where all are)."""
    stacked = np.vstack(rows)
    counts = (~np.isnan(stacked)).sum(axis=0)
    totals = np.nansum(stacked, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / np.maximum(counts, 1), np.nan)


def gap(
    value: float | None, draws: np.ndarray, floor: Floor, closer: int, level: float
) -> tuple[float | None, float | None, float | None, str | None]:
    """(gap, lo, hi, reading) of a value against ``floor``: gap = value - floor, its
    percentile interval from the paired replicates, and the reading in words."""
    if value is None or floor.mean is None:
        return None, None, None, None
    lo, hi = _percentiles(draws - floor.draws, level)
    return value - floor.mean, lo, hi, reading(lo, hi, closer)


def reading(lo: float | None, hi: float | None, closer: int) -> str | None:
    """How a gap's interval reads: beyond retraining noise (the pair is further apart than
    replicas with the whole interval), within it (the interval holds 0), or closer."""
    if lo is None or hi is None:
        return None
    if lo <= 0 <= hi:
        return READINGS[0]
    further = hi < 0 if closer > 0 else lo > 0
    return READINGS[-1] if further else READINGS[1]


# -- sources of per-example rows ---------------------------------------------------------


def table2_sources(k: int, tpr: float) -> list[tuple[str, tuple[str, ...], tuple[Floored, ...]]]:
    """(rows SQL, its keys, the floored characteristics it holds) with Table 2's keys, and
    the attack sets keyed by dataset and attack."""
    chosen = tuple(f.measure for f in TABLE2_FLOORED)
    out = []
    for group in by_source(chosen):
        keys = ("dataset", *(OOD_KEYS if group[0].ood else ()))
        out.append((shared_rows(group, k, tpr), keys, tuple(FLOORED_BY_NAME[m.name] for m in group)))
    out.append((ATTACK_ROWS, ("dataset", "attack"), (FLOORED_BY_NAME["attacks"],)))
    return out


def computed(
    con: duckdb.DuckDBPyConnection,
    sources: list[tuple[str, tuple[str, ...], tuple[Floored, ...]]],
    replicates: int,
    seed: int,
) -> dict[str, tuple[tuple[str, ...], dict[tuple, dict[tuple[str, str], PairValue]]]]:
    """{characteristic: (keys, {key: {pair: PairValue}})} of every source; each source's
    bootstrap is computed once per connection (Table 2, the floor and the groups of one
    ``ce compare`` share it; a job that changes the store makes a new connection)."""
    memo = _MEMO.setdefault(con, {})
    out = {}
    for rows_sql, keys, chosen in sources:
        key = (rows_sql, keys, replicates, seed)
        if key not in memo:
            memo[key] = pair_draws(con, rows_sql, keys, len(chosen), replicates, seed)
        for f, by_key in zip(chosen, memo[key], strict=True):
            out[f.name] = (keys, by_key)
    return out


_MEMO: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


LONG_KEYS = ("dataset", "bank", "stage")  # the sweep's and the slices' keys of a value


def long_sources(
    k: int, tpr: float, names: tuple[str, ...], slice_expression: str | None = None
) -> list[tuple[str, tuple[str, ...], tuple[Floored, ...]]]:
    """Sources of the floored measures ``names`` keyed as the sweep and the slices key their
    rows: the compared examples' dataset, bank, stage (and slice)."""
    chosen = tuple(f.measure for f in TABLE2_FLOORED if f.name in names)
    keys = LONG_KEYS + (("slice",) if slice_expression else ())
    out = []
    for group in by_source(chosen):
        rows = (
            sliced_rows(group, k, tpr, slice_expression) if slice_expression else shared_rows(group, k, tpr)
        )
        sums = ", ".join(f"num_{i}, den_{i}" for i in range(len(group)))
        named = "x_dataset as dataset, bank, stage" + (", slice" if slice_expression else "")
        sql = f"select {named}, model_i, model_j, x_key, {sums} from ({rows})"
        out.append((sql, keys, tuple(FLOORED_BY_NAME[m.name] for m in group)))
    return out


class Reader:
    """Reads rows of pairs against floors: one floor per (source, key) computed once."""

    def __init__(self, members: dict[str, list[str]], level: float):
        self.members, self.level = members, level
        self.group_of = {m: g for g, ms in members.items() for m in ms}
        self._floors: dict[tuple[int, tuple], dict[str, Floor]] = {}

    def read(self, f: Floored, by_key: dict, key: tuple, model_i: str, model_j: str, value) -> tuple:
        """(floor of model_i's group, gap, lo, hi, reading) of a pair's ``value`` at ``key``
        (Nones where model_i has no floor there or the pair no replicates)."""
        pairs = by_key.get(key, {})
        cached = (id(by_key), key)
        if cached not in self._floors:
            self._floors[cached] = floors_at(pairs, self.members)
        fl = self._floors[cached].get(self.group_of.get(model_i, ""))
        pv = pairs.get(tuple(sorted((model_i, model_j))))
        if fl is None or pv is None or value is None:
            return (fl.mean if fl else None, None, None, None, None)
        g = gap(value, pv.draws, fl, f.closer, self.level)
        if self.group_of.get(model_j) == fl.group:
            g = (*g[:3], "replica pair (in the floor)")
        return (fl.mean, *g)


LONG_COLUMNS = ("floor", "gap", "gap_lo", "gap_hi", "noise")


def with_long_floors(table: pa.Table, lookup, members: dict[str, list[str]], level: float) -> pa.Table:
    """A long table (the sweep, the slices: ``characteristic``, keys, model_i, model_j,
    ``jaccard``) with the floor of model_i's group, the gap, its interval and its reading;
    ``lookup(row)`` gives (keys, {key: {pair: PairValue}}) of the row's measure, or None."""
    reader = Reader(members, level)
    out: dict[str, list] = {c: [] for c in LONG_COLUMNS}
    for r in table.to_pylist():
        found, f = lookup(r), FLOORED_BY_NAME.get(r["characteristic"])
        if found is None or f is None:
            read = (None,) * len(LONG_COLUMNS)
        else:
            keys, by_key = found
            key = tuple(r[c] for c in keys)
            read = reader.read(f, by_key, key, r["model_i"], r["model_j"], r["jaccard"])
        for c, v in zip(out, read, strict=True):
            out[c].append(v)
    for c, values in out.items():
        table = table.append_column(c, pa.array(values, pa.string() if c == "noise" else pa.float64()))
    return table


# -- the tables ---------------------------------------------------------------------------

KEY_FIELDS = [  # what a floor or group row is of: the characteristic, its examples and setting
    ("characteristic", pa.string()),
    ("dataset", pa.string()),
    ("ood_dataset", pa.string()),
    ("ood_bank", pa.string()),
    ("ood_stage", pa.string()),
    ("attack", pa.string()),
]
KEY_COLUMNS = tuple(name for name, _ in KEY_FIELDS[1:])  # dataset, the OOD keys, attack
FLOOR_SCHEMA = pa.schema(
    [
        *KEY_FIELDS,
        ("replica_group", pa.string()),
        ("replicas", pa.int64()),
        ("pairs", pa.int64()),
        ("floor", pa.float64()),
        ("floor_lo", pa.float64()),
        ("floor_hi", pa.float64()),
        ("floor_min", pa.float64()),
        ("floor_max", pa.float64()),
    ]
)


def floor_rows(data: dict, members: dict[str, list[str]], level: float) -> list[dict]:
    """The rows of noise_floor(): per characteristic, key and group."""
    rows = []
    for _, named, pairs in _keyed(data):
        for group, fl in sorted(floors_at(pairs, members).items()):
            lo, hi = _percentiles(fl.draws, level)
            rows.append(
                {
                    **named,
                    "replica_group": group,
                    "replicas": fl.replicas,
                    "pairs": len(fl.values),
                    "floor": fl.mean,
                    "floor_lo": lo,
                    "floor_hi": hi,
                    "floor_min": min(fl.values.values()),
                    "floor_max": max(fl.values.values()),
                }
            )
    return rows


def _keyed(data: dict):
    """(characteristic, its key columns as a floor or group row names them, {pair: value})
    for every characteristic of ``data`` and key, in a stable order."""
    for f in FLOORED:
        if f.name not in data:
            continue
        keys, by_key = data[f.name]
        for key in sorted(by_key, key=lambda t: tuple("" if v is None else str(v) for v in t)):
            named = dict(zip(keys, key, strict=True))
            yield f, {"characteristic": f.name, **{c: named.get(c) for c in KEY_COLUMNS}}, by_key[key]


GROUP_SCHEMA = pa.schema(
    [
        *KEY_FIELDS,
        ("group_i", pa.string()),
        ("group_j", pa.string()),
        ("replicas_i", pa.int64()),
        ("replicas_j", pa.int64()),
        ("pairs", pa.int64()),
        ("between", pa.float64()),
        ("between_lo", pa.float64()),
        ("between_hi", pa.float64()),
        ("between_min", pa.float64()),
        ("between_max", pa.float64()),
        ("floor_i", pa.float64()),
        ("floor_j", pa.float64()),
        ("gap", pa.float64()),
        ("gap_lo", pa.float64()),
        ("gap_hi", pa.float64()),
        ("p_value", pa.float64()),
        ("splittings", pa.int64()),
        ("reading", pa.string()),
    ]
)


def permutation_p(
    a: list[str], b: list[str], values: dict[tuple[str, str], float], closer: int, seed: int
) -> tuple[float | None, int | None]:
    """(p-value, splittings tried) of the permutation test over replica labels: the pooled
    models of groups ``a`` and ``b`` split every way into groups of the same sizes; the
    statistic is closer * (mean within - mean between). (None, None) when a pair's value is
    missing, or a group has no pair within."""
    if len(a) < 2 and len(b) < 2:
        return None, None
    pooled = sorted(a + b)
    pair_values = {}
    for p in itertools.combinations(pooled, 2):
        if values.get(p) is None:
            return None, None
        pair_values[p] = values[p]

    def statistic(left: frozenset) -> float:
        within, between = [], []
        for p, v in pair_values.items():
            (within if (p[0] in left) == (p[1] in left) else between).append(v)
        return closer * (sum(within) / len(within) - sum(between) / len(between))

    observed = statistic(frozenset(a))
    total = math.comb(len(pooled), len(a))
    if total <= PERMUTATIONS:
        splits = [frozenset(c) for c in itertools.combinations(pooled, len(a))]
    else:
        rng = random.Random(seed)
        splits = [frozenset(a)] + [frozenset(rng.sample(pooled, len(a))) for _ in range(PERMUTATIONS - 1)]
    at_least = sum(statistic(s) >= observed - 1e-12 for s in splits)
    return at_least / len(splits), len(splits)


def group_rows(
    data: dict, members: dict[str, list[str]], ranks: dict[str, int], level: float, seed: int
) -> list[dict]:
    """The rows of group_agreement(): per characteristic, key and pair of replica groups
    (the better-ranked group first: the one holding the reference, then the largest)."""
    order = sorted(members, key=lambda g: (min(ranks.get(m, 10**9) for m in members[g]), g))
    rows = []
    for f, named, pairs in _keyed(data):
        floors = floors_at(pairs, members)
        present = {m for p in pairs for m in p}
        for gi, gj in itertools.combinations(order, 2):
            a = [m for m in members[gi] if m in present]  # the replicas with data here
            b = [m for m in members[gj] if m in present]
            cross = {tuple(sorted((x, y))): pairs.get(tuple(sorted((x, y)))) for x in a for y in b}
            cross = {p: v for p, v in cross.items() if v is not None and v.value is not None}
            if not cross or gi not in floors:
                continue
            draws = _nanmean([v.draws for v in cross.values()])
            between = _mean(v.value for v in cross.values())
            lo, hi = _percentiles(draws, level)
            g, g_lo, g_hi, _ = gap(between, draws, floors[gi], f.closer, level)
            p, splittings = permutation_p(a, b, {q: v.value for q, v in pairs.items()}, f.closer, seed)
            rows.append(
                {
                    **named,
                    "group_i": gi,
                    "group_j": gj,
                    "replicas_i": len(a),
                    "replicas_j": len(b),
                    "pairs": len(cross),
                    "between": between,
                    "between_lo": lo,
                    "between_hi": hi,
                    "between_min": min(v.value for v in cross.values()),
                    "between_max": max(v.value for v in cross.values()),
                    "floor_i": floors[gi].mean,
                    "floor_j": floors[gj].mean if gj in floors else None,
                    "gap": g,
                    "gap_lo": g_lo,
                    "gap_hi": g_hi,
                    "p_value": p,
                    "splittings": splittings,
                    "reading": reading(g_lo, g_hi, f.closer),
                }
            )
    return rows


def ranks(con: duckdb.DuckDBPyConnection, reference: str | None) -> dict[str, int]:
    """{model: its rank} by model_rank (the reference first)."""
    rows = execute(con, "select model, rank from model_rank(reference := $r)", {"r": reference}).fetchall()
    return dict(rows)


def floor_columns(name: str) -> tuple[str, ...]:
    """Table 2's columns of a floored measure's floor and gap."""
    return (f"{name}_floor", f"{name}_gap", f"{name}_gap_lo", f"{name}_gap_hi", f"{name}_noise")


def with_floors(table: pa.Table, data: dict, members: dict[str, list[str]], level: float) -> pa.Table:
    """``table`` (Table 2, pairs oriented) with, after each floored measure, the floor of
    model_i's group, the gap and its interval, and the reading in words (empty where
    model_i has no replicas, or they do not all have this measure)."""
    reader = Reader(members, level)
    rows = table.to_pylist()
    for f in TABLE2_FLOORED:
        keys, by_key = data.get(f.name, (("dataset",), {}))
        columns: dict[str, list] = {c: [] for c in floor_columns(f.name)}
        for r in rows:
            read = reader.read(f, by_key, tuple(r[c] for c in keys), r["model_i"], r["model_j"], r[f.name])
            for c, v in zip(columns, read, strict=True):
                columns[c].append(v)
        position = table.column_names.index(f"{f.name}_few") + 1
        for c, values in columns.items():
            kind = pa.string() if c.endswith("_noise") else pa.float64()
            table = table.add_column(position, c, pa.array(values, kind))
            position += 1
    return table


__all__ = [
    "FLOORED",
    "FLOOR_SCHEMA",
    "GROUP_SCHEMA",
    "computed",
    "floor_rows",
    "group_rows",
    "grouped_models",
    "has_groups",
    "members_of",
    "permutation_p",
    "ranks",
    "table2_sources",
    "with_floors",
]
