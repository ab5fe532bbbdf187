"""apply's live progress: one clock per job, % and ETA from what providers report, a true final frame, and colour
governed by NO_COLOR / --no-color only (a terminal keeps its live table; CI logs keep plain lines)."""

from __future__ import annotations

import io
import re

from runner.cli import main
from runner.environment import Environment
from runner.identity import Owner
from runner.providers.local import LocalProvider
from runner.render.progress import LiveProgress
from tests.conftest import FakeClock, planned_model

SGR_COLOUR = re.compile(r"\x1b\[[0-9;]*(3[0-7]|38|9[0-7])[0-9;]*m")  # a foreground colour, not bold or cursor moves


def last_frame(output: str) -> list[str]:
    """The rows of the live table as the terminal shows them last (rich erases each frame before the next)."""
    frame = output.rsplit("\x1b[2K", 1)[-1].replace("\x1b[?25h", "")
    return [line.rstrip() for line in re.sub(r"\x1b\[[0-9;]*m", "", frame).splitlines() if line.strip()]


def row(lines: list[str], name: str) -> list[str]:
    return next(line.split() for line in lines if line.startswith(name + " "))


def test_a_row_has_one_clock_a_percentage_and_an_eta_from_its_progress_rate_on_the_injected_clock():
    stream, ticks = io.StringIO(), FakeClock()
    progress = LiveProgress(stream, monotonic=ticks)
    progress.event("alpha", "submitting", "tunedModels/alpha-1")
    ticks.advance(30)
    progress.event("alpha", "creating", elapsed=999.0, progress=0.2, epoch=1, epochs=5, loss=0.52)
    ticks.advance(30)  # 20% more in 30 s: the 60% left takes 90 s
    progress.event("alpha", "creating", elapsed=999.0, progress=0.4, epoch=2, epochs=5, loss=0.31)
    running = last_frame(shown(progress))

    assert running[0].split() == ["model", "status", "progress", "%", "elapsed", "eta", "detail"]
    alpha = row(running, "alpha")
    assert alpha[alpha.index("40%"):] == ["40%", "1m00s", "1m30s", "epoch", "2/5", "loss", "0.31"]
    assert "16m39s" not in " ".join(alpha)  # one clock: the job's, not the poll loop's `elapsed`

    ticks.advance(10)  # no poll since: the ETA counts down on the clock
    assert row(last_frame(shown(progress)), "alpha")[-6:-4] == ["1m10s", "1m20s"]

    ticks.advance(5)
    progress.event("alpha", "active", elapsed=999.0, progress=1.0, epoch=5, epochs=5, loss=0.12)
    ticks.advance(100)  # after its final status a row's clock stands still
    done = row(last_frame(shown(progress)), "alpha")
    assert done[1] == "active" and done[-6:] == ["100%", "1m15s", "epoch", "5/5", "loss", "0.12"]  # no ETA
    progress.close()


def shown(progress: LiveProgress) -> str:
    from rich.console import Console

    console = Console(width=120, color_system=None, force_terminal=True)
    with console.capture() as captured:
        console.print(progress)
    return captured.get()


REPLACING = """\
defaults:
  provider: local
  base_model: local/linear-ngram
  hyperparameters: {{epoch_count: {epochs}, batch_size: 8, learning_rate: 0.5}}
models:
  sentiment:
    dataset: {{train: ../data/train.jsonl}}
    lifecycle: {{keep_previous: 0}}
"""


def test_the_final_frame_shows_each_row_with_its_final_status_not_the_cleanup_before_it(project, capsys,
                                                                                        monkeypatch):
    monkeypatch.setenv("COLUMNS", "150")
    terminal = Environment(stderr_isatty=True, environ={})
    project.spec(REPLACING.format(epochs=2))
    main(["apply", "--auto-approve"], env=terminal)
    capsys.readouterr()
    project.spec(REPLACING.format(epochs=3))  # a replace: the new model is active, then the old one deleted

    main(["apply", "--auto-approve"], env=terminal)
    output = capsys.readouterr().err

    sentiment = row(last_frame(output), "sentiment")
    assert sentiment[1] == "active" and "100%" in sentiment  # how the job ended, not `deleting`
    assert sentiment[-3:] == ["superseded", "models", "removed"]  # after the cleanup


def test_colour_is_governed_by_no_color_and_the_flag_while_a_terminal_keeps_its_live_table(project, capsys):
    def run(*args: str, tty: bool = True, environ: dict | None = None) -> str:
        main([*args, "--auto-approve"], env=Environment(stderr_isatty=tty, environ=environ or {}))
        return capsys.readouterr().err

    coloured = run("apply")
    assert last_frame(coloured)[0].split()[:2] == ["model", "status"] and SGR_COLOUR.search(coloured)

    for plain in (run("destroy", environ={"NO_COLOR": "1"}), run("--no-color", "apply")):
        assert last_frame(plain)[0].split()[:2] == ["model", "status"]  # still the live table...
        assert not SGR_COLOUR.search(plain)  # ...without colour

    logged = run("destroy", tty=False).splitlines()  # CI logs and pipes: one plain line per transition
    assert logged[0].startswith("sentiment: deleting") and logged[-1] == "sentiment: deleted"
    assert "\x1b" not in "".join(logged)


def test_local_training_reports_each_epoch_as_a_poll_would(project):
    provider = LocalProvider(project.models_dir())
    model = planned_model("sentiment")
    statuses = []
    provider.submit(model, "sentiment-progress", Owner("lineage", "default"), progress=statuses.append)

    assert [(s.epoch, s.epochs, s.progress) for s in statuses] == [(1, 4, 0.25), (2, 4, 0.5), (3, 4, 0.75),
                                                                    (4, 4, 1.0)]
    assert all(s.state == "creating" and s.loss > 0 for s in statuses)


def test_apply_shows_local_epochs_in_plain_lines(project):
    result = project.run("apply", "--auto-approve")

    creating = next(line for line in result.err.splitlines() if line.startswith("sentiment: creating"))
    assert re.fullmatch(r"sentiment: creating \(\d+s 25% epoch 1/4 loss [0-9.]+\)", creating), creating
