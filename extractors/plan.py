"""How ``ce run`` and ``ce demo`` go through an experiment's steps, saying what they do.

Before anything runs, the plan: how many steps, how many the store already holds. Each step
is announced when it starts (``[7/24] finetune demo-large-sst2 (not in the store)``) and
timed when it ends, with an ETA for the steps left; at the end, every step's time.

The ETA is the work left times the seconds per unit of work measured so far: a unit is an
example (an example-epoch for fine-tuning; a whole step for ingest and compress), timed per
kind of step. A kind not timed yet counts at a typical CPU speed (:data:`PRIOR`), scaled by
how much faster or slower than typical the steps timed so far ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .progress import duration

# Seconds per unit of each kind of step as `make demo` measured them on 2 CPU cores
# (all-MiniLM-L6-v2, SST-2 sentences; an attack on a long review costs more); only used,
# scaled by the pace seen so far, until a step of that kind has been timed.
PRIOR = {"ingest": 0.1, "compress": 1.0, "finetune": 0.016, "extract": 0.003, "ood": 0.0015, "attack": 0.1}


@dataclass
class Step:
    kind: str  # ingest, finetune, compress, extract, ood or attack
    label: str  # what it is, as the lines name it: "finetune demo-large-sst2"
    work: float  # units of work (see the module's docstring)
    stale: Callable[[], list[str] | None]  # None: the store holds it; else why it runs
    run: Callable[[], bool | str]  # False: it found the store holding it; a str: what it made
    needs: tuple[str, ...] = ()  # the models it reads
    makes: str | None = None  # the model it makes


@dataclass
class Planned:
    step: Step
    why: list[str] | None  # None: in the store
    waits_for: str | None = None  # a model an earlier step of this run (re)makes first


def plan(steps: list[Step]) -> list[Planned]:
    """Whether each step runs, checked against the store before anything runs. A step that
    reads a model which an earlier step remakes runs after it: whether that changes the
    step's results is known only once the model is made, so it counts as running."""
    remade: set[str] = set()
    planned = []
    for step in steps:
        waits_for = next((m for m in step.needs if m in remade), None)
        if waits_for is not None:
            planned.append(Planned(step, [f"after {waits_for} is made"], waits_for))
        else:
            planned.append(Planned(step, step.stale()))
        if step.makes is not None and planned[-1].why is not None:
            remade.add(step.makes)
    return planned


@dataclass
class Eta:
    seconds: dict[str, float] = field(default_factory=dict)  # kind -> seconds timed
    work: dict[str, float] = field(default_factory=dict)  # kind -> units of work timed

    def add(self, step: Step, seconds: float) -> None:
        self.seconds[step.kind] = self.seconds.get(step.kind, 0.0) + seconds
        self.work[step.kind] = self.work.get(step.kind, 0.0) + step.work

    def left(self, steps: list[Step]) -> float | None:
        """Seconds the ``steps`` should take; None before any step was timed."""
        if not self.seconds:
            return None
        timed = [k for k in self.seconds if k != "ingest"]  # ingest is file reading, no model
        typical = sum(PRIOR[k] * self.work[k] for k in timed)
        pace = sum(self.seconds[k] for k in timed) / typical if typical > 0 else 1.0
        total = 0.0
        for step in steps:
            if self.work.get(step.kind):
                total += self.seconds[step.kind] / self.work[step.kind] * step.work
            else:
                total += PRIOR[step.kind] * pace * step.work
        return total


def about(seconds: float) -> str:
    """An estimate, rounded as honestly as it is known: '~40s', '~4 min', '~1h20m'."""
    if seconds < 60:
        return f"~{max(5, round(seconds / 5) * 5)}s"
    if seconds < 3600:
        return f"~{round(seconds / 60)} min"
    return f"~{int(seconds // 3600)}h{round(seconds % 3600 / 60):02d}m"


def _because(why: list[str]) -> str:
    return f" ({'; '.join(why)})" if why else ""


def describe(planned: list[Planned]) -> list[str]:
    """The plan as lines: a summary, then each step and whether it runs (ce run --check)."""
    width = len(str(len(planned)))
    lines = [summary(planned)]
    for i, p in enumerate(planned, 1):
        what = "in the store, skipped" if p.why is None else f"runs{_because(p.why)}"
        lines.append(f"  {i:>{width}}  {p.step.label}: {what}")
    return lines


def summary(planned: list[Planned]) -> str:
    stored = sum(p.why is None for p in planned)
    return (
        f"plan: {len(planned)} step{'s' if len(planned) != 1 else ''},"
        f" {len(planned) - stored} to run, {stored} already in the store"
    )


def run_steps(steps: list[Step], say: Callable[[str], None]) -> int:
    """Plan, then run every step the store does not hold, saying so; how many ran."""
    planned = plan(steps)
    say(summary(planned))
    n = len(planned)
    eta = Eta()
    times: list[tuple[str, float | None, str]] = []  # label, seconds, status
    started = time.monotonic()
    for i, p in enumerate(planned, 1):
        step, tag = p.step, f"[{i}/{n}]"
        why = step.stale()  # again: an earlier step may have changed what it reads
        if why is None:
            say(f"{tag} {step.label}: in the store, skipped")
            times.append((step.label, None, "in the store"))
            continue
        say(f"{tag} {step.label}{_because(why)}")
        began = time.monotonic()
        made = step.run()
        seconds = time.monotonic() - began
        if made is False:
            say(f"{tag} {step.label}: in the store after all, {duration(seconds)}")
            times.append((step.label, seconds, "in the store"))
            continue
        eta.add(step, seconds)
        times.append((step.label, seconds, "ran"))
        note = f": {made}" if isinstance(made, str) else ""
        rest = [q.step for q in planned[i:] if q.why is not None]
        left = eta.left(rest) if rest else None
        ahead = f"; {len(rest)} to go, ETA {about(left)}" if left is not None else ""
        say(f"{tag} {step.label} done in {duration(seconds)}{note}{ahead}")
    for line in table(times, time.monotonic() - started):
        say(line)
    return sum(status == "ran" for _, _, status in times)


def table(times: list[tuple[str, float | None, str]], total: float) -> list[str]:
    """Every step's time: number, step, seconds, ran or in the store."""
    if not times:
        return []
    ran = sum(status == "ran" for _, _, status in times)
    lines = [f"step times: {ran} ran, {len(times) - ran} in the store, {duration(total)} in all"]
    width, label_width = len(str(len(times))), max(len(label) for label, _, _ in times)
    if not ran:  # each step said so already
        return lines
    for i, (label, seconds, status) in enumerate(times, 1):
        shown = "-" if seconds is None else duration(seconds)
        lines.append(f"  {i:>{width}}  {label:<{label_width}}  {shown:>6}  {status}")
    return lines
