"""The views in runner/render, driven directly: what apply's progress, the tables and the outcomes print."""

from __future__ import annotations

import io

from runner.errors import TunerError
from runner.plan import CREATE, DELETE, REPLACE, UPDATE, Change, FieldChange, Plan
from runner.render.outcome import error_text, failures_text
from runner.render.plan import plan_text
from runner.render.progress import LineProgress, LiveProgress, elapsed_text, progress_reporter
from runner.render.state import state_list
from runner.render.terminal import table_text
from runner.state.model import Instance, ModelRecord, State
from tests.conftest import FakeClock

HIDDEN_LINK = "\x1b]8;;http://e\x07click\x1b]8;;\x07"
RICH_MARKUP = "[link=http://e]x[/link] [bold red]y[/] :smile:"


def _instance(tuned_id: str, status: str = "active") -> Instance:
    return Instance(tuned_id, "gemini", "f" * 64, status, "base", "", "", {}, {}, "t0", "t0")


def test_plain_progress_reads_the_elapsed_time_and_progress_apply_reports_as_data():
    stream, ticks = io.StringIO(), FakeClock()
    progress = LineProgress(stream, colour=False, monotonic=ticks)

    progress.event("alpha", "submitting", "tunedModels/alpha-1")
    progress.event("alpha", "creating", elapsed=185.0, progress=0.4)
    ticks.advance(5)
    progress.event("alpha", "creating", elapsed=190.0, progress=0.5)  # within 10 s: not repeated
    ticks.advance(5)
    progress.event("alpha", "creating", elapsed=195.0)
    progress.event("alpha", "active", elapsed=200.0)

    assert stream.getvalue().splitlines() == ["alpha: submitting (tunedModels/alpha-1)", "alpha: creating (3m05s 40%)",
                                              "alpha: creating (3m15s)", "alpha: active (3m20s)"]


def test_plain_progress_shows_a_providers_message_inert():
    stream = io.StringIO()
    LineProgress(stream, colour=False).event("alpha\u202e", "failed", f"quota {HIDDEN_LINK}\r")

    assert stream.getvalue() == "alpha: failed (quota click)\n"


def test_the_live_table_times_each_job_on_its_clock_and_shows_markup_literally():
    stream, ticks = io.StringIO(), FakeClock()
    progress = LiveProgress(stream, monotonic=ticks)
    progress.event("alpha", "creating", RICH_MARKUP, elapsed=999.0, progress=0.25)
    ticks.advance(75)
    progress.event("bravo", "submitting")
    shown = table_of(progress)
    progress.close()

    alpha = next(line for line in shown.splitlines() if line.startswith("alpha"))
    assert "1m15s" in alpha and "16m39s" not in alpha  # its own first event, not the job's total
    assert "25%" in alpha and alpha.endswith(RICH_MARKUP)


def table_of(progress: LiveProgress) -> str:
    from rich.console import Console

    console = Console(width=200, color_system=None)
    with console.capture() as captured:
        console.print(progress)
    return captured.get()


def test_elapsed_text_switches_to_minutes_at_one_minute():
    assert [elapsed_text(s) for s in (0, 59.9, 60, 3605)] == ["0s", "59s", "1m00s", "60m05s"]


def test_tables_keep_every_cell_literal_whole_and_uncoloured_off_a_terminal():
    long_id = "projects/p/locations/us-central1/models/" + "9" * 200
    text = table_text(("NAME", "ID"), [(RICH_MARKUP, long_id), (HIDDEN_LINK, "x")])

    lines = text.splitlines()
    assert lines[0].split() == ["NAME", "ID"]
    assert lines[1].startswith(RICH_MARKUP) and lines[1].endswith(long_id)  # not cut at 80 columns
    assert lines[2].split() == ["click", "x"]
    assert "\x1b" not in text and all(line == line.rstrip() for line in lines)


def test_tables_bold_their_header_only_in_colour():
    assert "\x1b[1m" in table_text(("NAME",), [("a",)], colour=True)
    assert "\x1b" not in table_text(("NAME",), [("a",)], colour=False)


def test_state_list_aligns_columns_two_spaces_apart():
    state = State("lineage", models={"alpha": ModelRecord(current=_instance("tunedModels/alpha-1")),
                                     "b": ModelRecord(pending=_instance("t/b", "creating"))})

    assert state_list(state) == ("NAME   PROVIDER  TUNED MODEL          STATUS\n"
                                 "alpha  gemini    tunedModels/alpha-1  active\n"
                                 "b      gemini    t/b                  creating (pending)\n")


def test_failures_and_errors_from_a_provider_are_printed_inert():
    failures = failures_text({"alpha": f"tuning job failed: {HIDDEN_LINK}\u202e"})
    error = error_text(TunerError(f"refused {HIDDEN_LINK}", remedy="\x1b[2Jretry"))

    assert failures == "\nFinished with 1 failure(s):\n  alpha: tuning job failed: click\n"
    assert error == "Error: refused click\n  -> retry\n"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_a_live_table_on_a_terminal_even_with_no_color_and_plain_lines_off_a_terminal(monkeypatch):
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert isinstance(progress_reporter(Terminal()), LiveProgress)
    assert isinstance(progress_reporter(io.StringIO()), LineProgress)
    monkeypatch.setenv("NO_COLOR", "1")
    assert isinstance(progress_reporter(Terminal()), LiveProgress)  # NO_COLOR takes the colour, not the table


def test_plan_text_keeps_terraforms_lines_for_every_action():
    rate = (FieldChange("hyperparameters.learning_rate", 0.5, 0.25, True),)
    plan = Plan((Change("a", CREATE, "local", (FieldChange("base_model", None, "m", False),)),
                 Change("b", REPLACE, "local", rate, prior_id="t/b"),
                 Change("c", UPDATE, "local", (FieldChange("display_name", "x", "y", False),), prior_id="t/c"),
                 Change("d", DELETE, "local", prior_id="t/d")), "lineage", 1)

    assert plan_text(plan).splitlines() == [
        "tuner will perform the following actions:", "",
        "  + a (local) will be created", "      + base_model = \"m\"", "",
        "  -/+ b (local) must be replaced [t/b]",
        "      ~ hyperparameters.learning_rate = 0.5 -> 0.25  # forces replacement", "",
        "  ~ c (local) will be updated in place [t/c]", "      ~ display_name = \"x\" -> \"y\"", "",
        "  - d (local) will be destroyed [t/d]", "",
        "Plan: 1 to add, 1 to replace, 1 to change, 1 to destroy."]
