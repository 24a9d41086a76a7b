"""Progress as users see it: labelled bars, plain lines when stderr is not a terminal, and
the plan, step lines, ETA and step times of ce run."""

from __future__ import annotations

import io
import re

import pytest

from ce.extractors import progress
from ce.extractors.plan import PRIOR, Eta, Step, about, describe, plan, run_steps


def test_without_a_terminal_progress_is_periodic_lines_with_label_and_eta(monkeypatch):
    err = io.StringIO()  # not a terminal
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(progress, "INTERVAL", 0.0)  # a line at every update
    with progress.bar("finetune demo-large-sst2", 126, "step") as bar:
        for _ in range(3):
            bar.update(42)
    text = err.getvalue()
    assert "\r" not in text
    lines = text.splitlines()
    assert len(lines) == 4  # three updates and the end
    assert re.fullmatch(r"finetune demo-large-sst2: 42/126 steps, \S+ elapsed, ETA \S+", lines[0]), lines
    assert re.fullmatch(r"finetune demo-large-sst2: 126/126 steps in \S+", lines[-1]), lines


def test_lines_come_once_per_interval_and_a_quick_job_prints_none(monkeypatch):
    err = io.StringIO()
    monkeypatch.setattr("sys.stderr", err)
    monkeypatch.setattr(progress, "INTERVAL", 3600.0)
    with progress.bar("extract large finetuned sst2-dev", 872, "input") as bar:
        for _ in range(872):
            bar.update(1)
    assert err.getvalue() == ""


def test_counts_show_on_the_line_and_progress_false_is_silent(monkeypatch, capsys):
    line = progress.LineProgress("attack large deepwordbug", 6, "example", initial=2, interval=0.0)
    line.file = out = io.StringIO()
    line.set_postfix({"succeeded": 1, "failed": 0, "skipped": 0}, refresh=False)
    line.update(1)
    line.close()
    first = out.getvalue().splitlines()[0]
    assert first.startswith("attack large deepwordbug: 3/6 examples (succeeded 1, failed 0, skipped 0), ")
    assert "ETA" in first
    with progress.bar("extract x", 10, "input", progress=False) as bar:
        bar.update(10)
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0.42, "0.4s"), (29.4, "29s"), (245, "4m05s"), (3720, "1h02m")],
)
def test_durations_read_as_time(seconds, shown):
    assert progress.duration(seconds) == shown


def step(kind: str, label: str, work: float, stored: bool = False, log: list | None = None, **kw) -> Step:
    def run():
        if log is not None:
            log.append(label)
        return True

    return Step(kind, label, work, stale=lambda: None if stored else ["not in the store"], run=run, **kw)


def test_the_plan_counts_stored_steps_and_waits_for_models_remade_first():
    steps = [
        step("compress", "compress small", 1, makes="small"),
        step("extract", "extract small finetuned sst2-dev", 20, stored=True, needs=("small",)),
        step("extract", "extract base finetuned sst2-dev", 20, stored=True, needs=("base",)),
    ]
    planned = plan(steps)
    assert [p.why for p in planned] == [["not in the store"], ["after small is made"], None]
    assert describe(planned) == [
        "plan: 3 steps, 2 to run, 1 already in the store",
        "  1  compress small: runs (not in the store)",
        "  2  extract small finetuned sst2-dev: runs (after small is made)",
        "  3  extract base finetuned sst2-dev: in the store, skipped",
    ]


def test_steps_are_announced_when_they_start_and_timed_at_the_end():
    said, ran = [], []
    steps = [
        step("extract", "extract a finetuned d", 10, log=ran),
        step("extract", "extract b finetuned d", 10, stored=True, log=ran),
        step("attack", "attack a deepwordbug", 4, log=ran),
    ]
    assert run_steps(steps, said.append) == 2
    assert ran == ["extract a finetuned d", "attack a deepwordbug"]
    assert said[0] == "plan: 3 steps, 2 to run, 1 already in the store"
    assert said[1] == "[1/3] extract a finetuned d (not in the store)"
    assert re.fullmatch(r"\[1/3\] extract a finetuned d done in \S+; 1 to go, ETA ~\d+s", said[2]), said
    assert said[3] == "[2/3] extract b finetuned d: in the store, skipped"
    assert said[4] == "[3/3] attack a deepwordbug (not in the store)"
    assert re.fullmatch(r"\[3/3\] attack a deepwordbug done in \S+", said[5]), said
    assert said[6].startswith("step times: 2 ran, 1 in the store, ")
    assert [line.split()[-1] for line in said[7:]] == ["ran", "store", "ran"]
    assert said[8].split()[:4] == ["2", "extract", "b", "finetuned"] and " - " in said[8]


def test_the_eta_is_measured_work_left_at_the_measured_pace():
    eta = Eta()
    assert eta.left([step("extract", "e", 100)]) is None  # nothing timed yet: no guess
    eta.add(step("extract", "e", 100), 10.0)  # 0.1 s an example
    assert eta.left([step("extract", "e", 50)]) == pytest.approx(5.0)
    # attacks not timed yet: their typical cost, at the pace extraction ran (relative to typical)
    pace = 0.1 / PRIOR["extract"]
    assert eta.left([step("attack", "a", 2)]) == pytest.approx(2 * PRIOR["attack"] * pace)
    assert about(5.0) == "~5s" and about(250) == "~4 min" and about(5400) == "~1h30m"
