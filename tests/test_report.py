"""ce report: one self-contained HTML file, rendered in headless Chromium."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
from click.testing import CliRunner

import ce
from ce.cli import cli
from ce.cli.report_page import render
from ce.store import Store

from .test_sql import write_attacks, write_neighbors, write_store

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def full_store(store_dir) -> Store:
    store = write_store(store_dir, {"a": {"x1", "x2"}, "b": {"x2", "x3"}})
    write_neighbors(store, {"a": [[1, 2], [0, 2], [0, 1]], "b": [[2, 1], [0, 2], [1, 0]]})
    write_attacks(store, {"a": ["succeeded", "failed", "skipped"], "b": ["failed", "failed", "succeeded"]})
    return store


def test_report_has_every_section_and_no_external_resource(full_store):
    page = render(ce.open(full_store), k=1, tpr=0.5, ks=(1, 2))
    for heading in (
        "Table 2",
        "Table 3",
        "Agreement per characteristic",
        "against chance",
        "Figure 1",
        "Provenance",
    ):
        assert heading in page
    assert page.count("<svg class='figure'") == 4  # 2 heatmaps, 1 K curve, 1 bar chart
    assert not re.search(r"(src|href)=['\"]?https?:", page)  # nothing fetched at view time
    assert "0.333" in page  # a vs b error Jaccard, 1/3


def test_report_command_writes_the_file(full_store, tmp_path):
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "-o", str(out), "--k", "1", "--store", str(full_store.root)])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("<!DOCTYPE html>")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (make install adds it)")
def test_every_figure_is_drawn_in_chromium_without_console_errors(full_store, tmp_path):
    out = tmp_path / "report.html"
    out.write_text(render(ce.open(full_store), k=1, tpr=0.5, ks=(1, 2)))
    run = subprocess.run(
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
            "--dump-dom",
            out.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    figures = re.search(r'data-figures="(\d+)" data-drawn="(\d+)"', run.stdout)
    assert figures, "the page's check script did not run"
    assert figures.group(1) == figures.group(2) == "4"
    console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line]
    assert not console, console
