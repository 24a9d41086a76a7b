"""ce report: one self-contained HTML file that answers its title, rendered in headless
Chromium at 1280 px, where no label may overflow its figure and no table its box."""

from __future__ import annotations

import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.cli.report import report
from ce.cli.report_html import human, pct, recipe
from ce.cli.report_page import ANSWER_COLUMNS, REPLICATES, _empty_reasons, render
from ce.cli.report_summary import NOISE_FLOOR, VERDICTS, answer_pairs
from ce.store import Store

from .test_answers import write
from .test_sql import write_attacks, write_neighbors, write_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
REFERENCE = "bert-large-uncased-whole-word-masking-finetuned-sst2"
OTHERS = (
    "distilbert-base-uncased-distilled-from-the-large-one-int8",
    "bert-large-uncased-whole-word-masking-prune0.5",
    "layers3",
    "a-compressed-model-with-a-rather-long-name-too",
)


@pytest.fixture
def full_store(store_dir) -> Store:
    store = write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    write_attacks(store, {"a": ["succeeded", "failed", "skipped"], "b": ["failed", "failed", "succeeded"]})
    return store


def long_names_store(root, n: int = 60) -> Store:
    """Five models with long names over n examples: errors, neighbour lists and embeddings
    before and after fine-tuning, OOD scores and attacks, and the records of a recipe chain
    with sizes."""
    rng = np.random.default_rng(0)
    spaces = np.random.default_rng(1)  # the embeddings' own draws: the others stay as they were
    shared = spaces.normal(size=(n, 8))
    store = Store(root)
    ids = [f"e{i}" for i in range(n)]
    models = (REFERENCE, *OTHERS)
    facts = {
        REFERENCE: {"model_parameters": 335_000_000, "model_bytes": 1_340_000_000},
        OTHERS[0]: {"model_parameters": 66_000_000, "model_bytes": 87_000_000},
        OTHERS[1]: {"model_parameters": 335_000_000, "model_nonzero_parameters": 170_000_000},
        OTHERS[2]: {"model_parameters": 22_700_000, "model_bytes": 90_900_000},
        OTHERS[3]: {},
    }
    base_wrong = rng.random(n) < 0.3
    base_order = np.argsort(rng.random((n, n)), axis=1)
    with store.run("test", {}) as run:
        run.write(
            "examples",
            {"dataset": "sst2-dev"},
            pa.table(
                {"example_id": ids, "idx": list(range(n)), "text": ["a b c"] * n, "label": [0, 1] * (n // 2)}
            ),
        )
    for m, model in enumerate(models):
        flip = rng.random(n) < 0.1 * m
        derived = {"method": "int8", "parent": "teacher"} if m == 1 else None
        with store.run(
            "extract",
            {"model_arg": f"{model}-folder"},
            model=model,
            dataset="sst2-dev",
            architecture="BertForSequenceClassification",
            derived_from=derived,
            **facts[model],
        ) as run:
            run.write(
                "predictions",
                {"model": model, "dataset": "sst2-dev"},
                pa.table({"example_id": ids, "correct": list(~(base_wrong ^ flip))}),
            )
            for stage in ("pretrained", "finetuned"):
                lists = []
                for i in range(n):
                    order = [int(j) for j in base_order[i] if j != i]
                    if rng.random() < 0.15 * m:
                        order = [int(j) for j in rng.permutation(order)]
                    lists.append(order[:5])
                run.write(
                    "neighbors",
                    {"model": model, "stage": stage, "dataset": "sst2-dev"},
                    pa.table({"example_id": ids, "idx": list(range(n)), "neighbors": lists}),
                )
                v = shared @ spaces.normal(size=(8, 6 + m)) + 0.5 * m * spaces.normal(size=(n, 6 + m))
                vector = pa.FixedSizeListArray.from_arrays(pa.array(v.astype(np.float32).reshape(-1)), 6 + m)
                run.write(
                    "embeddings",
                    {"model": model, "stage": stage, "dataset": "sst2-dev"},
                    pa.table({"example_id": ids, "vector": vector.cast(pa.list_(pa.float32()))}),
                )
            distances = np.sort(rng.random((2 * n, 5)), axis=1).tolist()
            run.write(
                "ood_scores",
                {"model": model, "stage": "finetuned", "bank": "sst2-train", "dataset": "imdb-test"},
                pa.table(
                    {
                        "example_id": [f"v{i}" for i in range(n)] + [f"t{i}" for i in range(n)],
                        "role": ["id_val"] * n + ["test"] * n,
                        "source": ["sst2-dev"] * n + ["imdb-test"] * n,
                        "distances": distances,
                    }
                ),
            )
            results = rng.choice(["succeeded", "failed", "skipped"], size=30, p=[0.5, 0.3, 0.2]).tolist()
            run.write(
                "attacks",
                {"model": model, "attack": "deepwordbug", "dataset": "imdb-1k"},
                pa.table(
                    {
                        "example_id": [f"a{i}" for i in range(30)],
                        "ground_truth": [1] * 30,
                        "result": results,
                        "queries": [10] * 30,
                        "words_perturbed": [2 if r == "succeeded" else 0 for r in results],
                        "words": [100] * 30,
                    }
                ),
            )
    with store.run(
        "compress",
        {"method": "int8"},
        model="teacher",
        derived_from={"method": "finetune", "parent": "minilm"},
    ):
        pass
    return store


@pytest.fixture
def long_store(store_dir) -> Store:
    return long_names_store(store_dir)


def answers_store(root, n: int = 200) -> Store:
    """Multiple-choice answers as an lm-evaluation-harness log gives them: the reference and a
    compressed copy with answer distributions (the copy's noise flips answers where the
    reference's margin is small; its prompts differ on 3 documents), and a third model from a
    generation log with answers and correctness but no distribution."""
    rng = np.random.default_rng(3)
    classes = 4
    ids = [f"doc{i}" for i in range(n)]
    gold = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)) + 1.5 * np.eye(classes)[gold]
    models = {}
    for name, noise in ((REFERENCE, 0.0), (OTHERS[0], 0.6), (OTHERS[2], 1.2)):
        noisy = logits + noise * rng.normal(size=logits.shape)
        probs = np.exp(noisy) / np.exp(noisy).sum(1, keepdims=True)
        answer = probs.argmax(1)
        hashes = [f"p{i}" for i in range(n)]
        if name == OTHERS[0]:
            hashes[:3] = ["another template"] * 3
        cols = {"pred_label": answer.tolist(), "correct": (answer == gold).tolist(), "prompt_hash": hashes}
        if name != OTHERS[2]:
            cols["probs"] = probs.tolist()
        models[name] = cols
    return write(Store(root), models, dataset="arc-easy", gold=gold.tolist(), ids=ids)


@pytest.fixture
def answer_store(store_dir) -> Store:
    return answers_store(store_dir)


class Text(HTMLParser):
    """The text a reader sees (not scripts, styles or tooltips)."""

    def __init__(self):
        super().__init__()
        self.parts, self.skip = [], 0

    BLOCKS = ("td", "th", "tr", "p", "li", "h1", "h2", "h3", "br", "div", "dt", "dd", "figcaption", "text")

    def handle_starttag(self, tag, attrs):
        self.skip += tag in ("script", "style", "title")
        self.parts.append(" " if tag in self.BLOCKS else "")

    def handle_endtag(self, tag):
        self.skip -= tag in ("script", "style", "title")
        self.parts.append(" " if tag in self.BLOCKS else "")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(data)


def visible(page: str) -> str:
    parser = Text()
    parser.feed(page)
    return re.sub(r"\s+", " ", "".join(parser.parts))


def test_report_has_every_section_and_no_external_resource(full_store):
    page = render(ce.open(full_store), k=1, tpr=0.5, ks=(1, 2), replicates=50)
    for heading in (
        "Summary",
        "Models and accuracy",
        "Table 2",
        "Table 3",
        "Agreement per characteristic",
        "Figure 1",
        "Column definitions",
        "Provenance",
    ):
        assert f"{heading}" in page
    assert page.count("<svg class='figure'") == 4  # 2 heatmaps, 1 K curve, 1 bar chart
    assert not re.search(r"(src|href)\s*=\s*['\"]?\s*(https?:|//)", page)  # nothing fetched
    assert not re.search(r"@import|url\(", page)
    assert "0.333" in page  # a vs b error Jaccard, 1/3
    assert "<details class='provenance'>" in page  # collapsed


def test_summary_names_the_reference_and_a_verdict_for_each_model(long_store):
    page = render(ce.open(long_store), k=5, tpr=0.5, ks=(1, 5), replicates=50)
    text = visible(page)
    summary = text[
        text.index("Summary: is each model") : text.index("Models and accuracy", text.index("Summary: is"))
    ]
    assert f"sst2-dev: reference {REFERENCE} (the most parameters, 335M)" in summary
    words = [v[0] for v in VERDICTS.values()]
    for model in OTHERS:
        rows = [line for line in page.split("id='models'")[0].split("<tr") if f">{model}<" in line]
        judged = [r for r in rows if "class='verdict" in r]  # Table 2's characteristics
        assert judged and all(any(w in r for w in words) for r in judged), model
        attacked = [r for r in rows if r not in judged]  # Table 3: against the reference's interval
        assert len(attacked) == 1 and re.search(r">(above|below|overlaps)<", attacked[0]), model
    assert summary.count("On sst2-dev, against") == 1  # one overall sentence per dataset
    assert "Under deepwordbug on imdb-1k" in summary
    assert re.search(r"\b(above|below|overlaps)\b", summary)
    assert text.count(NOISE_FLOOR.capitalize()) == 1  # said once, honestly
    # n and both set sizes beside the Jaccard, in the summary and in Table 2
    row = ce.open(long_store).table2(k=5, tpr=0.5).rows()[0]
    assert row["model_i"] == REFERENCE
    sizes = f"{row['errors_i']} / {row['errors_j']}"
    assert sizes in summary and f"<td class='num'>{row['errors_n']}</td>" in page
    assert f"<td class='num'>{row['errors_i']}</td><td class='num'>{row['errors_j']}</td>" in page
    # heatmap axes in model_rank order: the reference, then by parameters (unknown last)
    first = page[page.index("<svg class='figure'") :].split("</svg>")[0]
    found = re.findall(r"text-anchor='end'>(?:<title>([^<]+)</title>)?([^<]+)</text>", first)
    assert [full or shown for full, shown in found] == [REFERENCE, OTHERS[1], OTHERS[0], *OTHERS[2:]]
    # few-item values are marked (the 30-example attacks and small OOD sets are not; k=5 is)
    assert "fewer than 20 items" in text


def test_models_table_says_what_each_model_is_in_human_units(long_store):
    page = render(ce.open(long_store), k=5, tpr=0.5, ks=(5,), replicates=50)
    text = visible(page)
    assert "335M" in text and "1.34 GB" in text and "87 MB" in text and "170M" in text
    assert "int8 of teacher, itself finetune of minilm" in text
    assert "accuracy (95% interval, n)" in text and "n 60" in text
    row = text[text.index(OTHERS[3], text.index("Models and accuracy", text.index("Summary: is"))) :][:200]
    assert "—" in row and " 0 " not in row  # an unknown size is a dash, never 0
    assert (
        human(None) == human(0) == "—" and human(22_700_000) == "22.7M" and human(87_000_000, "B") == "87 MB"
    )
    assert recipe("x", {"x": {"method": "layers:3", "parent": "minilm"}}) == "layers:3 of minilm"


def test_no_nan_or_none_text_in_the_page(long_store, full_store, answer_store):
    for store in (long_store, full_store, answer_store):
        text = visible(render(ce.open(store), k=1, tpr=0.5, ks=(1,), replicates=20))
        assert not re.search(r"\b(NaN|nan|None|null|inf)\b", text), re.findall(
            r".{40}\b(?:NaN|nan|None|null|inf)\b.{40}", text
        )


def test_report_command_writes_the_file(full_store, tmp_path):
    out = tmp_path / "report.html"
    args = ["report", "-o", str(out), "--k", "1", "--replicates", "20", "--store", str(full_store.root)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert report.params[[p.name for p in report.params].index("replicates")].default == REPLICATES
    result = CliRunner().invoke(cli, [*args, "--reference", "b"])
    assert result.exit_code == 0, result.output
    assert "toy: reference <b>b</b> <span class='why'>(named with --reference)" in out.read_text()


def chromium(page, tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1280,3000",
            *args,
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def checked(dom: str) -> dict[str, str]:
    """The counts the page's check script wrote on <body>."""
    body = re.search(r"<body([^>]*)>", dom)
    assert body and "data-figures" in body.group(1), "the page's check script did not run"
    return dict(re.findall(r'data-([a-z-]+)="([^"]*)"', body.group(1)))


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make install adds it)")
@pytest.mark.parametrize("which", ["full_store", "long_store", "answer_store"])
def test_every_figure_is_drawn_and_no_label_or_table_overflows_in_chromium(which, request, tmp_path):
    store = request.getfixturevalue(which)
    out = tmp_path / "report.html"
    out.write_text(
        render(ce.open(store), k=5 if which == "long_store" else 1, tpr=0.5, ks=(1, 2, 5), replicates=50)
    )
    run = chromium(out, tmp_path, "--dump-dom")
    assert run.returncode == 0, run.stderr[-2000:]
    found = checked(run.stdout)
    assert found["figures"] == found["drawn"] != "0"
    assert found["clipped-labels"] == "0", found["clipped-list"]
    assert found["wide-tables"] == "0"
    assert found["page-overflow"] == "0"
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
    shot = tmp_path / f"{which}.png"
    run = chromium(out, tmp_path, f"--screenshot={shot}")
    assert run.returncode == 0 and shot.stat().st_size > 10_000, run.stderr[-2000:]


def section(page: str, anchor: str) -> str:
    """The HTML of one section of the page."""
    return page.split(f"<section id='{anchor}'>")[1].split("</section>")[0]


def test_changed_answers_section_tables_and_summary(answer_store):
    session = ce.open(answer_store)
    page = render(session, k=1, tpr=0.5, ks=(1,), replicates=50, reference=REFERENCE)
    answers = section(page, "answers")
    text = visible(answers)
    assert "Changed answers: flips, divergences and calibration" in visible(page)
    assert all(f">{c}</th>" in answers for c in ANSWER_COLUMNS)
    rows = {
        (r["model_i"], r["model_j"]): r
        for r in session.table2(reference=REFERENCE, ci=0.95, replicates=50).rows()
    }
    assert set(rows) == {(REFERENCE, OTHERS[0]), (REFERENCE, OTHERS[2]), (OTHERS[0], OTHERS[2])}
    pair = rows[(REFERENCE, OTHERS[0])]
    assert 0 < pair["flips"] < pair["changes"] < 1 and pair["kl"] > 0
    # the reference's pairs lead, each with flips, its interval, C->W, W->C and the differences
    lines = [line.split("</tr>")[0] for line in answers.split("<tr class=")[1:]]
    assert [REFERENCE in line for line in lines] == [True, True, False]
    first = lines[0]
    for value in (
        pair["flips"],
        pair["flips_neg"],
        pair["flips_pos"],
        pair["changes"],
        pair["kl"],
        pair["js"],
    ):
        assert f">{value:.3f}<" in first
    assert f"<span class='sub'>{pair['flips_lo']:.3f}–{pair['flips_hi']:.3f}</span>" in first
    assert f">{pair['brier_diff']:+.3f}<" in first and f">{pair['ece_diff']:+.3f}<" in first
    # the prompts that differ are named beside their pair, not only under Table 2
    assert "prompts differ on 3 document(s)" in visible(first)
    assert "saw different prompts" not in section(page, "table2")
    # changed answers are not Jaccards: no verdict, heatmap or Table 2 of their own
    assert "Table 2, flips" not in page and "flips (correct &lt;-&gt; wrong), arc-easy" not in page
    # the summary says it in words for each of the reference's pairs
    summary = visible(section(page, "summary"))
    for other in (OTHERS[0], OTHERS[2]):
        r = rows[(REFERENCE, other)]
        said = f"{other} changes {pct(r['changes'])} of its answers, {pct(r['flips'])} flips"
        assert said in summary, summary
    glossary = visible(section(page, "glossary"))
    for term in ("flips", "C→W: negative flips", "W→C: positive flips", "KL(i‖j)", "JS", "top-1"):
        assert f" {term} " in glossary, term
    assert all(f" {term} " in glossary for term in ("ECE", "MCE")) and "Brier score" in glossary
    assert "F1" not in text  # (sanity: the section reads the answers, not QA)


def test_empty_answer_measures_say_why_never_zero(answer_store):
    page = render(ce.open(answer_store), k=1, tpr=0.5, ks=(1,), replicates=20, reference=REFERENCE)
    answers = section(page, "answers")
    for line in (line.split("</tr>")[0] for line in answers.split("<tr class=")[1:]):
        cells = re.findall(r"<td[^>]*>(.*?)</td>", line)
        named = dict(zip(ANSWER_COLUMNS, cells, strict=True))
        if OTHERS[2] not in line:
            continue
        # the generation log of OTHERS[2] has answers and correctness but no distribution
        for column in ("KL(i‖j)", "JS", "top-1", "ΔBrier", "ΔECE"):
            assert "no distribution" in named[column] and not re.search(r"\d", visible(named[column])), column
        assert re.fullmatch(r"0\.\d{3} 0\.\d{3}–0\.\d{3}", visible(named["flips"]).strip())  # flips remain
    assert f"{OTHERS[2]} stored no answer distribution on arc-easy" in visible(answers)
    # a reference without a distribution has no margin: the figure says why instead
    other = render(ce.open(answer_store), k=1, tpr=0.5, ks=(1,), replicates=20, reference=OTHERS[2])
    assert f"No figure of flips against the reference's margin: {OTHERS[2]} stored no answer" in visible(
        section(other, "answers")
    )


def test_flips_by_margin_figure_has_one_line_per_pair_with_the_reference(answer_store):
    session = ce.open(answer_store)
    page = render(session, k=1, tpr=0.5, ks=(1,), replicates=20, reference=REFERENCE)
    figures = re.findall(r"<svg class='figure'.*?</svg>", section(page, "answers"))
    assert len(figures) == 1  # one dataset
    lines = re.findall(r"<polyline[^>]*><title>([^<]+)</title>", figures[0])
    assert lines == [f"{REFERENCE} vs {OTHERS[0]}", f"{REFERENCE} vs {OTHERS[2]}"]
    rows = session.query(
        "select * from flips_by_margin() where model_i = $m and model_j = $o order by decile",
        m=REFERENCE,
        o=OTHERS[0],
    ).rows()
    assert len(rows) == 10 and figures[0].count(f"{REFERENCE} vs {OTHERS[0]}, decile") == 10
    # the x axis carries the reference's margins: the smallest and the largest
    assert f">{rows[0]['margin_lo']:.2f}</text>" in figures[0]
    assert f">{rows[-1]['margin_hi']:.2f}</text>" in figures[0]
    # flips gather where the reference was unsure (the copy's noise moves near-ties)
    assert rows[0]["flip_rate"] > rows[-1]["flip_rate"]


def test_no_changed_answer_section_without_answers(full_store, long_store):
    for store in (full_store, long_store):
        page = render(ce.open(store), k=1, tpr=0.5, ks=(1,), replicates=20)
        assert "<section id='answers'>" not in page and "Changed answers" not in page
        assert "C→W" not in page and "changes" not in visible(section(page, "summary"))


def test_cka_heatmaps_hold_the_sessions_values_in_model_rank_order(long_store):
    session = ce.open(long_store)
    page = render(session, k=5, tpr=0.5, ks=(5,), replicates=20, cka=True)
    cka = section(page, "cka")
    assert "Representation similarity: linear CKA" in visible(page)
    assert page.index("<section id='heatmaps'>") < page.index("<section id='cka'>")
    figures = re.findall(r"<figure class='chart'>.*?</figure>", cka)
    captions = [re.search(r"<figcaption>([^<]+)</figcaption>", f).group(1) for f in figures]
    assert captions == [f"Linear CKA, sst2-dev, {stage} embeddings" for stage in ("pretrained", "finetuned")]
    rows = session.cka().rows()
    assert len(rows) == 2 * 10 and {r["n"] for r in rows} == {60}  # two stages, every pair of five models
    for stage, drawn in zip(("pretrained", "finetuned"), figures, strict=True):
        axis = re.findall(r"text-anchor='end'>(?:<title>([^<]+)</title>)?([^<]+)</text>", drawn)
        assert [full or shown for full, shown in axis] == [REFERENCE, OTHERS[1], OTHERS[0], *OTHERS[2:]]
        cells = re.findall(r"<title>([^<]+: CKA [^<]+)</title></rect><text [^>]*>([^<]+)</text>", drawn)
        expected = []
        for r in (r for r in rows if r["stage"] == stage):
            values = f"CKA {r['cka']:.3f} (unbiased {r['cka_unbiased']:.3f}), n {r['n']}"
            tip = f"{r['model_i']} vs {r['model_j']}: {values}"
            expected += [(tip, f"{r['cka']:.2f}")] * 2  # each pair above and below the diagonal
        assert sorted(cells) == sorted(expected)
        assert "colour scale: linear CKA" in drawn and "Jaccard" not in drawn and "close" not in drawn
    assert " linear CKA " in visible(section(page, "glossary"))


def test_cka_is_drawn_only_when_asked_for(long_store, tmp_path):
    from click.testing import CliRunner

    from ce.cli import cli

    unasked = section(render(ce.open(long_store), k=5, tpr=0.5, ks=(5,), replicates=20), "cka")
    assert "<svg" not in unasked and "ce report --with cka" in visible(unasked)
    out = tmp_path / "r.html"
    args = ["report", "-o", str(out), "--k", "5", "--tpr", "0.5", "--replicates", "10", "--with", "cka"]
    result = CliRunner().invoke(cli, [*args, "--store", str(long_store.root)])
    assert result.exit_code == 0, result.output
    assert "<svg" in section(out.read_text(), "cka")


def test_cka_section_says_it_is_empty_without_embeddings(full_store):
    empty = section(render(ce.open(full_store), k=1, tpr=0.5, ks=(1,), replicates=20, cka=True), "cka")
    assert "<svg" not in empty and "<figure" not in empty
    said = "No embeddings in the store: there are no representations to compare."
    assert visible(empty).strip() == f"Representation similarity: linear CKA {said}"


def test_a_pair_with_several_ood_rows_is_said_once():
    row = {"dataset": "d", "model_i": "a", "model_j": "b", "flips": 0.1, "changes": 0.2}
    rows = [row | {"ood_dataset": t} for t in ("imdb", "yelp")]
    rows += [row | {"model_j": "c", "flips": None, "ood_dataset": "imdb"}]
    assert [(r["model_j"], r["ood_dataset"]) for r in answer_pairs(rows)] == [("b", "imdb"), ("c", "imdb")]
    assert answer_pairs([row | {"flips": None, "changes": None}]) == []


def test_each_empty_answer_value_has_its_own_reason():
    row = {"model_i": "big", "model_j": "small", "flips": 0.0, "kl": 0.1}
    stored = {("d", "big"): {"probs": 5, "scored": 5}, ("d", "small"): {"probs": 5, "scored": 5}}
    why = _empty_reasons("d", row, stored)
    assert why["mcnemar"][0] == "no flips to test" and why["brier"][0] == "no gold label"
    stored[("d", "small")] = {"probs": 0, "scored": 0}
    why = _empty_reasons("d", row | {"flips": None, "kl": None}, stored)
    assert why["flips"] == why["mcnemar"] and why["flips"][0] == "correctness unknown"
    assert "small recorded no correctness on d" in why["flips"][1]
    assert why["distribution"] == why["brier"] == why["ece"] and why["ece"][0] == "no distribution"
    stored[("d", "small")] = {"probs": 5, "scored": 5}
    assert _empty_reasons("d", row | {"kl": None}, stored)["distribution"][0] == "distributions differ"
