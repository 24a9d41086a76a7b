"""The table of measures: each agreement of the paper, defined once.

Table 2, the K sweep (Figure 1), the slices, the bootstrap intervals and the report are all
generated from :data:`MEASURES`. Every measure is a ratio of sums over examples,
``sum(numerator) / sum(denominator)`` over the rows of its per-example macro (a Jaccard of
two sets is sum(in both) / sum(in either); a mean Jaccard is sum(jaccard) / sum(1)), and
its summary macro gives the value and its companions per pair. Adding a measure is adding
a row here and its two macros under ``sql/macros/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

PAIR = ("dataset", "model_i", "model_j")
OOD_KEYS = ("ood_dataset", "ood_bank", "ood_stage")  # a distribution row's test set, bank, stage


@dataclass(frozen=True)
class Measure:
    name: str  # its Table 2 column, and its name in sweeps, slices and the report
    label: str  # how tables and figures name it for people
    examples: str  # the per-example macro call ($k, $tpr filled in): one row per pair and example
    example: str  # the column of ``examples`` naming the example
    numerator: str  # per-example SQL over ``examples``; the measure is sum(numerator) / sum(denominator)
    denominator: str
    summary: str  # the macro call giving the measure per pair, with its companions
    value: str  # the column of ``summary`` holding the measure
    companions: dict[str, str] = field(default_factory=dict)  # Table 2 column -> ``summary`` column
    where: str = "true"  # which rows of both macros are this measure's
    stage: bool = False  # its rows name the stage of the embeddings they compare
    variance: str | None = None  # the ``summary`` column of the per-example variance (sweeps)
    by_k: bool = False  # depends on the number of neighbours k (swept in Figure 1)
    ood: bool = False  # rows per test set, bank and stage; pairs are named by id_val

    @property
    def keys(self) -> tuple[str, ...]:
        """The columns naming one value of the measure in Table 2."""
        return PAIR + (OOD_KEYS if self.ood else ())

    def rows(self, k: int, tpr: float) -> str:
        """SQL of the per-example rows in the shape every generator reads: the Table 2 keys,
        ``bank`` and ``stage`` (null where the measure has none), the example's dataset
        and id (``x_dataset``, ``x_key``), ``num`` and ``den``."""
        source = _fill(self.examples, k, tpr)
        if self.ood:
            named = (
                "id_val as dataset, model_i, model_j, dataset as ood_dataset, bank as ood_bank,"
                " stage as ood_stage, bank, stage, dataset as x_dataset"
            )
        else:
            stage = "stage" if self.stage else "null::varchar"
            named = (
                f"dataset, model_i, model_j, null::varchar as bank, {stage} as stage, dataset as x_dataset"
            )
        return (
            f"select {named}, {self.example} as x_key, {self.numerator} as num,"
            f" {self.denominator} as den from {source} where {self.where}"
        )

    def summary_sql(self, k: int | str, tpr: float | str) -> str:
        return f"select * from {_fill(self.summary, k, tpr)} where {self.where}"


def _fill(call: str, k, tpr) -> str:
    return call.replace("$k", str(k)).replace("$tpr", str(tpr))


def _set_agreement(name: str, label: str, flag: str, macro: str, **more) -> Measure:
    """The Jaccard of two models' sets of examples (those ``flag``-ged: wrong, OOD): examples
    in both over examples in either, from the per-example macro ``macro_examples(...)`` and
    the summary ``macro(...)`` (``macro`` written with its arguments)."""
    call, args = macro.split("(", 1)
    return Measure(
        name=name,
        label=label,
        examples=f"{call}_examples({args}",
        example="example_id",
        numerator=f"({flag}_i and {flag}_j)::int",
        denominator=f"({flag}_i or {flag}_j)::int",
        summary=macro,
        value="jaccard",
        **more,
    )


def _representation(stage: str, when: str) -> Measure:
    """Agreement of the k-nearest-neighbour sets of the embeddings of one stage."""
    return Measure(
        name=f"repr_{when}",
        label=f"representation {when} fine-tuning",
        examples="knn_agreement_examples($k)",
        example="idx",
        numerator="jaccard",
        denominator="1",
        summary="knn_agreement($k)",
        value="mean_jaccard",
        companions={f"repr_{when}_var": "var_jaccard"},
        where=f"stage = '{stage}'",
        stage=True,
        variance="var_jaccard",
        by_k=True,
    )


ERROR_COMPANIONS = {
    "errors_chance": "expected_jaccard",
    "errors_kappa": "kappa",
    "errors_mcnemar_chi2": "mcnemar_chi2",
}
MEASURES: tuple[Measure, ...] = (
    _set_agreement("errors", "prediction errors", "wrong", "error_agreement()", companions=ERROR_COMPANIONS),
    _representation("pretrained", "before"),
    _representation("finetuned", "after"),
    _set_agreement(
        "distribution", "distribution", "ood", "ood_agreement($k, tpr := $tpr)", by_k=True, ood=True
    ),
)
BY_NAME = {m.name: m for m in MEASURES}


TABLE2_HELP = (
    "The paper's Table 2 for every model pair in the store, per dataset: every measure of"
    " ce.query.measures with its companions: errors (Jaccard, chance baseline, Cohen's kappa,"
    " McNemar's chi-squared), representations before and after fine-tuning at k neighbours"
    " (mean, variance), and OOD sets at k and tpr, one row per test set (ood_dataset), bank"
    " (ood_bank) and stage of the features (ood_stage)."
)


def table2_sql() -> str:
    """Table 2 with named parameters $k and $tpr: per dataset and model pair, every measure
    and its companions; a distribution value per test set, bank and stage."""
    ctes, pairs, columns, joins, order = [], [], [], [], []
    for n, m in enumerate(MEASURES):
        alias = f"m{n}"
        ctes.append(f"{alias} as ({m.summary_sql('$k', '$tpr')})")
        dataset = "id_val" if m.ood else "dataset"
        pairs.append(f"select {dataset} as dataset, model_i, model_j from {alias}")
        on = " and ".join(
            [f"{alias}.{dataset} = p.dataset", f"{alias}.model_i = p.model_i", f"{alias}.model_j = p.model_j"]
        )
        joins.append(f"left join {alias} on {on}")
        ood = dict(zip(OOD_KEYS, ("dataset", "bank", "stage"), strict=True)) if m.ood else {}
        named = {**ood, m.name: m.value, **m.companions}
        columns += [f"{alias}.{source} as {column}" for column, source in named.items()]
        order += [f"{alias}.{source}" for source in ood.values()]
    return (
        f"with {', '.join(ctes)}, pairs as ({' union '.join(pairs)})"
        f" select p.dataset, p.model_i, p.model_j, {', '.join(columns)}"
        f" from pairs p {' '.join(joins)}"
        f" order by p.dataset, p.model_i, p.model_j{''.join(', ' + o for o in order)}"
    )


def table2_columns() -> list[str]:
    """Table 2's value columns in order (those a bootstrap interval can follow)."""
    out = []
    for m in MEASURES:
        out += [*(OOD_KEYS if m.ood else ()), m.name, *m.companions]
    return out


def sweep_sql(ks: list[int]) -> str:
    """Every k-dependent measure against k (the data of Figure 1), long format, $tpr named."""
    parts = []
    for m in MEASURES:
        if not m.by_k:
            continue
        bank = "bank" if m.ood else "null::varchar as bank"
        variance = m.variance or "null::double"
        dataset = "dataset"
        for k in sorted(set(ks)):
            parts.append(
                f"select '{m.name}' as characteristic, {dataset}, {bank}, stage, model_i, model_j,"
                f" {k} as k, {m.value} as jaccard, {variance} as variance"
                f" from {_fill(m.summary, k, '$tpr')} where {m.where}"
            )
    order = "characteristic, dataset, bank, stage, model_i, model_j, k"
    return " union all ".join(parts) + f" order by {order}"


def sliced_sql(slice_expression: str, k: int, tpr: float) -> str:
    """Every measure per slice of the examples (long format): a slice's value is the same
    ratio of sums over the examples in it. ``slice_expression`` reads the examples as ``x``
    with ``w``, their length in words."""
    words = "len(string_split(trim(coalesce(text, question || ' ' || context)), ' '))"
    examples = f"select *, {words} as w from examples"
    selects = []
    for m in MEASURES:
        key = m.example
        selects.append(
            f"select '{m.name}' as characteristic, e.x_dataset as dataset, e.bank, e.stage,"
            f" {slice_expression} as slice, e.model_i, e.model_j, count(*) as n,"
            f" sum(e.num) / nullif(sum(e.den), 0) as jaccard"
            f" from ({m.rows(k, tpr)}) e join ({examples}) x"
            f" on x.dataset = e.x_dataset and x.{key} = e.x_key"
            f" group by all"
        )
    order = "characteristic, dataset, bank, stage, model_i, model_j, slice"
    return " union all ".join(selects) + f" order by {order}"
