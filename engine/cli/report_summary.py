"""The opening summary of ``ce report``: per dataset and characteristic, the reference
against each other model, each agreement with its interval, chance level, support and a
verdict in words; per attack, accuracy under attack and success rate against the
reference's; and one sentence per dataset."""

from __future__ import annotations

from ce.query.measures import MEASURES, MIN_SUPPORT, Measure

from .report_html import DASH, Table, count, human, interval, missing, num, pct
from .report_svg import CLOSE, esc

AGREEMENT = tuple(m for m in MEASURES if m.group == "agreement")  # the Jaccards: verdicts, heatmaps

NOISE_FLOOR = "noise floor: not measured (no retrained replicas in the store)"
VERDICTS = {  # key -> (words, css class, short words for any pair, a count of them in a sentence)
    "few": ("too few items to say", "v-few", "too few items", "rest on too few items"),
    "chance": (
        "no more alike than chance",
        "v-chance",
        "no more alike than chance",
        "are no more alike than chance",
    ),
    "close": ("close to the reference", "v-close", "close", "are close to the reference"),
    "differs": (
        "differs from the reference (more than chance, far from identical)",
        "v-differs",
        "differs: more than chance, far from identical",
        "differ from it (more than chance, far from identical)",
    ),
    "spans": (
        f"undecided: the interval straddles {CLOSE:g}",
        "v-spans",
        f"undecided: straddles {CLOSE:g}",
        f"are undecided (the interval straddles {CLOSE:g})",
    ),
}
SINGULAR = {"rest on": "rests on", "are ": "is ", "differ ": "differs "}


def rule_html() -> str:
    """The verdict rule, as the page states it, in the order it is applied."""
    items = [
        f"value resting on fewer than {MIN_SUPPORT} items (examples in either set, or examples"
        f" compared): <b>{VERDICTS['few'][0]}</b>;",
        f"interval overlapping the chance level (or below it): <b>{VERDICTS['chance'][0]}</b>;",
        f"interval entirely at or above {CLOSE:g}: <b>{VERDICTS['close'][0]}</b>;",
        f"interval above the chance level but below {CLOSE:g}: <b>{VERDICTS['differs'][0]}</b>;",
        f"interval above chance that straddles {CLOSE:g}: <b>{VERDICTS['spans'][0]}</b>.",
    ]
    return "<ol class='rule'>" + "".join(f"<li>{i}</li>" for i in items) + "</ol>"


def verdict(row: dict, m: Measure) -> str:
    """The verdict key of measure ``m`` in a Table 2 row (with intervals, else the value)."""
    if row.get(f"{m.name}_few"):
        return "few"
    value = row[m.name]
    lo, hi = row.get(f"{m.name}_lo"), row.get(f"{m.name}_hi")
    lo, hi = (value, value) if missing(lo) or missing(hi) else (lo, hi)
    chance = row.get(f"{m.name}_chance")
    if not missing(chance) and lo <= chance:
        return "chance"
    if lo >= CLOSE:
        return "close"
    if hi < CLOSE:
        return "differs"
    return "spans"


def verdict_html(key: str, short: bool = False) -> str:
    """The verdict in words: as said of the reference's pairs, or (``short``) of any pair."""
    words, css, brief, _ = VERDICTS[key]
    return f"<span class='verdict {css}{' short' if short else ''}'>{esc(brief if short else words)}</span>"


def reason(reference: str, named: str | None, models: dict[str, dict], stored: str | None = None) -> str:
    """Why ``reference`` leads: named (with --reference, or the store's ce reference), the
    most parameters, or only its name."""
    if reference == named:
        return "named with --reference"
    if named is None and reference == stored:
        return "the store's reference (ce reference)"
    parameters = (models.get(reference) or {}).get("parameters")
    if not missing(parameters):
        return f"the most parameters, {human(parameters)}"
    return "first by name: the store records no parameter counts; name one with ce reference MODEL"


def where(row: dict, m: Measure) -> str:
    """The characteristic of a row, named with its test set, bank and stage if any."""
    if m.ood:
        return f"{m.label}: {row['ood_dataset']} against bank {row['ood_bank']} ({row['ood_stage']})"
    return m.label


def references(rows2: list[dict], rows3: list[dict], ranks: dict[str, int]) -> dict[str, str]:
    """The reference of every dataset of Table 2 and Table 3: its best-ranked model."""
    seen: dict[str, set[str]] = {}
    for r in rows2:
        seen.setdefault(r["dataset"], set()).update((r["model_i"], r["model_j"]))
    for r in rows3:
        seen.setdefault(r["dataset"], set()).add(r["model"])
    return {d: min(ms, key=lambda m: (ranks.get(m, 1e9), m)) for d, ms in seen.items()}


def dataset_summary(dataset: str, reference: str, why: str, rows: list[dict], k: int) -> str:
    """The reference against each other model on one dataset: a table and a sentence."""
    floored = any(not missing(r.get(f"{m.name}_floor")) for r in rows for m in AGREEMENT)
    noise = ["floor", "gap (95%)", "retraining noise"] if floored else []
    table = Table(
        [
            "characteristic",
            "model",
            "Jaccard",
            "95% interval",
            "chance",
            *noise,
            "n",
            "sets (reference / model)",
            "verdict",
        ],
        ["Jaccard", "95% interval", "chance", "floor", "gap (95%)", "n", "sets (reference / model)"],
    )
    found: dict[str, dict[str, list[str]]] = {}  # model -> verdict -> characteristics
    readings: dict[str, int] = {}  # reading of each gap -> how many
    for m in AGREEMENT:
        for r in rows:
            if r["model_i"] != reference or missing(r[m.name]):
                continue
            noted = noise_cells(r, m.name) if floored else []
            if floored and not missing(r.get(f"{m.name}_noise")):
                readings[r[f"{m.name}_noise"]] = readings.get(r[f"{m.name}_noise"], 0) + 1
            key = verdict(r, m)
            found.setdefault(r["model_j"], {}).setdefault(key, []).append(where(r, m))
            sets = (
                f"{count(r[f'{m.name}_i'])} / {count(r[f'{m.name}_j'])}"
                if m.sizes
                else f"k = {k} neighbours each"
            )
            few = "*" if r.get(f"{m.name}_few") else ""
            table.add(
                [
                    esc(where(r, m)),
                    esc(r["model_j"]),
                    num(r[m.name]) + few,
                    interval(r.get(f"{m.name}_lo"), r.get(f"{m.name}_hi")),
                    num(r.get(f"{m.name}_chance")),
                    *noted,
                    count(r.get(f"{m.name}_n")),
                    sets,
                    verdict_html(key),
                ],
                "few" if few else "",
            )
    changed = changed_answers(reference, rows)
    if not found and not changed:
        return ""
    unfloored = "" if floored else f" No noise floor: {reference} has no retrained replicas here."
    said = (
        f"{table.html()}<p class='overall'>{overall(dataset, reference, found)}"
        f"{against_floor(readings)}{esc(unfloored)}</p>"
        if found
        else ""
    )
    return (
        f"<h3>{esc(dataset)}: reference <b>{esc(reference)}</b> <span class='why'>({esc(why)})</span></h3>"
        f"{said}{changed}"
    )


def noise_cells(r: dict, name: str) -> list[str]:
    """A row's floor, gap with its interval, and reading, as summary cells."""
    if missing(r.get(f"{name}_floor")):
        return [DASH, DASH, "<span class='why'>no replicas of the reference</span>"]
    gap = r.get(f"{name}_gap")
    lo, hi = r.get(f"{name}_gap_lo"), r.get(f"{name}_gap_hi")
    span = "" if missing(lo) or missing(hi) else f" ({lo:+.3f} to {hi:+.3f})"
    shown = DASH if missing(gap) else f"{gap:+.3f}{span}"
    return [num(r[f"{name}_floor"]), shown, esc(r.get(f"{name}_noise") or DASH)]


def against_floor(readings: dict[str, int]) -> str:
    """A sentence on the gaps to the reference's noise floor: how many lie within it."""
    total = sum(n for reading, n in readings.items() if not reading.startswith("replica pair"))
    if not total:
        return ""
    beyond = readings.get("beyond retraining noise", 0)
    within = readings.get("within retraining noise", 0)
    closer = readings.get("closer than its replicas", 0)
    plural = "" if beyond == 1 else "s"
    return (
        f" Against the reference's retraining noise floor: {beyond} agreement{plural} beyond it"
        f" (further from the reference than a retrained reference),"
        f" {within} within it, {closer} closer than its own replicas."
    )


def has_answers(row: dict) -> bool:
    """Whether a Table 2 row compares the two models' answers (flips or changed answers)."""
    return not missing(row.get("flips")) or not missing(row.get("changes"))


def answer_pairs(rows: list[dict]) -> list[dict]:
    """The Table 2 rows that compare answers, one per dataset and pair (a pair has a row per
    OOD test set, bank and stage too; its answers repeat on each), in Table 2's order."""
    pairs: dict[tuple, dict] = {}
    for r in rows:
        if has_answers(r):
            pairs.setdefault((r["dataset"], r["model_i"], r["model_j"]), r)
    return list(pairs.values())


def changed_answers(reference: str, rows: list[dict]) -> str:
    """The reference's pairs' changed answers in words (Dutta et al.): 'm changes 23% of its
    answers, 9% flips (5% correct → wrong, 4% wrong → correct)'; empty if none."""
    said = []
    for r in answer_pairs(rows):
        if r["model_i"] != reference:
            continue
        words = f"<b>{esc(r['model_j'])}</b> changes {pct(r['changes'])} of its answers"
        if missing(r.get("flips")):
            words += " (no flips: which answers are correct is unknown)"
        else:
            words += (
                f", {pct(r['flips'])} flips ({pct(r.get('flips_neg'))} correct → wrong,"
                f" {pct(r.get('flips_pos'))} wrong → correct)"
            )
            if r.get("flips_few"):
                words += f", on only {count(r.get('flips_n'))} examples"
        if r.get("prompts_differ"):
            words += f", though its prompts differ on {count(r['prompts_differ'])} document(s)"
        said.append(words)
    if not said:
        return ""
    return (
        f"<p class='overall'>Changed answers against <b>{esc(reference)}</b>: {'; '.join(said)}."
        " <a href='#answers'>More under Changed answers</a>.</p>"
    )


def _join(items: list[str]) -> str:
    items = [esc(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def overall(dataset: str, reference: str, found: dict[str, dict[str, list[str]]]) -> str:
    """One sentence on a dataset: which models stay close to the reference, which do not."""
    totals = {key: sum(len(v.get(key, [])) for v in found.values()) for key in VERDICTS}
    decided = sum(totals.values()) - totals["few"]
    head = f"On <b>{esc(dataset)}</b>, against <b>{esc(reference)}</b>: "
    if not decided:
        return head + "every comparison rests on too few items to say anything yet."
    miniature = [m for m, v in found.items() if set(v) - {"few"} == {"close"}]
    partly = [m for m, v in found.items() if "close" in v and m not in miniature]
    unknown = [m for m, v in found.items() if set(v) == {"few"}]
    rest = [m for m in found if m not in miniature + partly + unknown]
    parts = []
    if miniature:
        verb = "stays" if len(miniature) == 1 else "stay"
        parts.append(f"{_join(miniature)} {verb} close to it on every characteristic measured")
    for m in partly:
        parts.append(f"{esc(m)} is close on {_join(found[m]['close'])} only")
    if rest:
        verb = "is" if len(rest) == 1 else "are"
        parts.append(f"{_join(rest)} {verb} close on none")
    if unknown:
        parts.append(f"{_join(unknown)}: too few items to say")
    counts = [
        _counted(totals[key], VERDICTS[key][3])
        for key in ("close", "differs", "spans", "chance", "few")
        if totals[key]
    ]
    n = sum(totals.values())
    lead = "" if miniature else "no model is a miniature of the reference: "
    return (
        head
        + f"{lead}{'; '.join(parts)}. Of the {n} comparison{'s' if n != 1 else ''}, "
        + ", ".join(esc(c) for c in counts)
        + "."
    )


def _counted(n: int, phrase: str) -> str:
    if n == 1:
        for plural, single in SINGULAR.items():
            if phrase.startswith(plural):
                phrase = single + phrase[len(plural) :]
    return f"{n} {phrase}"


def _side(r: dict, ref: dict, field: str) -> str:
    lo, hi, rlo, rhi = (
        r.get(f"{field}_lo"),
        r.get(f"{field}_hi"),
        ref.get(f"{field}_lo"),
        ref.get(f"{field}_hi"),
    )
    if any(missing(x) for x in (lo, hi, rlo, rhi)):
        return DASH
    if lo > rhi:
        return "above"
    if hi < rlo:
        return "below"
    return "overlaps"


def attack_summary(dataset: str, attack: str, ranks: dict[str, int], rows: list[dict], why: str) -> str:
    """Table 3 on one dataset and attack: each model's accuracy under attack and success
    rate with their Wilson intervals, and where each lies against the reference's (its
    best-ranked model, shown first)."""
    rows = sorted(rows, key=lambda r: (ranks.get(r["model"], 1e9), r["model"]))
    ref = rows[0]
    reference = ref["model"]
    table = Table(
        [
            "model",
            "n",
            "accuracy under attack",
            "95% interval",
            "vs reference",
            "success rate",
            "95% interval",
            "vs reference",
        ],
        ["n", "accuracy under attack", "95% interval", "success rate"],
    )
    sides: dict[str, list[str]] = {}
    for r in rows:
        lead = r["model"] == reference
        acc = "reference" if lead else _side(r, ref, "accuracy_under_attack")
        success = "reference" if lead else _side(r, ref, "success_rate")
        if not lead:
            sides.setdefault(acc, []).append(r["model"])
        few = "*" if (r.get("n") or 0) < MIN_SUPPORT else ""
        table.add(
            [
                f"<b>{esc(r['model'])}</b>" if lead else esc(r["model"]),
                count(r["n"]) + few,
                num(r["accuracy_under_attack"]),
                interval(r.get("accuracy_under_attack_lo"), r.get("accuracy_under_attack_hi")),
                esc(acc),
                num(r["success_rate"]),
                interval(r.get("success_rate_lo"), r.get("success_rate_hi")),
                esc(success),
            ],
            "lead" if lead else ("few" if few else ""),
        )
    words = {
        "above": "more robust (accuracy under attack above its interval)",
        "below": "less robust (below its interval)",
        "overlaps": "not distinguishable from it at this sample size (the intervals overlap)",
        DASH: "without an interval",
    }
    said = "; ".join(f"{_join(ms)} {'is' if len(ms) == 1 else 'are'} {words[s]}" for s, ms in sides.items())
    small = (
        f" These rest on {count(ref['n'])} examples, fewer than {MIN_SUPPORT}: a hint, not a measurement."
        if (ref.get("n") or 0) < MIN_SUPPORT
        else ""
    )
    sentence = (
        f"Under <b>{esc(attack)}</b> on <b>{esc(dataset)}</b>, against <b>{esc(reference)}</b>"
        f" ({num(ref['accuracy_under_attack'])} of its examples still right):"
        f" {said or 'no other model'}.{small}"
    )
    return (
        f"<h3>{esc(dataset)}, {esc(attack)} attack: reference <b>{esc(reference)}</b>"
        f" <span class='why'>({esc(why)})</span></h3>"
        f"{table.html()}<p class='overall'>{sentence}</p>"
    )


def summary(
    rows2: list[dict],
    rows3: list[dict],
    ranks: dict[str, int],
    models: dict[str, dict],
    named: str | None,
    k: int,
    replicates: int,
    stored: str | None = None,
) -> str:
    """The summary section: how to read it, then each dataset of Table 2 and Table 3
    (``stored``: the store's own reference, ce reference)."""
    intro = (
        "<p>Each compressed model is set against the reference (the model named with"
        " <code>--reference</code>, else the store's <code>ce reference</code>, else the one with"
        " the most parameters) on every characteristic"
        " the store holds. The agreement is a Jaccard coefficient (1: the same set of examples;"
        f" 0: nothing shared) with its 95% bootstrap interval over examples ({replicates}"
        " replicates), beside the agreement two independent models would reach by chance."
        f" The verdict applies this rule, in this order:</p>{rule_html()}"
    )
    if any(not missing(r.get(f"{m.name}_floor")) for r in rows2 for m in AGREEMENT):
        intro += (
            "<p class='floor'><b>Noise floor.</b> The reference was also trained with other seeds"
            " (its replicas). The floor is how much those replicas agree with each other; the gap"
            " is each agreement minus the floor, with its 95% bootstrap interval (the same"
            " resamples for both). A gap whose interval lies below 0 is <b>beyond retraining"
            " noise</b>: the model differs from the reference more than the reference differs"
            " from itself; an interval holding 0 is <b>within retraining noise</b>. See the"
            " noise floor section for every group, the groups compared, and the examples the"
            " groups answer differently (PIEs).</p>"
        )
    else:
        intro += (
            f"<p class='floor'><b>{esc(NOISE_FLOOR.capitalize())}.</b> Two runs of the same recipe"
            " with another seed would show how far apart models that are miniatures by construction"
            " fall; until replicas are run (ce finetune --seeds), read the verdicts against the"
            " fixed 0.8 line and chance only.</p>"
        )
    if any(has_answers(r) for r in rows2):
        intro += (
            "<p>Where the store holds both models' answers, a sentence after each dataset says how"
            " many answers each model changes against the reference and how many of them flip"
            " (correct to wrong or wrong to correct), which agreement in accuracy can hide.</p>"
        )
    parts = [intro]
    for dataset in dict.fromkeys(r["dataset"] for r in rows2):
        subset = [r for r in rows2 if r["dataset"] == dataset]
        reference = references(subset, [], ranks)[dataset]
        parts.append(dataset_summary(dataset, reference, reason(reference, named, models, stored), subset, k))
    for key in dict.fromkeys((r["dataset"], r["attack"]) for r in rows3):
        subset = [r for r in rows3 if (r["dataset"], r["attack"]) == key]
        reference = references([], subset, ranks)[key[0]]
        parts.append(attack_summary(key[0], key[1], ranks, subset, reason(reference, named, models, stored)))
    if len(parts) == 1:
        parts.append("<p class='empty'>Nothing to compare yet: the store holds no pair of models.</p>")
    return "".join(parts)
