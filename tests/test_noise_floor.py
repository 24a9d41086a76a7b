"""The noise floor (issue 17): every number of noise_floor(), the gaps of Table 2, the
group comparison and pie_examples() against an independent recount (plain Python: sets,
fractions, itertools) on a hand-made store of three replicas of a reference (r-s0, r-s1,
r-s2), two of a variant (v-s0, v-s1) and a lone model (solo); the published error lists
(no replicas: empty floor columns with a note, never zero); the hostile replica field."""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import random
from fractions import Fraction

import duckdb
import pyarrow as pa
import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.store import Store
from ce.store.errors import NotFound, StoreError
from ce.store.records import parse_record

from .conftest import DATA_DIR, needs_data

# -- the hand-made store ------------------------------------------------------------------

N = 16
IDS = [f"x{i}" for i in range(N)]
LABELS = [i % 3 for i in range(N)]  # x0: 0, x1: 1, x2: 2, x3: 0, ...
K = 2  # neighbours compared (the lists hold 3)
REPLICATES = 200
GROUP = {"r-s0": ("r", 0), "r-s1": ("r", 1), "r-s2": ("r", 2), "v-s0": ("v", 0), "v-s1": ("v", 1)}
PARAMETERS = {"r-s0": 100, "r-s1": 100, "r-s2": 100, "v-s0": 50, "v-s1": 50, "solo": 10}
MODELS = list(PARAMETERS)  # in rank order: the r replicas lead every pair they are in

# The wrong answers, {example index: the label answered}; every other example is answered
# right. v-s1 answered x0..x14 only (no x15). The errors, by hand:
#   r-s0 {x0, x1, x2, x3, x14}      r-s1 {x0, x1, x2, x4, x14}      r-s2 {x0, x1, x5, x6}
#   v-s0 {x0, x7, x8, x9, x10, x13, x15}    v-s1 {x0, x1, x7, x11, x12, x13}    solo {x3, x13}
WRONG = {
    "r-s0": {0: 1, 1: 2, 2: 0, 3: 1, 14: 0},
    "r-s1": {0: 1, 1: 0, 2: 0, 4: 2, 14: 1},  # x1: another wrong answer than r-s0's
    "r-s2": {0: 1, 1: 2, 5: 0, 6: 1},
    "v-s0": {0: 2, 7: 2, 8: 0, 9: 1, 10: 2, 13: 0, 15: 1},
    "v-s1": {0: 2, 1: 2, 7: 2, 11: 0, 12: 1, 13: 2},  # x13: v's two votes tie (0 | 2)
    "solo": {3: 1, 13: 2},
}
ANSWERED = {m: list(range(N - 1)) if m == "v-s1" else list(range(N)) for m in MODELS}

# Jaccard of the errors (in both / in either, over the examples both answered), by hand:
ERRORS = {
    ("r-s0", "r-s1"): Fraction(4, 6),  # {0,1,2,14} / {0,1,2,3,4,14}
    ("r-s0", "r-s2"): Fraction(2, 7),  # {0,1} / {0,1,2,3,5,6,14}
    ("r-s1", "r-s2"): Fraction(2, 7),  # {0,1} / {0,1,2,4,5,6,14}
    ("v-s0", "v-s1"): Fraction(3, 9),  # over x0..x14: {0,7,13} / {0,1,7,8,9,10,11,12,13}
    ("r-s0", "v-s0"): Fraction(1, 11),  # {0} / {0,1,2,3,7,8,9,10,13,14,15}
    ("r-s0", "v-s1"): Fraction(2, 9),  # {0,1} / {0,1,2,3,7,11,12,13,14}
    ("r-s1", "v-s0"): Fraction(1, 11),  # {0} / {0,1,2,4,7,8,9,10,13,14,15}
    ("r-s1", "v-s1"): Fraction(2, 9),  # {0,1} / {0,1,2,4,7,11,12,13,14}
    ("r-s2", "v-s0"): Fraction(1, 10),  # {0} / {0,1,5,6,7,8,9,10,13,15}
    ("r-s2", "v-s1"): Fraction(2, 8),  # {0,1} / {0,1,5,6,7,11,12,13}
    ("r-s0", "solo"): Fraction(1, 6),  # {3} / {0,1,2,3,13,14}
}
ERRORS_FLOOR = {"r": Fraction(26, 63), "v": Fraction(1, 3)}  # (2/3 + 2/7 + 2/7) / 3; one pair
ERRORS_BETWEEN = (2 * Fraction(1, 11) + 2 * Fraction(2, 9) + Fraction(1, 10) + Fraction(1, 4)) / 6

# The examples each model broke under attack (among those it answered right; the examples it
# got wrong are 'skipped', the rest 'failed').
BROKEN = {
    "r-s0": {4, 5, 6, 7},
    "r-s1": {5, 6, 7, 8},
    "r-s2": {2, 4, 7, 8, 9},
    "v-s0": {1, 2, 3, 4, 5},
    "v-s1": {2, 3, 4, 5, 6},
    "solo": {4, 5},
}
WITH_PROBS = ("r-s0", "r-s1", "r-s2", "v-s0")  # v-s1 and solo store no distribution


def answer(model: str, i: int) -> int:
    return WRONG[model].get(i, LABELS[i])


def probs(model: str, i: int) -> list[float]:
    """A distribution peaked at the model's answer, its confidence varying by model and example."""
    top = 0.4 + 0.1 * ((i + MODELS.index(model)) % 5)
    out = [(1 - top) / 2] * 3
    out[answer(model, i)] = top
    return out


def neighbours(model: str, i: int) -> list[int]:
    """Three neighbour idx of example i: the reference's replicas near i's successors, the
    variant's near its predecessors, each with seeded changes."""
    rng = random.Random(f"{model}-{i}")
    step = 1 if model.startswith("r") else -1
    out = [(i + step * d) % N for d in (1, 2, 3)]
    if rng.random() < 0.5:
        out[rng.randrange(3)] = rng.choice([j for j in range(N) if j != i and j not in out])
    if rng.random() < 0.3:
        out.reverse()
    return out


def attack_result(model: str, i: int) -> str:
    return "skipped" if i in WRONG[model] else "succeeded" if i in BROKEN[model] else "failed"


def write_hand_store(root) -> Store:
    for model, wrong in WRONG.items():
        assert all(LABELS[i] != a for i, a in wrong.items()), model
        assert not BROKEN[model] & set(wrong) and BROKEN[model] <= set(ANSWERED[model]), model
    store = Store(root)
    with store.run("test", {}) as run:
        table = {
            "example_id": IDS,
            "idx": list(range(N)),
            "text": [f"text {i}" for i in IDS],
            "label": LABELS,
        }
        run.write("examples", {"dataset": "toy"}, pa.table(table))
    for model in MODELS:
        replica = {"group": GROUP[model][0], "seed": GROUP[model][1]} if model in GROUP else None
        extra = {"replica": replica} if replica else {}
        with store.run("test", {}, model=model, model_parameters=PARAMETERS[model], **extra) as run:
            done = ANSWERED[model]
            columns = {
                "example_id": [IDS[i] for i in done],
                "pred_label": [answer(model, i) for i in done],
                "correct": [answer(model, i) == LABELS[i] for i in done],
            }
            if model in WITH_PROBS:
                columns["probs"] = [probs(model, i) for i in done]
            run.write("predictions", {"model": model, "dataset": "toy"}, pa.table(columns))
            nb = pa.table(
                {
                    "example_id": IDS,
                    "idx": list(range(N)),
                    "neighbors": pa.array([neighbours(model, i) for i in range(N)], pa.list_(pa.int32())),
                }
            )
            run.write("neighbors", {"model": model, "stage": "finetuned", "dataset": "toy"}, nb)
            attacks = {
                "example_id": [IDS[i] for i in done],
                "ground_truth": [LABELS[i] for i in done],
                "result": [attack_result(model, i) for i in done],
            }
            run.write("attacks", {"model": model, "attack": "a1", "dataset": "toy"}, pa.table(attacks))
    return store


@pytest.fixture(scope="module")
def hand(tmp_path_factory) -> Store:
    return write_hand_store(tmp_path_factory.mktemp("floor") / "store")


@pytest.fixture(scope="module")
def session(hand):
    with ce.open(hand) as s:
        yield s


# -- the independent recount --------------------------------------------------------------


def per_example(name: str, a: str, b: str, k: int = K) -> dict[str, tuple[float, float]]:
    """{example id: (numerator, denominator)} of characteristic ``name`` for models a, b,
    over the examples the characteristic compares them on (recounted from the inputs)."""
    out = {}
    if name == "repr_after":
        for i in range(N):
            x, y = set(neighbours(a, i)[:k]), set(neighbours(b, i)[:k])
            out[IDS[i]] = (len(x & y) / len(x | y), 1)
        return out
    if name == "attacks":
        for i in set(ANSWERED[a]) & set(ANSWERED[b]):
            if "skipped" in (attack_result(a, i), attack_result(b, i)):
                continue
            x, y = i in BROKEN[a], i in BROKEN[b]
            out[IDS[i]] = (int(x and y), int(x or y))
        return out
    for i in set(ANSWERED[a]) & set(ANSWERED[b]):
        wa, wb = i in WRONG[a], i in WRONG[b]
        if name == "errors":
            out[IDS[i]] = (int(wa and wb), int(wa or wb))
        elif name == "flips":
            out[IDS[i]] = (int(wa != wb), 1)
        elif name == "changes":
            out[IDS[i]] = (int(answer(a, i) != answer(b, i)), 1)
        elif name in ("top1", "js"):
            if a not in WITH_PROBS or b not in WITH_PROBS:
                continue
            p, q = probs(a, i), probs(b, i)
            if name == "top1":
                out[IDS[i]] = (int(p.index(max(p)) == q.index(max(q))), 1)
            else:
                m = [(s + t) / 2 for s, t in zip(p, q, strict=True)]
                js = sum(
                    0.5 * s * math.log(s / u) + 0.5 * t * math.log(t / u)
                    for s, t, u in zip(p, q, m, strict=True)
                )
                out[IDS[i]] = (js, 1)
        else:
            raise AssertionError(name)
    return out


def ratio(rows: dict[str, tuple[float, float]], weight=lambda x: 1) -> float | None:
    den = sum(weight(x) * d for x, (_, d) in rows.items())
    return None if den == 0 else sum(weight(x) * n for x, (n, _) in rows.items()) / den


def poisson_cdf() -> list[float]:
    """Poisson(1)'s cumulative probabilities for 0..5, to six decimals (as the draws use)."""
    return [round(sum(math.exp(-1) / math.factorial(j) for j in range(i + 1)), 6) for i in range(6)]


MASK = 2**64 - 1


def weights(replicates: int, seed: int) -> list[dict[str, int]]:
    """Per replicate b, {example id: its Poisson(1) weight}, recomputed with Python integers:
    the uniform is splitmix64's finaliser of DuckDB's hash(example id) xor b * golden gamma
    xor seed * its first multiplier, its top 53 bits over 2^53, as floor.py defines it."""
    hashes = dict(
        duckdb.connect()
        .execute("select x, hash(x) from unnest($ids::varchar[]) t(x)", {"ids": IDS})
        .fetchall()
    )
    cdf = poisson_cdf()
    out = []
    for b in range(replicates):
        drawn = {}
        for x, h in hashes.items():
            z = h ^ ((b * 0x9E3779B97F4A7C15) & MASK) ^ ((seed * 0xBF58476D1CE4E5B9) & MASK)
            z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
            z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
            z ^= z >> 31
            u = (z >> 11) / 2**53
            drawn[x] = next((i for i, p in enumerate(cdf) if u < p), len(cdf))
        out.append(drawn)
    return out


def percentiles(values, level=0.95) -> tuple[float, float]:
    """Percentile interval with linear interpolation between order statistics."""
    kept = sorted(v for v in values if v is not None)

    def at(q):
        pos = q * (len(kept) - 1)
        low = int(pos)
        high = min(low + 1, len(kept) - 1)
        return kept[low] + (kept[high] - kept[low]) * (pos - low)

    return at((1 - level) / 2), at((1 + level) / 2)


def mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return sum(kept) / len(kept) if kept else None


class Recount:
    """Every pair value and its bootstrap replicates, recounted."""

    def __init__(self, name: str, replicates: int = REPLICATES, seed: int = 0, k: int = K):
        self.name = name
        self.w = weights(replicates, seed)
        self.rows = {p: per_example(name, *p, k=k) for p in itertools.combinations(sorted(MODELS), 2)}

    def value(self, a: str, b: str) -> float | None:
        return ratio(self.rows[tuple(sorted((a, b)))])

    def draws(self, a: str, b: str) -> list[float | None]:
        rows = self.rows[tuple(sorted((a, b)))]
        return [ratio(rows, lambda x, w=w: w[x]) for w in self.w]

    def floor_pairs(self, group: str) -> list[tuple[str, str]]:
        members = sorted(m for m in GROUP if GROUP[m][0] == group)
        return [p for p in itertools.combinations(members, 2) if self.value(*p) is not None]

    def floor(self, group: str) -> float | None:
        return mean(self.value(*p) for p in self.floor_pairs(group))

    def floor_draws(self, group: str) -> list[float | None]:
        per_pair = [self.draws(*p) for p in self.floor_pairs(group)]
        return [mean(d[b] for d in per_pair) for b in range(len(self.w))]

    def gap_interval(self, a: str, b: str, group: str) -> tuple[float, float]:
        f = self.floor_draws(group)
        d = self.draws(a, b)
        return percentiles([None if x is None or y is None else x - y for x, y in zip(d, f, strict=True)])


FLOORED_HERE = ("errors", "repr_after", "top1", "flips", "changes", "js", "attacks")
CLOSER = {"errors": 1, "repr_after": 1, "top1": 1, "attacks": 1, "flips": -1, "changes": -1, "js": -1}


@pytest.fixture(scope="module")
def recount() -> dict[str, Recount]:
    return {name: Recount(name) for name in FLOORED_HERE}


@pytest.fixture(scope="module")
def floors(session):
    result = session.noise_floor(k=K, replicates=REPLICATES)
    return result.rows(), result.notes


@pytest.fixture(scope="module")
def table2(session):
    result = session.table2(k=K, replicates=REPLICATES)
    return result.rows(), result.notes


@pytest.fixture(scope="module")
def groups(session):
    result = session.group_agreement(k=K, replicates=REPLICATES)
    return result.rows(), result.notes


# -- the hand-written values, and the recount agreeing with them ---------------------------


def test_the_recount_gives_the_hand_written_errors(recount):
    rc = recount["errors"]
    for pair, expected in ERRORS.items():
        assert rc.value(*pair) == pytest.approx(float(expected), abs=1e-15), pair
    assert rc.floor("r") == pytest.approx(float(ERRORS_FLOOR["r"]))
    assert rc.floor("v") == pytest.approx(float(ERRORS_FLOOR["v"]))


def test_the_store_has_the_replica_groups(session):
    got = session.query("select model, replica_group, seed, replicas from replicas order by model").fetchall()
    assert got == [(m, g, s, 3 if g == "r" else 2) for m, (g, s) in sorted(GROUP.items())]


# -- noise_floor() ------------------------------------------------------------------------


def test_noise_floor_errors_equal_the_hand_written_values(floors):
    rows, notes = floors
    got = {r["replica_group"]: r for r in rows if r["characteristic"] == "errors"}
    assert sorted(got) == ["r", "v"]
    r, v = got["r"], got["v"]
    assert (r["dataset"], r["replicas"], r["pairs"], v["replicas"], v["pairs"]) == ("toy", 3, 3, 2, 1)
    assert r["floor"] == pytest.approx(float(ERRORS_FLOOR["r"]), abs=1e-12)
    assert (r["floor_min"], r["floor_max"]) == (pytest.approx(2 / 7), pytest.approx(2 / 3))
    assert v["floor"] == v["floor_min"] == v["floor_max"] == pytest.approx(1 / 3)
    assert not notes


def test_every_floor_equals_the_recount(floors, recount):
    rows, _ = floors
    got = {(r["characteristic"], r["replica_group"]): r for r in rows}
    expected = set()
    for name, rc in recount.items():
        for group in ("r", "v"):
            if rc.floor(group) is not None:
                expected.add((name, group))
    # v-s1 stores no distribution: v has no floor of top-1 agreement or JS
    assert ("top1", "v") not in expected and ("js", "r") in expected
    assert set(got) == expected
    for (name, group), r in got.items():
        rc = recount[name]
        values = [rc.value(*p) for p in rc.floor_pairs(group)]
        assert r["pairs"] == len(values), (name, group)
        assert r["replicas"] == (3 if group == "r" else 2)
        assert r["floor"] == pytest.approx(mean(values), abs=1e-12), (name, group)
        assert r["floor_min"] == pytest.approx(min(values), abs=1e-12), (name, group)
        assert r["floor_max"] == pytest.approx(max(values), abs=1e-12), (name, group)
        assert (r["ood_dataset"], r["ood_bank"], r["ood_stage"]) == (None, None, None)
        assert r["attack"] == ("a1" if name == "attacks" else None)
    order = [r["characteristic"] for r in rows]
    assert order == sorted(order, key=FLOORED_HERE.index)  # in the order of the characteristics


def test_floor_intervals_equal_a_recount_of_the_bootstrap(floors, recount):
    rows, _ = floors
    for r in rows:
        lo, hi = percentiles(recount[r["characteristic"]].floor_draws(r["replica_group"]))
        key = (r["characteristic"], r["replica_group"])
        assert r["floor_lo"] == pytest.approx(lo, abs=1e-12), key
        assert r["floor_hi"] == pytest.approx(hi, abs=1e-12), key
        assert r["floor_lo"] <= r["floor_hi"]


def test_floor_interval_sanity_and_the_seed_matters(session, floors):
    rows, _ = floors
    for r in rows:
        assert r["floor_lo"] <= r["floor"] <= r["floor_hi"], r
    other = session.noise_floor(k=K, replicates=REPLICATES, seed=7).rows()
    assert [r["floor"] for r in other] == [r["floor"] for r in rows]  # the values stay
    assert [(r["floor_lo"], r["floor_hi"]) for r in other] != [(r["floor_lo"], r["floor_hi"]) for r in rows]
    recounted = percentiles(Recount("errors", seed=7).floor_draws("r"))
    [r] = [r for r in other if (r["characteristic"], r["replica_group"]) == ("errors", "r")]
    assert (r["floor_lo"], r["floor_hi"]) == (pytest.approx(recounted[0]), pytest.approx(recounted[1]))


def test_a_narrower_level_narrows_the_interval(session, floors):
    rows, _ = floors
    narrow = session.noise_floor(k=K, ci=0.5, replicates=REPLICATES).rows()
    for wide, r in zip(rows, narrow, strict=True):
        assert wide["floor_lo"] <= r["floor_lo"] <= r["floor_hi"] <= wide["floor_hi"]


# -- Table 2: the floor and the gap of every pair ------------------------------------------


def test_table2_errors_beside_the_hand_written_floor(table2):
    rows, notes = table2
    got = {(r["model_i"], r["model_j"]): r for r in rows}
    assert set(got) == {p for p in itertools.combinations(MODELS, 2)}  # the better-ranked first
    for pair, expected in ERRORS.items():
        assert got[pair]["errors"] == pytest.approx(float(expected), abs=1e-12)
    r = got[("r-s0", "v-s0")]
    assert r["errors_floor"] == pytest.approx(float(ERRORS_FLOOR["r"]))
    assert r["errors_gap"] == pytest.approx(float(Fraction(1, 11) - ERRORS_FLOOR["r"]))
    r = got[("v-s0", "solo")]  # led by v-s0: read against v's floor
    assert r["errors_floor"] == pytest.approx(1 / 3)
    # solo leads no pair, so no note names it; no note says there are no replicas either
    assert not [n for n in notes if "replica" in n]


def test_pairs_led_by_a_model_without_replicas_have_empty_floors_and_a_note(session):
    result = session.table2(k=K, replicates=REPLICATES, reference="solo")
    rows = result.rows()
    assert {r["model_i"] for r in rows if "solo" in (r["model_i"], r["model_j"])} == {"solo"}
    for r in rows:
        floored = [r[f"{m}_{c}"] for m in ("errors", "flips", "changes") for c in ("floor", "gap", "noise")]
        if r["model_i"] == "solo":
            assert floored == [None] * 9
        else:
            assert None not in floored
    assert any(n.startswith("note: solo lead pairs but have no replicas") for n in result.notes)


def test_every_gap_of_table2_equals_the_recount(table2, recount):
    rows, _ = table2
    seen = 0
    for r in rows:
        group = GROUP.get(r["model_i"], (None,))[0]
        for name in FLOORED_HERE:
            if name == "attacks":
                continue  # not a Table 2 column
            rc = recount[name]
            columns = [f"{name}_{c}" for c in ("floor", "gap", "gap_lo", "gap_hi", "noise")]
            floor = rc.floor(group) if group else None
            value = rc.value(r["model_i"], r["model_j"])
            assert r[name] == (None if value is None else pytest.approx(value, abs=1e-12)), (r, name)
            if floor is None:
                assert [r[c] for c in columns] == [None] * 5, (r["model_i"], r["model_j"], name)
                continue
            assert r[columns[0]] == pytest.approx(floor, abs=1e-12)
            if value is None:
                assert [r[c] for c in columns[1:]] == [None] * 4
                continue
            seen += 1
            assert r[columns[1]] == pytest.approx(value - floor, abs=1e-12), (
                r["model_i"],
                r["model_j"],
                name,
            )
            lo, hi = rc.gap_interval(r["model_i"], r["model_j"], group)
            assert r[columns[2]] == pytest.approx(lo, abs=1e-12), (r["model_i"], r["model_j"], name)
            assert r[columns[3]] == pytest.approx(hi, abs=1e-12), (r["model_i"], r["model_j"], name)
            if GROUP.get(r["model_j"], (None,))[0] == group:
                assert r[columns[4]] == "replica pair (in the floor)"
            else:
                assert r[columns[4]] == expected_reading(lo, hi, CLOSER[name])
    assert seen > 40


def expected_reading(lo: float, hi: float, closer: int) -> str:
    if lo <= 0 <= hi:
        return "within retraining noise"
    further = hi < 0 if closer > 0 else lo > 0
    return "beyond retraining noise" if further else "closer than its replicas"


def test_table2_floor_columns_sit_after_each_measure(table2):
    rows, _ = table2
    columns = list(rows[0])
    for name in ("errors", "repr_after", "distribution", "top1", "flips", "changes", "js"):
        at = columns.index(f"{name}_few")
        assert columns[at + 1 : at + 6] == [
            f"{name}_floor",
            f"{name}_gap",
            f"{name}_gap_lo",
            f"{name}_gap_hi",
            f"{name}_noise",
        ]
    # no OOD scores in this store: the distribution's floor columns are empty, never zero
    assert all(r[f"distribution_{c}"] is None for r in rows for c in ("floor", "gap", "gap_lo", "gap_hi"))


def test_table2_with_ci_uses_its_level_for_the_gaps(session, table2, recount):
    rows = session.table2(k=K, ci=0.8, replicates=REPLICATES).rows()
    [r] = [r for r in rows if (r["model_i"], r["model_j"]) == ("r-s0", "v-s0")]
    rc = recount["errors"]
    f = rc.floor_draws("r")
    d = rc.draws("r-s0", "v-s0")
    lo, hi = percentiles([x - y for x, y in zip(d, f, strict=True) if x is not None and y is not None], 0.8)
    assert (r["errors_gap_lo"], r["errors_gap_hi"]) == (pytest.approx(lo), pytest.approx(hi))
    assert r["errors_lo"] is not None  # the interval of the agreement itself is there too


# -- the groups compared ------------------------------------------------------------------


def permutation_p(a: list[str], b: list[str], value, closer: int) -> tuple[float, int]:
    """Every split of the pooled models into groups of len(a) and len(b): the share whose
    closer * (mean within - mean between) is at least the observed one."""
    pooled = sorted(a + b)

    def stat(left: set[str]) -> float:
        within = [value(x, y) for x, y in itertools.combinations(pooled, 2) if (x in left) == (y in left)]
        between = [value(x, y) for x, y in itertools.combinations(pooled, 2) if (x in left) != (y in left)]
        return closer * (sum(within) / len(within) - sum(between) / len(between))

    observed = stat(set(a))
    splits = [set(c) for c in itertools.combinations(pooled, len(a))]
    return sum(stat(s) >= observed - 1e-12 for s in splits) / len(splits), len(splits)


def test_group_agreement_errors_by_hand(groups):
    rows, notes = groups
    [r] = [r for r in rows if r["characteristic"] == "errors"]
    assert (r["group_i"], r["group_j"], r["replicas_i"], r["replicas_j"], r["pairs"]) == ("r", "v", 3, 2, 6)
    assert r["between"] == pytest.approx(float(ERRORS_BETWEEN), abs=1e-12)
    assert (r["between_min"], r["between_max"]) == (pytest.approx(1 / 11), pytest.approx(1 / 4))
    assert (r["floor_i"], r["floor_j"]) == (pytest.approx(26 / 63), pytest.approx(1 / 3))
    assert r["gap"] == pytest.approx(float(ERRORS_BETWEEN - ERRORS_FLOOR["r"]), abs=1e-12)
    # by hand, the 10 splittings of {r-s0, r-s1, r-s2, v-s0, v-s1} into 3 + 2: the observed
    # one has the largest within - between (its within pairs are the four largest values but one)
    values = {**ERRORS, ("r-s0", "v-s0"): Fraction(1, 11)}
    p, n = permutation_p(["r-s0", "r-s1", "r-s2"], ["v-s0", "v-s1"], lambda x, y: values[(x, y)], 1)
    assert (r["p_value"], r["splittings"]) == (pytest.approx(p), n) == (pytest.approx(0.1), 10)
    assert (
        "note: with 3 and 2 replicas the permutation test has 10 splittings, so its p-value is at least 0.1"
        in notes
    )


def test_every_group_row_equals_the_recount(groups, recount):
    rows, _ = groups
    got = {r["characteristic"]: r for r in rows}
    assert set(got) == set(FLOORED_HERE)
    a, b = ["r-s0", "r-s1", "r-s2"], ["v-s0", "v-s1"]
    for name, r in got.items():
        rc = recount[name]
        assert (r["group_i"], r["group_j"]) == ("r", "v")
        cross = [(x, y) for x in a for y in b if rc.value(x, y) is not None]
        values = [rc.value(*p) for p in cross]
        assert r["pairs"] == len(cross), name
        assert r["between"] == pytest.approx(mean(values), abs=1e-12), name
        assert (r["between_min"], r["between_max"]) == (
            pytest.approx(min(values)),
            pytest.approx(max(values)),
        )
        per_pair = [rc.draws(*p) for p in cross]
        between = [mean(d[i] for d in per_pair) for i in range(REPLICATES)]
        lo, hi = percentiles(between)
        assert (r["between_lo"], r["between_hi"]) == (
            pytest.approx(lo, abs=1e-12),
            pytest.approx(hi, abs=1e-12),
        )
        floor_i = rc.floor("r")
        assert r["floor_i"] == pytest.approx(floor_i, abs=1e-12)
        assert r["floor_j"] == (None if rc.floor("v") is None else pytest.approx(rc.floor("v"), abs=1e-12))
        assert r["gap"] == pytest.approx(mean(values) - floor_i, abs=1e-12), name
        f = rc.floor_draws("r")
        glo, ghi = percentiles(
            [None if x is None or y is None else x - y for x, y in zip(between, f, strict=True)]
        )
        assert (r["gap_lo"], r["gap_hi"]) == (pytest.approx(glo, abs=1e-12), pytest.approx(ghi, abs=1e-12)), (
            name
        )
        assert r["reading"] == expected_reading(glo, ghi, CLOSER[name])
        if all(rc.value(x, y) is not None for x, y in itertools.combinations(sorted(a + b), 2)):
            p, n = permutation_p(a, b, rc.value, CLOSER[name])
            assert (r["p_value"], r["splittings"]) == (pytest.approx(p), n), name
        else:  # v-s1 has no distribution: a pair's value is missing, so no test
            assert name in ("top1", "js")
            assert (r["p_value"], r["splittings"]) == (None, None)  # no splitting tried: empty, not 0


# -- sweeps and slices -------------------------------------------------------------------


def test_sweep_floors_per_k_equal_the_recount(session):
    rows = session.sweep([1, 2, 3], replicates=REPLICATES).rows()
    after = [r for r in rows if r["characteristic"] == "repr_after"]
    assert len(after) == 3 * 15
    for r in after:
        rc = Recount("repr_after", k=r["k"])
        assert r["jaccard"] == pytest.approx(rc.value(r["model_i"], r["model_j"]), abs=1e-12)
        group = GROUP.get(r["model_i"], (None,))[0]
        if group is None:
            assert (r["floor"], r["gap"], r["noise"]) == (None, None, None)
            continue
        assert r["floor"] == pytest.approx(rc.floor(group), abs=1e-12)
        assert r["gap"] == pytest.approx(r["jaccard"] - rc.floor(group), abs=1e-12)
        lo, hi = rc.gap_interval(r["model_i"], r["model_j"], group)
        assert (r["gap_lo"], r["gap_hi"]) == (pytest.approx(lo, abs=1e-12), pytest.approx(hi, abs=1e-12))
    assert all(r["floor"] is None for r in rows if r["characteristic"] == "repr_before")


def test_sliced_floors_are_the_floors_within_each_slice(session):
    rows = session.sliced("label", k=K, replicates=REPLICATES).rows()
    errors = [r for r in rows if r["characteristic"] == "errors"]
    assert {r["slice"] for r in errors} == {"label 0", "label 1", "label 2"}
    for r in errors:
        label = int(r["slice"].split()[1])

        def value(a, b, label=label):
            rows = {x: v for x, v in per_example("errors", a, b).items() if LABELS[IDS.index(x)] == label}
            return ratio(rows)

        assert r["jaccard"] == (
            None
            if value(r["model_i"], r["model_j"]) is None
            else pytest.approx(value(r["model_i"], r["model_j"]))
        )
        group = GROUP.get(r["model_i"], (None,))[0]
        if group is None:
            assert r["floor"] is None
            continue
        members = sorted(m for m in GROUP if GROUP[m][0] == group)
        inside = [value(*p) for p in itertools.combinations(members, 2)]
        floor = mean(inside)
        assert r["floor"] == (None if floor is None else pytest.approx(floor, abs=1e-12)), r
        if floor is not None and r["jaccard"] is not None:
            assert r["gap"] == pytest.approx(r["jaccard"] - floor, abs=1e-12)


# -- PIEs ---------------------------------------------------------------------------------


def modal(group: str, i: int) -> tuple[list[str], int, int]:
    """(modal answers, their votes, replicas that answered) of a group on example i."""
    votes: dict[str, int] = {}
    for m, (g, _) in GROUP.items():
        if g == group and i in ANSWERED[m]:
            votes[str(answer(m, i))] = votes.get(str(answer(m, i)), 0) + 1
    top = max(votes.values())
    return sorted(a for a, v in votes.items() if v == top), top, sum(votes.values())


def test_pie_examples_by_hand(session):
    got = {r["example_id"]: r for r in session.pie_examples().rows()}
    # r's modal answers against v's: x0 {1} vs {2}; x2 {0} (2 of 3) vs {2}; x7 {1} vs {2};
    # x13 {1} vs the tie {0, 2} (one vote each); x15 {0} vs {1} (v-s1 did not answer).
    # Not PIEs: x1 {2} vs the tie {1, 2}; x14 r's three-way tie {0, 1, 2} vs {0}.
    assert list(got) == ["x0", "x2", "x7", "x13", "x15"]
    r = got["x13"]
    assert (r["reference_answer"], r["reference_votes"], r["reference_answered"]) == ("1", 3, 3)
    assert (r["other_answer"], r["other_votes"], r["other_answered"]) == ("0 | 2", 1, 2)
    assert (r["gold"], r["text"]) == ("1", "text x13")
    r = got["x15"]
    assert (r["other_answer"], r["other_votes"], r["other_answered"]) == ("1", 1, 1)
    r = got["x2"]
    assert (r["reference_answer"], r["reference_votes"], r["reference_answered"]) == ("0", 2, 3)


def test_pie_examples_equal_the_recount(session):
    expected = []
    for i in range(N):
        ra, rv, rn = modal("r", i)
        oa, ov, on = modal("v", i)
        if not set(ra) & set(oa):
            expected.append(
                {
                    "dataset": "toy",
                    "reference_group": "r",
                    "other_group": "v",
                    "example_id": IDS[i],
                    "reference_answer": " | ".join(ra),
                    "reference_votes": rv,
                    "reference_answered": rn,
                    "other_answer": " | ".join(oa),
                    "other_votes": ov,
                    "other_answered": on,
                    "gold": str(LABELS[i]),
                    "text": f"text {IDS[i]}",
                }
            )
    assert session.pie_examples().rows() == expected
    # the reference named: v's group leads, the same examples the other way round
    flipped = session.pie_examples(reference="v-s1").rows()
    assert [(r["reference_group"], r["other_group"], r["example_id"]) for r in flipped] == [
        ("v", "r", e["example_id"]) for e in expected
    ]
    with pytest.raises(NotFound, match="no predictions or neighbours for dataset 'other'"):
        session.pie_examples(dataset="other")


# -- readings: beyond retraining noise ---------------------------------------------------


def test_a_clear_gap_reads_beyond_retraining_noise(store_dir):
    """The reference's replicas agree perfectly; the variant's disagree with them on every
    example: the gap's whole interval lies far from 0."""
    n = 40
    ids = [f"e{i}" for i in range(n)]
    store = Store(store_dir)
    with store.run("test", {}) as run:
        run.write(
            "examples",
            {"dataset": "d"},
            pa.table({"example_id": ids, "idx": list(range(n)), "label": [0] * n}),
        )
    wrong = {"r": set(range(0, 20)), "v-s0": set(range(20, 40)), "v-s1": set(range(20, 40))}
    for model, (group, seed) in {
        "r-s0": ("r", 0),
        "r-s1": ("r", 1),
        "r-s2": ("r", 2),
        "v-s0": ("v", 0),
        "v-s1": ("v", 1),
    }.items():
        errs = wrong.get(model, wrong["r"])
        with store.run(
            "test",
            {},
            model=model,
            replica={"group": group, "seed": seed},
            model_parameters=100 if group == "r" else 1,
        ) as run:
            table = {
                "example_id": ids,
                "pred_label": [int(i in errs) for i in range(n)],
                "correct": [i not in errs for i in range(n)],
            }
            run.write("predictions", {"model": model, "dataset": "d"}, pa.table(table))
    with ce.open(store) as s:
        rows = {(r["model_i"], r["model_j"]): r for r in s.table2(k=1).rows()}
        r = rows[("r-s0", "v-s0")]
        assert (r["errors"], r["errors_floor"], r["errors_gap"]) == (0.0, 1.0, -1.0)
        assert r["errors_gap_hi"] < 0 and r["errors_noise"] == "beyond retraining noise"
        # a disagreement: replicas change no answer, the variant every one: beyond too
        assert (r["changes"], r["changes_floor"]) == (1.0, 0.0)
        assert r["changes_gap_lo"] > 0 and r["changes_noise"] == "beyond retraining noise"
        assert rows[("r-s0", "r-s1")]["errors_noise"] == "replica pair (in the floor)"
        assert rows[("v-s0", "v-s1")]["changes_noise"] == "replica pair (in the floor)"
        [g] = [g for g in s.group_agreement(k=1).rows() if g["characteristic"] == "errors"]
        assert (g["between"], g["gap"], g["reading"]) == (0.0, -1.0, "beyond retraining noise")
        assert g["p_value"] == pytest.approx(0.1)  # 1 of the C(5, 3) = 10 splittings: the least possible


# -- no replicas: the paper's published error lists ---------------------------------------

LISTS = DATA_DIR / "paper" / "squad2-dev-errors"
PAPER = {  # file stem -> model, as the demo ingests them
    "bert_large": "bert-large",
    "bert_base": "bert-base",
    "bert_medium": "bert-medium",
    "bert_mini": "bert-mini",
    "tiny_bert": "bert-tiny",
    "distil_bert": "distilbert",
}


@pytest.fixture(scope="module")
def paper(tmp_path_factory):
    missing = [s for s in PAPER if not (LISTS / f"{s}.json").exists()]
    if missing or not (DATA_DIR / "squad2" / "dev-v2.0.json").exists():
        pytest.skip("needs the published error lists and squad2/dev-v2.0.json under CE_DATA_DIR")
    with ce.open(tmp_path_factory.mktemp("paper") / "store") as s:
        for stem, model in PAPER.items():
            s.ingest(LISTS / f"{stem}.json", model, "squad2-dev")
        yield s


@needs_data("paper/squad2-dev-errors/bert_large.json", "squad2/dev-v2.0.json")
def test_without_replicas_the_floor_columns_are_empty_with_a_note(paper):
    result = paper.table2()
    rows = result.rows()
    assert len(rows) == 15
    floored = [c for c in rows[0] if c.endswith(("_floor", "_gap", "_gap_lo", "_gap_hi", "_noise"))]
    assert len(floored) == 5 * 7
    assert all(r[c] is None for r in rows for c in floored)  # empty, never 0
    assert any("no replica groups in the store" in n and "empty, not zero" in n for n in result.notes)
    errors = {m: set(json.loads((LISTS / f"{s}.json").read_text())) for s, m in PAPER.items()}
    for r in rows:
        a, b = errors[r["model_i"]], errors[r["model_j"]]
        assert r["errors"] == pytest.approx(len(a & b) / len(a | b), abs=1e-12)
    got = {(r["model_i"], r["model_j"]): r["errors"] for r in rows}
    assert round(got[("bert-large", "bert-base")], 3) == 0.528


@needs_data("paper/squad2-dev-errors/bert_large.json", "squad2/dev-v2.0.json")
def test_without_replicas_floor_groups_and_pies_are_empty(paper):
    for result in (paper.noise_floor(), paper.group_agreement()):
        assert result.rows() == []
        assert any("no replica groups in the store" in n for n in result.notes)
    pies = paper.pie_examples()
    assert pies.rows() == [] and "reference_answer" in pies.columns
    assert paper.query("select count(*) from replicas").fetchall() == [(0,)]
    sliced = paper.sliced("answerable")  # the same columns as with replicas, empty, with the note
    rows = sliced.rows()
    assert rows and all(r[c] is None for r in rows for c in ("floor", "gap", "gap_lo", "gap_hi", "noise"))
    assert any("no replica groups in the store" in n for n in sliced.notes)


# -- the replica field is data from elsewhere: refused when hostile -----------------------


def record(replica) -> dict:
    return {
        "run_id": "20240101T000000-abcdef12",
        "command": "test",
        "status": "complete",
        "started": "2024-01-01T00:00:00+00:00",
        "parts": [],
        "model": "m",
        "replica": replica,
    }


def test_a_well_formed_replica_passes():
    assert parse_record(record({"group": "r", "seed": 0}), "x", strict=True)["replica"] == {
        "group": "r",
        "seed": 0,
    }
    assert parse_record(record({"group": "minilm-sst2", "seed": None}), "x", strict=True)
    assert parse_record(record(None), "x", strict=True)


@pytest.mark.parametrize(
    ("replica", "message"),
    [
        ({"group": "../x", "seed": 0}, "replica group '../x' is not a usable name"),
        ({"group": "a' or 1=1 --", "seed": 0}, "is not a usable name"),
        ({"group": "", "seed": 0}, "is not a usable name"),
        ({"group": "a/b", "seed": 0}, "is not a usable name"),
        ({"group": 3, "seed": 0}, "is not a usable name"),
        ({"group": "r", "seed": "0"}, "replica seed '0' is not a whole number"),
        ({"group": "r", "seed": 1.5}, "is not a whole number"),
        ({"group": "r", "seed": True}, "is not a whole number"),
        ({"group": "r", "seed": -1}, "is not a whole number"),
        ({"group": "r", "seed": 2**32}, "is not a whole number"),
        ({"group": "r", "seed": 0, "extra": 1}, "must hold exactly 'group' and 'seed'"),
        ({"group": "r"}, "must hold exactly 'group' and 'seed'"),
        ("r", "field 'replica' is a str"),
        ([["group", "r"]], "field 'replica' is a list"),
    ],
)
def test_a_hostile_replica_is_refused(replica, message):
    with pytest.raises(StoreError, match="it is not a ce run record") as caught:
        parse_record(record(replica), "bundle entry 'runs/x.json'", strict=True)
    assert message in str(caught.value)


def test_a_bundle_whose_run_names_a_hostile_replica_group_is_refused_before_writing(store_dir, tmp_path):
    from ce.store.bundle import export_bundle

    from .test_bundle import bundle_entries, reseal

    source = Store(store_dir)
    with source.run("test", {}, model="m-s0", replica={"group": "m", "seed": 0}) as run:
        run.write(
            "predictions",
            {"model": "m-s0", "dataset": "toy"},
            pa.table({"example_id": ["x1"], "correct": [True]}),
        )
    bundle = tmp_path / "lab.cebundle"
    export_bundle(source, bundle)
    entries = bundle_entries(bundle)
    [name] = [n for n in entries if n.startswith("runs/")]
    data = json.loads(entries[name])
    assert data["replica"] == {"group": "m", "seed": 0}
    for hostile, message in (
        ({"group": "../../etc", "seed": 0}, "replica group '../../etc' is not a usable name"),
        ({"group": "m' or 1=1 --", "seed": 0}, "is not a usable name"),
        ({"group": "m", "seed": "0; drop table runs"}, "is not a whole number"),
        ({"group": "m", "seed": 0, "path": "/etc/passwd"}, "must hold exactly 'group' and 'seed'"),
    ):
        entries[name] = json.dumps(data | {"replica": hostile}).encode()
        crafted = tmp_path / "crafted.cebundle"
        crafted.write_bytes(reseal(entries))
        target = tmp_path / "target"
        result = CliRunner().invoke(cli, ["bundle", "import", str(crafted), "--store", str(target)])
        assert result.exit_code == 1, result.output
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0], lines
        assert not target.exists()


def test_a_run_with_a_hostile_replica_is_refused_before_its_record_is_written(store_dir):
    """Store.run must refuse a replica field that readers refuse before anything lands:
    a committed record holding it would make every later read of the store fail."""
    store = Store(store_dir)
    table = pa.table({"example_id": ["x1"], "correct": [True]})
    with pytest.raises(StoreError, match="not a usable name"):
        with store.run("test", {}, model="m", replica={"group": "../x", "seed": 0}) as run:
            run.write("predictions", {"model": "m", "dataset": "toy"}, table)
    assert not store_dir.exists() or Store(store_dir).runs() == []  # the store still reads


# -- the CLI ------------------------------------------------------------------------------


def test_ce_compare_floor_as_csv(hand, floors):
    args = ["--k", str(K), "--bootstrap", str(REPLICATES), "--store", str(hand.root)]
    result = CliRunner().invoke(cli, ["compare", "--table", "floor", "--format", "csv", *args])
    assert result.exit_code == 0, result.output
    got = list(csv.DictReader(io.StringIO(result.stdout)))
    rows, _ = floors
    assert len(got) == len(rows)
    assert list(got[0])[0] == "characteristic"
    assert {"replica_group", "replicas", "pairs", "floor", "floor_lo", "floor_hi"} <= set(got[0])
    first = got[0]
    assert (first["characteristic"], first["replica_group"]) == ("errors", "r")
    assert float(first["floor"]) == pytest.approx(26 / 63)


def test_ce_compare_prints_the_floor_the_groups_and_the_pies(hand):
    args = ["--k", str(K), "--bootstrap", str(REPLICATES), "--store", str(hand.root)]
    result = CliRunner().invoke(cli, ["compare", *args])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "Noise floor" in out and "PIEs: 5 examples" in out and "Groups compared" in out
    assert "x13" in out
    for table in ("groups", "pie"):
        one = CliRunner().invoke(cli, ["compare", "--table", table, "--format", "csv", *args])
        assert one.exit_code == 0, one.output
    assert "x13" in one.stdout
