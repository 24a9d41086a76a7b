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
from ce.cli.report_html import human, recipe
from ce.cli.report_page import REPLICATES, render
from ce.cli.report_summary import NOISE_FLOOR, VERDICTS
from ce.store import Store

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
    """Five models with long names over n examples: errors, neighbour lists before and after
    fine-tuning, OOD scores and attacks, and the records of a recipe chain with sizes."""
    rng = np.random.default_rng(0)
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


def test_no_nan_or_none_text_in_the_page(long_store, full_store):
    for store in (long_store, full_store):
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
@pytest.mark.parametrize("which", ["full_store", "long_store"])
def test_every_figure_is_drawn_and_no_label_or_table_overflows_in_chromium(which, request, tmp_path):
    store = request.getfixturevalue(which)
    out = tmp_path / "report.html"
    out.write_text(
        render(ce.open(store), k=1 if which == "full_store" else 5, tpr=0.5, ks=(1, 2, 5), replicates=50)
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
