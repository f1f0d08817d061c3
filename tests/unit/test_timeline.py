"""The timeline: the header's clock, a time axis, items named, failures marked, one row
per attempt."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from pipelines.timeline import render_timeline, tick_step

T0 = datetime(2024, 2, 29, 13, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


class Attempts(list):
    def all(self):
        return self


def execution(pk, step, attempts, *, status="succeeded", branch=None, kind="step", **more):
    return SimpleNamespace(
        pk=pk,
        step=step,
        node=f"{step}.0",
        kind=kind,
        status=status,
        branch_index=branch,
        enqueued_at=more.get("enqueued_at", T0),
        created_at=T0,
        attempt=more.get("attempt", len(attempts)),
        started_at=more.get("started_at"),
        worker="",
        attempts=Attempts(
            SimpleNamespace(number=i + 1, status=s, started_at=at(a), finished_at=at(b), worker="")
            for i, (s, a, b) in enumerate(attempts)
        ),
    )


def test_the_axis_spans_the_header_duration_with_round_ticks():
    svg = render_timeline(
        [execution(1, "Charge", [("failed", 0.5, 1.0), ("succeeded", 2.0, 4.0)])], T0, at(4.10)
    )
    assert 'aria-label="timeline of attempts over 4.10 s"' in svg
    assert "run: 4.10 s" in svg
    ticks = re.findall(r'text-anchor="middle">([^<]+)<', svg)
    assert ticks == ["0 s", "1 s", "2 s", "3 s", "4 s"]
    assert "\u2715 failed" in svg
    assert ">Charge try 2<" in svg  # the retry is named
    assert tick_step(0.08) == 0.01
    assert tick_step(8.51) == 2


def test_items_are_named_and_a_running_attempt_is_drawn_once():
    items = [execution(i, "PackParcel", [("succeeded", 0.1, 0.2)], branch=i) for i in range(2)]
    halted = execution(
        9,
        "RecordHalt",
        [("succeeded", 0.3, 0.4)],
        kind="halt",
        status="running",
        attempt=1,
        started_at=at(0.3),
    )
    svg = render_timeline([*items, halted], T0, at(1))
    assert ">PackParcel[0]<" in svg
    assert ">PackParcel[1]<" in svg
    assert svg.count(">RecordHalt (halt)<") == 1


def test_a_halt_handler_after_the_finish_extends_the_axis_and_marks_the_finish():
    svg = render_timeline(
        [execution(1, "Report", [("succeeded", 0.5, 0.6)], kind="halt")], T0, at(0.18)
    )
    assert "run finished" in svg
    assert "run: 0.18 s" in svg
