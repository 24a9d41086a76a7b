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

from ce.store.errors import CeError

PAIR = ("dataset", "model_i", "model_j")
OOD_KEYS = ("ood_dataset", "ood_bank", "ood_stage")  # a distribution row's test set, bank, stage
MIN_SUPPORT = 20  # a value resting on fewer items (sets' union, or examples) is flagged "few"


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
    n: str = "n"  # the ``summary`` column counting the examples compared
    sizes: tuple[str, str] | None = None  # the ``summary`` columns of the two sets' sizes
    support: str = "n"  # the ``summary`` count the value rests on: flagged below MIN_SUPPORT
    mirror: str | None = None  # the measure it becomes when the pair's models swap (flips_neg, flips_pos)
    swapped: tuple[tuple[str, str], ...] = ()  # companion columns that swap with the pair
    group: str = "agreement"  # the characteristic it belongs to (answers: the changed-answer measures)
    optional: str | None = None  # computed only when asked for by this name (Table 2 --with NAME)
    kernel: str | None = None  # its summary is also evaluated by this kernel over all pairs at once

    @property
    def per_example(self) -> bool:
        """Whether it is a ratio of sums over per-example rows (intervals, slices, floors)."""
        return bool(self.examples)

    @property
    def keys(self) -> tuple[str, ...]:
        """The columns naming one value of the measure in Table 2."""
        return PAIR + (OOD_KEYS if self.ood else ())

    @property
    def source(self) -> tuple:
        """What the per-example rows of this measure share with others read in one pass."""
        return (self.examples, self.example, self.where, self.ood, self.stage)

    def summary_sql(self, k: int | str, tpr: float | str, kernels: dict[str, str] | None = None) -> str:
        """Its summary's rows: the macro call, or where ``kernels`` (kernel name -> SQL
        source of the same columns, from compare.evaluated_kernels) holds its kernel, that
        source. A measure with no macro (CKA) has rows only from its kernel."""
        source = (kernels or {}).get(self.kernel or "", self.summary)
        if not source:
            raise ValueError(f"{self.name} comes from the {self.kernel} kernel: pass its source in kernels")
        return f"select * from {_fill(source, k, tpr)} where {self.where}"


def selected(extra: tuple[str, ...] | str = ()) -> tuple[Measure, ...]:
    """The measures computed by default, with the optional ones named in ``extra`` (a name
    or several)."""
    extra = (extra,) if isinstance(extra, str) else tuple(extra)
    unknown = sorted(set(extra) - set(OPTIONAL))
    if unknown:
        raise CeError(
            f"no optional measure named {', '.join(unknown)}; --with takes: {', '.join(sorted(OPTIONAL))}"
        )
    return tuple(m for m in MEASURES if m.optional is None or m.optional in extra)


def shared_rows(group: tuple[Measure, ...], k: int, tpr: float) -> str:
    """SQL of the per-example rows of measures with one :attr:`Measure.source`, read once, in
    the shape every generator reads: the Table 2 keys, ``bank`` and ``stage`` (null where
    the measure has none), the example's dataset and id (``x_dataset``, ``x_key``), and the
    measures' numerators and denominators as ``num_0, den_0, num_1, ...``."""
    m = group[0]
    source = _fill(m.examples, k, tpr)
    if m.ood:
        named = (
            "id_val as dataset, model_i, model_j, dataset as ood_dataset, bank as ood_bank,"
            " stage as ood_stage, bank, stage, dataset as x_dataset"
        )
    else:
        stage = "stage" if m.stage else "null::varchar"
        named = f"dataset, model_i, model_j, null::varchar as bank, {stage} as stage, dataset as x_dataset"
    sums = ", ".join(f"{g.numerator} as num_{n}, {g.denominator} as den_{n}" for n, g in enumerate(group))
    return f"select {named}, {m.example} as x_key, {sums} from {source} where {m.where}"


def by_source(measures: tuple[Measure, ...]) -> list[tuple[Measure, ...]]:
    """The per-example ones of ``measures`` grouped by what their rows read (one pass per group)."""
    groups: dict[tuple, list[Measure]] = {}
    for m in measures:
        if not m.per_example:
            continue
        groups.setdefault(m.source, []).append(m)
    return [tuple(g) for g in groups.values()]


def _fill(call: str, k, tpr) -> str:
    return call.replace("$k", str(k)).replace("$tpr", str(tpr))


def _set_agreement(name: str, label: str, flag: str, macro: str, sizes: tuple[str, str], **more) -> Measure:
    """The Jaccard of two models' sets of examples (those ``flag``-ged: wrong, OOD): examples
    in both over examples in either, from the per-example macro ``macro_examples(...)`` and
    the summary ``macro(...)`` (``macro`` written with its arguments; ``sizes`` its columns
    of the two sets' sizes)."""
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
        sizes=sizes,
        support="either",
        **more,
    )


def _representation(stage: str, when: str) -> Measure:
    """Agreement of the k-nearest-neighbour sets of the embeddings of one stage."""
    return Measure(
        name=f"repr_{when}",
        label=f"representation {when} fine-tuning",
        examples="knn_agreement_examples($k)",
        example="example_id",
        numerator="jaccard",
        denominator="1",
        summary="knn_agreement($k)",
        value="mean_jaccard",
        companions={f"repr_{when}_chance": "chance_jaccard", f"repr_{when}_var": "var_jaccard"},
        where=f"stage = '{stage}'",
        stage=True,
        variance="var_jaccard",
        by_k=True,
        kernel="knn",
    )


def _ranks(stage: str, when: str) -> Measure:
    """Agreement of the ranks of the k nearest neighbours of the embeddings of one stage:
    Spearman's rho over the union of the two lists (knn_agreement_examples)."""
    return Measure(
        name=f"ranks_{when}",
        label=f"neighbour ranks {when} fine-tuning",
        examples="knn_agreement_examples($k)",
        example="example_id",
        numerator="coalesce(rank_rho, 0)",
        denominator="(rank_rho is not null)::int",
        summary="knn_agreement($k)",
        value="mean_rank_rho",
        companions={f"ranks_{when}_chance": "chance_rank_rho", f"ranks_{when}_var": "var_rank_rho"},
        where=f"stage = '{stage}'",
        stage=True,
        variance="var_rank_rho",
        by_k=True,
        n="rank_n",
        support="rank_n",
        group="similarity",
        optional="ranks",
        kernel="knn",
    )


def _cka(stage: str, when: str) -> Measure:
    """Linear CKA of the two models' embeddings of one stage (ce.query.cka): a property of
    the whole set of examples, with no per-example rows (no intervals, slices or floors)."""
    return Measure(
        name=f"cka_{when}",
        label=f"linear CKA {when} fine-tuning",
        examples="",
        example="",
        numerator="",
        denominator="",
        summary="",
        value="cka",
        companions={f"cka_{when}_unbiased": "cka_unbiased"},
        where=f"stage = '{stage}'",
        stage=True,
        group="similarity",
        optional="cka",
        kernel="cka",
    )


ERROR_COMPANIONS = {
    "errors_chance": "expected_jaccard",
    "errors_kappa": "kappa",
    "errors_mcnemar_chi2": "mcnemar_chi2",
}
MEASURES: tuple[Measure, ...] = (
    _set_agreement(
        "errors",
        "prediction errors",
        "wrong",
        "error_agreement()",
        ("errors_i", "errors_j"),
        companions=ERROR_COMPANIONS,
    ),
    _representation("pretrained", "before"),
    _representation("finetuned", "after"),
    _set_agreement(
        "distribution",
        "distribution",
        "ood",
        "ood_agreement($k, tpr := $tpr)",
        ("ood_i", "ood_j"),
        companions={"distribution_chance": "expected_jaccard"},
        by_k=True,
        ood=True,
    ),
)


def _answers(name: str, label: str, value: str, numerator: str, denominator: str, n: str, **more) -> Measure:
    """A measure of changed answers (answer_agreement_examples / answer_agreement)."""
    return Measure(
        name=name,
        label=label,
        examples="answer_agreement_examples()",
        example="example_id",
        numerator=numerator,
        denominator=denominator,
        summary="answer_agreement()",
        value=value,
        n=n,
        support=n,
        group="answers",
        **more,
    )


SCORED = "scored::int"
COMPARED = "compared::int"
ANSWER_MEASURES: tuple[Measure, ...] = (
    _answers(
        "flips",
        "flips (correct <-> wrong)",
        "flips",
        "coalesce(c_to_w or w_to_c, false)::int",
        SCORED,
        "scored",
        companions={"flips_c_to_w": "c_to_w", "flips_w_to_c": "w_to_c", "prompts_differ": "prompts_differ"},
        swapped=(("flips_c_to_w", "flips_w_to_c"),),
    ),
    _answers(
        "flips_neg",
        "negative flips (correct -> wrong)",
        "flips_ij",
        "coalesce(c_to_w, false)::int",
        SCORED,
        "scored",
        mirror="flips_pos",
    ),
    _answers(
        "flips_pos",
        "positive flips (wrong -> correct)",
        "flips_ji",
        "coalesce(w_to_c, false)::int",
        SCORED,
        "scored",
        mirror="flips_neg",
    ),
    _answers("changes", "changed answers", "changes", "changed::int", "1", "n"),
    _answers("answers_agree", "same answer", "agreement", "(not changed)::int", "1", "n"),
    _answers("top1", "top-1 agreement of the distributions", "top1", "top1::int", COMPARED, "compared"),
    _answers("kl", "KL(reference || other)", "kl_ij", "kl_ij", COMPARED, "compared", mirror="kl_rev"),
    _answers("kl_rev", "KL(other || reference)", "kl_ji", "kl_ji", COMPARED, "compared", mirror="kl"),
    _answers("js", "Jensen-Shannon divergence", "js", "js", COMPARED, "compared"),
    _answers(
        "brier_ref",
        "Brier score, reference",
        "brier_i",
        "brier_i",
        "(brier_i is not null)::int",
        "brier_n",
        mirror="brier_other",
        companions={"ece_ref": "ece_i", "ece_other": "ece_j", "mce_ref": "mce_i", "mce_other": "mce_j"},
        swapped=(("ece_ref", "ece_other"), ("mce_ref", "mce_other")),
    ),
    _answers(
        "brier_other",
        "Brier score, other",
        "brier_j",
        "brier_j",
        "(brier_j is not null)::int",
        "brier_n",
        mirror="brier_ref",
    ),
)
SIMILARITY_MEASURES: tuple[Measure, ...] = (
    _ranks("pretrained", "before"),
    _ranks("finetuned", "after"),
    _cka("pretrained", "before"),
    _cka("finetuned", "after"),
)
MEASURES = MEASURES + ANSWER_MEASURES + SIMILARITY_MEASURES
BY_NAME = {m.name: m for m in MEASURES}
OPTIONAL = {  # the optional measures by the name that asks for them, and what it adds
    "ranks": "Spearman's rho of the neighbour ranks over the union of the two k-lists",
    "cka": "linear CKA of the embeddings (biased and unbiased)",
}


TABLE2_HELP = (
    "The paper's Table 2 for every model pair in the store, per dataset: every measure of"
    " ce.query.measures with its companions: errors (Jaccard, chance baseline, Cohen's kappa,"
    " McNemar's chi-squared), representations before and after fine-tuning at k neighbours"
    " (mean, variance), and OOD sets at k and tpr, one row per test set (ood_dataset), bank"
    " (ood_bank) and stage of the features (ood_stage)."
)


def oriented(
    sql: str, first: str, then: str, swapped: tuple[tuple[str, str], ...] = (), hidden: tuple[str, ...] = ()
) -> str:
    """The rows of ``sql`` (pairs in name order, model_i < model_j) with the better-ranked
    model of each pair first (``model_rank($reference)``: the reference, then the largest),
    and the ``swapped`` column pairs (its set sizes) swapped along; ordered by ``first``, the
    pair's ranks, then ``then``; the ``hidden`` columns (sort keys) left out."""
    hide = ", ".join(("_swap", "_rank_first", "_rank_second", *hidden))
    columns = (("model_i", "model_j"), *swapped)
    replace = ", ".join(
        f"if(_swap, {new}, {old}) as {old}"
        for a, b in columns
        for old, new in ((a, b), (b, a))
        if old not in hidden
    )
    return (
        f"with t as ({sql}), r as (select * from model_rank(reference := $reference)),"
        " o as (select t.*, coalesce(ri.rank, 1e9) > coalesce(rj.rank, 1e9) as _swap,"
        " least(coalesce(ri.rank, 1e9), coalesce(rj.rank, 1e9)) as _rank_first,"
        " greatest(coalesce(ri.rank, 1e9), coalesce(rj.rank, 1e9)) as _rank_second"
        " from t left join r ri on ri.model = t.model_i left join r rj on rj.model = t.model_j)"
        f" select * exclude ({hide}) replace ({replace}) from o"
        f" order by {first}, _rank_first, _rank_second, model_i, model_j{', ' + then if then else ''}"
    )


def table2_sql(chosen: tuple[Measure, ...] | None = None, kernels: dict[str, str] | None = None) -> str:
    """Table 2 with named parameters $k, $tpr and $reference: per dataset and model pair
    (the better-ranked model first), every measure with the examples it compared (``_n``),
    the two sets' sizes (``_i``, ``_j``), whether it rests on fewer than MIN_SUPPORT items
    (``_few``) and its companions; a distribution value per test set, bank and stage; and
    the differences other - reference of the calibration scores (``DIFFERENCES``).
    ``chosen``: the measures (default: those computed by default); ``kernels``: see
    :meth:`Measure.summary_sql`."""
    ctes, pairs, columns, joins, order, swapped = [], [], [], [], [], []
    aliases: dict[str, str] = {}  # summary SQL -> its CTE, computed once for all its measures
    for m in chosen or selected():
        summary = m.summary_sql("$k", "$tpr", kernels)
        alias = aliases.get(summary)
        if alias is None:
            alias = aliases[summary] = f"m{len(aliases)}"
            ctes.append(f"{alias} as ({summary})")
            dataset = "id_val" if m.ood else "dataset"
            pairs.append(f"select {dataset} as dataset, model_i, model_j from {alias}")
            on = " and ".join(
                [
                    f"{alias}.{dataset} = p.dataset",
                    f"{alias}.model_i = p.model_i",
                    f"{alias}.model_j = p.model_j",
                ]
            )
            joins.append(f"left join {alias} on {on}")
        ood = dict(zip(OOD_KEYS, ("dataset", "bank", "stage"), strict=True)) if m.ood else {}
        sizes = dict(zip(size_columns(m), m.sizes or (), strict=False))
        named = {**ood, m.name: m.value, f"{m.name}_n": m.n, **sizes}
        columns += [f"{alias}.{source} as {column}" for column, source in named.items()]
        columns.append(f"{alias}.{m.support} < {MIN_SUPPORT} as {m.name}_few")
        columns += [f"{alias}.{source} as {column}" for column, source in m.companions.items()]
        order += list(ood)
        if sizes:
            swapped.append(tuple(sizes))
        swapped += list(m.swapped)
        if m.mirror and m.name < m.mirror:
            swapped += [
                (m.name, m.mirror),
                (f"{m.name}_n", f"{m.mirror}_n"),
                (f"{m.name}_few", f"{m.mirror}_few"),
            ]
    table = (
        f"with {', '.join(ctes)}, pairs as ({' union '.join(pairs)})"
        f" select p.dataset, p.model_i, p.model_j, {', '.join(columns)}"
        f" from pairs p {' '.join(joins)}"
    )
    differences = ", ".join(f"{b} - {a} as {name}" for name, (a, b) in DIFFERENCES.items())
    return f"select *, {differences} from ({oriented(table, 'dataset', ', '.join(order), tuple(swapped))})"


DIFFERENCES = {  # Table 2 column -> (reference's, other's): other - reference, after orienting
    "brier_diff": ("brier_ref", "brier_other"),
    "ece_diff": ("ece_ref", "ece_other"),
    "mce_diff": ("mce_ref", "mce_other"),
}


def size_columns(m: Measure) -> tuple[str, ...]:
    """Table 2's columns of the sizes of a set measure's two sets ('errors_i', 'errors_j')."""
    return (f"{m.name}_i", f"{m.name}_j") if m.sizes else ()


def table2_columns(chosen: tuple[Measure, ...] | None = None) -> list[str]:
    """Table 2's columns after the pair, in order."""
    out = []
    for m in chosen or selected():
        out += [*(OOD_KEYS if m.ood else ()), m.name, f"{m.name}_n", *size_columns(m), f"{m.name}_few"]
        out += list(m.companions)
    return out + list(DIFFERENCES)


def sweep_sql(
    ks: list[int], chosen: tuple[Measure, ...] | None = None, kernels: dict[str, str] | None = None
) -> str:
    """Every k-dependent measure against k (the data of Figure 1), long format, $tpr named;
    ``chosen`` and ``kernels`` as for :func:`table2_sql`."""
    parts = []
    for m in chosen or selected():
        if not m.by_k:
            continue
        bank = "bank" if m.ood else "null::varchar as bank"
        variance = m.variance or "null::double"
        dataset = "dataset"
        for k in sorted(set(ks)):
            parts.append(
                f"select '{m.name}' as characteristic, {dataset}, {bank}, stage, model_i, model_j,"
                f" {k} as k, {m.value} as jaccard, {variance} as variance"
                f" from ({m.summary_sql(k, '$tpr', kernels)})"
            )
    return oriented(" union all ".join(parts), "characteristic, dataset, bank, stage", "k")


def sliced_rows(
    group: tuple[Measure, ...], k: int, tpr: float, slice_expression: str, order_expression: str = "0"
) -> str:
    """:func:`shared_rows` with each example's ``slice`` (and ``slice_order``): the two
    expressions read the examples as ``x`` with ``w``, their length in words."""
    words = "len(string_split(trim(coalesce(text, question || ' ' || context)), ' '))"
    examples = f"select *, {words} as w from examples"
    return (
        f"select e.*, {slice_expression} as slice, {order_expression} as slice_order"
        f" from ({shared_rows(group, k, tpr)}) e join ({examples}) x"
        f" on x.dataset = e.x_dataset and x.{group[0].example} = e.x_key"
    )


def sliced_sql(slice_expression: str, order_expression: str, k: int, tpr: float) -> str:
    """Every measure per slice of the examples (long format): a slice's value is the same
    ratio of sums over the examples in it. ``slice_expression`` (the slice's label) and
    ``order_expression`` (how slices sort) read the examples as ``x`` with ``w``, their
    length in words."""
    ctes, selects = [], []
    for n, group in enumerate(by_source(selected())):
        ctes.append(f"s{n} as ({sliced_rows(group, k, tpr, slice_expression, order_expression)})")
        for i, m in enumerate(group):
            selects.append(
                f"select '{m.name}' as characteristic, '{m.mirror or m.name}' as _mirror,"
                f" x_dataset as dataset, bank, stage, slice, min(slice_order) as slice_order,"
                f" model_i, model_j, count(*) as n, sum(num_{i}) / nullif(sum(den_{i}), 0) as jaccard"
                f" from s{n} group by all"
            )
    return oriented(
        f"with {', '.join(ctes)} {' union all '.join(selects)}",
        "characteristic, dataset, bank, stage",
        "slice_order, slice",
        swapped=(("characteristic", "_mirror"),),
        hidden=("slice_order", "_mirror"),
    )
