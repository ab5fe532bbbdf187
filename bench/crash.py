#!/usr/bin/env python
"""Crash safety, measured: SIGKILL `tuner apply` at random moments against a provider's emulator.

A throwaway project declares several models of one provider (--provider: gemini, the Gemini API emulator, or
openai, the OpenAI emulator) over a copy of data/sentiment/train.jsonl and points them at that emulator, in
process (127.0.0.1, a free port, jobs of --job-seconds real time). Each round starts `python -m runner apply
--auto-approve` and SIGKILLs it at a seeded random moment: a delay after launch, right after its n-th state
write, a delay after its first state write, or right after the emulator accepted its n-th job (before the job's
id can reach state). Some rounds first bump one to three models' epoch_count (a new fingerprint), so kills land
during replacements too. Every few rounds, and at the end, an apply runs to completion.

After every run (killed or not):
  - nothing is paid for twice: the emulator accepted exactly one create per tuner identity (gemini: the
    tuned model id; openai: the `tuner_id` in the job's metadata), and identities derive from fingerprints;
  - nothing is orphaned: every tuned model, and every job still running, that the emulator holds is known
    to state (current, pending, deposed or retained) by one of its ids (gemini: the tuned model id; openai:
    the `ft:` model id, the job id state records as its handle, or the tuner id a submission records before
    the job's id is known). The lab's emulator serves this state alone, so this covers everything carrying
    its owner tag;
  - the state file parses as strict JSON (no NaN), tuner reads it with its journal (apply's records since
    the last full write: a torn last record is ignored, anything else refused), and its serial never
    decreases.
After every run to completion, also:
  - it exits 0; every model is `active` in state with nothing pending or deposed, and ACTIVE at the
    emulator;
  - the emulator holds exactly the tuned models state records (no superseded model leaks);
  - `tuner plan --detailed-exitcode` exits 0.

    python bench/crash.py --rounds 30 --seed 0 [--provider openai]

Exits 1 when any invariant was violated, 0 otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a script from anywhere: `python bench/crash.py`
    sys.path.insert(0, str(REPO))

from runner.emulators.gemini import GeminiEmulator  # noqa: E402
from runner.emulators.openai import OpenAIEmulator  # noqa: E402
from runner.errors import StateError  # noqa: E402
from runner.providers import gemini, openai  # noqa: E402
from runner.state import LocalBackend  # noqa: E402

KEY_ENV = "TUNER_CRASH_BENCH_KEY"
KEY = "crash-bench-key"
TRAIN = REPO / "data" / "sentiment" / "train.jsonl"
RUN_TIMEOUT = 180.0  # seconds; a run to completion takes a few
ACTIVE = "ACTIVE"


# -- the providers ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Held:
    """A tuned model, or a job still running, that the emulator holds: its status (ACTIVE once the model exists,
    else the job's) and every id state may know it by."""

    status: str
    ids: frozenset[str]


class GeminiCloud:
    """The Gemini API emulator. Tuned model ids are chosen by tuner (deterministic): a model is its own identity."""

    name = "gemini"
    emulator_class = GeminiEmulator
    endpoint_env = gemini.ENDPOINT_ENV
    base_model = "models/gemini-1.5-flash-001-tuning"
    hyperparameters = "batch_size: 16, learning_rate: 0.5"

    def __init__(self, emulator: GeminiEmulator):
        self.emulator = emulator

    def settings(self) -> list[str]:
        return [f"endpoint: {self.emulator.url}"]

    def creates_by_identity(self) -> dict[str, int]:
        return {f"tunedModels/{i}": n for i, n in self.emulator.stats["creates_by_id"].items()}

    def held(self) -> dict[str, Held]:
        """tuned model id -> its state (CREATING, ACTIVE, FAILED), for every model the emulator holds."""
        held, token = {}, ""
        while True:
            url = f"{self.emulator.url}/v1beta/tunedModels?pageSize=1000" + (f"&pageToken={token}" if token else "")
            request = urllib.request.Request(url, headers={"x-goog-api-key": KEY})
            with urllib.request.urlopen(request, timeout=30) as response:
                page = json.load(response)
            held.update({m["name"]: Held(m["state"], frozenset([m["name"]])) for m in page.get("tunedModels", [])})
            token = page.get("nextPageToken")
            if not token:
                return held


class OpenAICloud:
    """The OpenAI emulator. A job gets no client-chosen id: its metadata carries tuner's identity (`tuner_id`), the
    job id becomes state's handle once the create answers, and the `ft:` model id its tuned_model_id once it
    succeeds. Read from the emulator's records: one consistent look that trains nothing."""

    name = "openai"
    emulator_class = OpenAIEmulator
    endpoint_env = openai.BASE_URL_ENV
    base_model = "gpt-4o-mini-2024-07-18"
    hyperparameters = "batch_size: 16, learning_rate_multiplier: 1.0"
    finished = ("succeeded", "failed", "cancelled")

    def __init__(self, emulator: OpenAIEmulator):
        self.emulator = emulator

    def settings(self) -> list[str]:
        return [f"base_url: {self.emulator.url}/v1"]

    def creates_by_identity(self) -> dict[str, int]:
        """Jobs created per tuner id (a job without one counts under its own id)."""
        return dict(Counter(_tuner_id(job) or job["id"] for job in self.emulator.job_records()))

    def held(self) -> dict[str, Held]:
        """`ft:` model id -> ACTIVE for every model that exists, job id -> its status for every unfinished job."""
        held = {}
        for job in self.emulator.job_records():
            ids = frozenset(filter(None, (job["id"], _tuner_id(job), job["fine_tuned_model"])))
            if job["model_exists"]:
                held[job["fine_tuned_model"]] = Held(ACTIVE, ids)
            elif job["status"] not in self.finished:
                held[job["id"]] = Held(job["status"], ids)
        return held


def _tuner_id(job: dict) -> str | None:
    return (job["metadata"] or {}).get(openai.META_ID)


CLOUDS = {cloud.name: cloud for cloud in (GeminiCloud, OpenAICloud)}
Cloud = GeminiCloud | OpenAICloud


def make_emulator(provider: str, job_seconds: float, quota: int = 5,
                  clock: Callable[[], float] | None = None) -> GeminiEmulator | OpenAIEmulator:
    """PROVIDER's emulator, not started yet, accepting KEY; on CLOCK's time when given (default: real time)."""
    timing = {"clock": clock} if clock is not None else {}
    return CLOUDS[provider].emulator_class(job_seconds=job_seconds, api_keys={KEY}, quota=quota, **timing)


# -- the project under test ----------------------------------------------------------------------------


class CrashLab:
    """A throwaway project of one provider's models over its emulator, and the tuner processes run against it."""

    def __init__(self, root: Path, cloud: Cloud, models: int = 8, poll_seconds: float = 0.05,
                 max_concurrent_jobs: int = 5):
        self.root = root
        self.cloud = cloud
        self.emulator = cloud.emulator
        self.poll_seconds = poll_seconds
        self.max_concurrent_jobs = max_concurrent_jobs
        self.epochs = {f"task-{i}": 2 + i % 3 for i in range(models)}
        self.processes = 0
        (root / "data").mkdir(parents=True, exist_ok=True)
        shutil.copy(TRAIN, root / "data" / "train.jsonl")
        self.write_spec()

    @property
    def names(self) -> set[str]:
        return set(self.epochs)

    @property
    def state_path(self) -> Path:
        return self.root / "state" / "default.json"

    @property
    def lock_path(self) -> Path:
        return self.root / "state" / "default.json.lock"

    def write_spec(self) -> None:
        models = "".join(f"  {name}:\n    hyperparameters: {{epoch_count: {epochs}}}\n"
                         for name, epochs in sorted(self.epochs.items()))
        cloud = self.cloud
        settings = [f"api_key_env: {KEY_ENV}", *cloud.settings(), f"poll_seconds: {self.poll_seconds}",
                    f"max_concurrent_jobs: {self.max_concurrent_jobs}"]
        spec = (f"providers:\n  {cloud.name}:\n" + "".join(f"    {line}\n" for line in settings) +
                f"defaults:\n  provider: {cloud.name}\n  base_model: {cloud.base_model}\n"
                f"  display_name: Crash bench\n  dataset: {{train: ../data/train.jsonl}}\n"
                f"  hyperparameters: {{{cloud.hyperparameters}}}\n"
                f"models:\n{models}")
        path = self.root / "configs" / "models.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(spec, encoding="utf-8")

    def bump(self, name: str) -> None:
        """A new epoch_count, never used before: a new fingerprint, so the model must be replaced."""
        self.epochs[name] += 1
        self.write_spec()

    # -- processes ----------------------------------------------------------------------------------------
    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in ("TUNER_WORKSPACE", self.cloud.endpoint_env)}
        env.update({KEY_ENV: KEY, "NO_COLOR": "1", "PYTHONWARNINGS": "ignore",
                    "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))})
        return env

    def start(self, *args: str) -> subprocess.Popen:
        """Output goes to logs/NNN.log (see `output`): a pipe nobody reads could block a chatty apply."""
        self.processes += 1
        log_path = self.root / "logs" / f"{self.processes:03d}.log"
        log_path.parent.mkdir(exist_ok=True)
        with open(log_path, "wb") as log:
            process = subprocess.Popen([sys.executable, "-m", "runner", *args], cwd=self.root, env=self.env(),
                                       stdout=log, stderr=subprocess.STDOUT)
        process.log_path = log_path
        return process

    def start_apply(self) -> subprocess.Popen:
        return self.start("apply", "--auto-approve")

    def run(self, *args: str, timeout: float = RUN_TIMEOUT) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "runner", *args], cwd=self.root, env=self.env(),
                              capture_output=True, text=True, timeout=timeout)

    # -- what state and the emulator hold -------------------------------------------------------------------
    def state(self) -> dict | None:
        """What state records, None before the first write: the file with its journal replayed, as every tuner
        command reads it. A file that is not strict JSON, or a state tuner refuses, raises ValueError."""
        try:
            raw = self.state_path.read_bytes()
        except FileNotFoundError:
            return None
        json.loads(raw, parse_constant=_refuse_constant)
        try:
            return json.loads(LocalBackend(self.state_path.parent, "default").read().to_json())
        except StateError as error:
            raise ValueError(f"{error.message} ({error.remedy})") from None

    def serial(self) -> int:
        """The recorded serial: 0 before the first write, or while the file is unreadable (checks report it)."""
        try:
            state = self.state()
        except ValueError:
            return 0
        return state["serial"] if state else 0

    def creates_by_identity(self) -> dict[str, int]:
        return self.cloud.creates_by_identity()

    def creates(self) -> int:
        """Jobs the emulator accepted so far."""
        return self.emulator.stats["creates"]

    def held(self) -> dict[str, Held]:
        return self.cloud.held()


def output(process: subprocess.Popen) -> str:
    """Everything a process started by CrashLab.start printed (stdout and stderr), once it has ended."""
    return process.log_path.read_text(encoding="utf-8", errors="replace")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not JSON")


# -- invariants ------------------------------------------------------------------------------------------


def recorded_ids(state: dict | None) -> set[str]:
    """Every tuned model id and job handle state knows: current, pending, deposed and retained instances."""
    ids = set()
    for record in (state or {}).get("models", {}).values():
        instances = [record, record.get("pending"), *record.get("deposed", []), *record.get("retained", [])]
        ids |= {i[key] for i in instances if i for key in ("tuned_model_id", "handle") if i.get(key)}
    return ids


def current_ids(state: dict | None) -> set[str]:
    return {r["tuned_model_id"] for r in (state or {}).get("models", {}).values() if "tuned_model_id" in r}


def retained_ids(state: dict | None) -> set[str]:
    """Replaced models kept for a restore (lifecycle.keep_previous): at the provider on purpose."""
    return {i["tuned_model_id"] for r in (state or {}).get("models", {}).values() for i in r.get("retained", [])}


def paid_twice(creates_by_identity: dict[str, int]) -> list[str]:
    return [f"{identity} was created {n} times" for identity, n in sorted(creates_by_identity.items()) if n != 1]


def orphans(held: dict[str, Held], state: dict | None) -> list[str]:
    known = recorded_ids(state)
    return [f"{key} exists at the emulator but not in state" for key, thing in sorted(held.items())
            if not thing.ids & known]


def unfinished(names: set[str], state: dict | None) -> list[str]:
    """Models missing, not active, or with a job pending or a superseded model still to delete."""
    models = (state or {}).get("models", {})
    problems = [f"{name} is not in state" for name in sorted(names - set(models))]
    problems += [f"{name} is in state but no longer in the configs" for name in sorted(set(models) - names)]
    for name, record in sorted(models.items()):
        if record.get("status") != "active":
            problems.append(f"{name} is {record.get('status')!r} in state, not 'active'")
        if record.get("pending"):
            problems.append(f"{name} still has a pending job {record['pending']['tuned_model_id']}")
        if record.get("deposed"):
            problems.append(f"{name} still has deposed models {[d['tuned_model_id'] for d in record['deposed']]}")
    return problems


def leaks(held: dict[str, Held], state: dict | None) -> list[str]:
    """After a run to completion the emulator holds exactly the current models, all ACTIVE, and the retained ones
    (no job still running)."""
    wanted = current_ids(state)
    problems = [f"{key} leaked: the emulator still holds it"
                for key in sorted(set(held) - wanted - retained_ids(state))]
    problems += [f"{tuned_id} is in state but missing at the emulator" for tuned_id in sorted(wanted - set(held))]
    problems += [f"{tuned_id} is {held[tuned_id].status} at the emulator" for tuned_id in sorted(wanted & set(held))
                 if held[tuned_id].status != ACTIVE]
    return problems


@dataclass
class Ledger:
    """Checks the invariants after each run, remembering the highest serial seen and every violation."""

    serial: int = 0
    violations: list[str] = field(default_factory=list)

    def check(self, lab: CrashLab, label: str, completed: subprocess.CompletedProcess | None = None) -> list[str]:
        """The invariants after any run; with `completed` (a run to completion), the end-state ones too."""
        problems: list[str] = []
        try:
            state = lab.state()
        except ValueError as error:
            state, problems = None, [f"the state file does not parse: {error}"]
        if state is not None:
            if state["serial"] < self.serial:
                problems.append(f"serial went back from {self.serial} to {state['serial']}")
            self.serial = max(self.serial, state["serial"])
        held = lab.held()
        problems += paid_twice(lab.creates_by_identity()) + orphans(held, state)
        if completed is not None:
            if completed.returncode != 0:
                problems.append(f"apply exited {completed.returncode}: {completed.stderr.strip()[-500:]}")
            problems += unfinished(lab.names, state) + leaks(held, state)
            plan = lab.run("plan", "--detailed-exitcode")
            if plan.returncode != 0:
                problems.append(f"plan --detailed-exitcode exited {plan.returncode}: {plan.stdout[-300:]}")
        self.violations += [f"{label}: {p}" for p in problems]
        return problems


# -- the loop -------------------------------------------------------------------------------------------


@dataclass
class Settings:
    rounds: int = 30
    seed: int = 0
    models: int = 8
    job_seconds: float = 1.5
    max_delay: float = 0.4  # seconds
    startup: float = 1.5  # seconds: launch kills land anywhere in this much plus max_delay
    max_write: int = 8  # "write" kills land right after one of the run's first max_write state writes
    max_create: int = 3  # "create" kills land right after the emulator accepted one of the run's first max_create jobs
    modes: tuple[str, ...] = ("launch", "write", "after-write", "create")
    complete_every: int = 5
    change_rate: float = 0.4  # share of rounds that first bump one to three models' epoch_count


# -- killing -------------------------------------------------------------------------------------------


@dataclass
class Kill:
    mode: str  # launch | write | after-write | create
    trigger: str  # when the kill was due: "launch+120ms", "write#3", "write#1+80ms", "create#2"
    killed: bool  # False when the apply finished before the trigger
    landed: str = ""  # what state recorded at the moment of the kill
    returncode: int | None = None
    output: str = ""  # what the apply printed, when it finished on its own


def choose_trigger(rng: random.Random, settings: Settings) -> tuple[str, int, float]:
    """(mode, n, delay in seconds): a delay after launch, right after the nth state write of the run, a delay
    after its first state write, or right after the emulator accepted the run's nth job (before its id can
    reach state: the moment a careless resume pays twice or loses the job)."""
    mode = rng.choice(settings.modes)
    bound = {"write": settings.max_write, "create": settings.max_create}.get(mode)
    nth = rng.randint(1, bound) if bound else 1
    delay = 0.0 if bound else rng.uniform(0, settings.max_delay)
    if mode == "launch":
        delay += rng.uniform(0, settings.startup)  # reach past the interpreter's start-up too
    return mode, nth, delay


def kill_at_random(lab: CrashLab, rng: random.Random, settings: Settings) -> Kill:
    """Start an apply and SIGKILL it at a random moment; reap it so its lock is recognisably stale."""
    mode, nth, delay = choose_trigger(rng, settings)
    trigger = {"launch": f"launch+{delay * 1000:.0f}ms", "write": f"write#{nth}",
               "after-write": f"write#1+{delay * 1000:.0f}ms", "create": f"create#{nth}"}[mode]
    count = lab.creates if mode == "create" else lab.serial
    base = count()
    process = lab.start_apply()
    due = mode == "launch" or _wait_until(lambda: count() >= base + nth, process)
    if due:
        deadline = time.monotonic() + delay
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.001)
    if process.poll() is not None:
        return Kill(mode, trigger, killed=False, returncode=process.wait(), output=output(process))
    process.send_signal(signal.SIGKILL)
    process.wait()  # reaped: a zombie's pid would still look alive to the stale-lock check
    try:
        landed = describe(lab.state())
    except ValueError:
        landed = "an unreadable state file"
    return Kill(mode, trigger, killed=True, landed=landed, returncode=process.returncode)


def _wait_until(condition, process: subprocess.Popen, timeout: float = RUN_TIMEOUT) -> bool:
    """Poll every millisecond; False when the process ended (or time ran out) first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.001)
    return False


def describe(state: dict | None) -> str:
    """What a kill interrupted, as state recorded it: jobs by status, superseded models awaiting deletion."""
    if state is None:
        return "before the first state write"
    models = state.get("models", {}).values()
    pending = Counter(r["pending"]["status"] for r in models if r.get("pending"))
    deposed = sum(len(r.get("deposed", [])) for r in models)
    parts = [f"{status}={n}" for status, n in sorted(pending.items())]
    parts += [f"deposed={deposed}"] if deposed else []
    return " ".join(parts) or "no job in flight"


@dataclass
class Report:
    rounds: int = 0
    kills: int = 0
    finished_before_kill: int = 0
    reruns: int = 0
    changes: int = 0
    creates: int = 0
    seconds: float = 0.0
    triggers: Counter = field(default_factory=Counter)
    landed: Counter = field(default_factory=Counter)
    violations: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"rounds {self.rounds}, kills {self.kills} (in {self.finished_before_kill} other rounds the apply "
                f"finished before its kill), re-runs to completion {self.reruns}, config changes {self.changes}, "
                f"jobs created {self.creates}, violations {len(self.violations)}, time {self.seconds:.1f}s")


class CrashLoop:
    def __init__(self, lab: CrashLab, settings: Settings, out=print):
        self.lab = lab
        self.settings = settings
        self.rng = random.Random(settings.seed)
        self.ledger = Ledger()
        self.report = Report()
        self.out = out
        self._idle = False  # the last run completed: the next round needs a config change to have work

    def run(self) -> Report:
        started = time.monotonic()
        for number in range(1, self.settings.rounds + 1):
            self.round(number)
            if number % self.settings.complete_every == 0 and number < self.settings.rounds:
                self.complete(f"round {number} re-run")
        self.complete("final apply")
        self.report.seconds = time.monotonic() - started
        self.report.creates = sum(self.lab.creates_by_identity().values())
        self.report.violations = list(self.ledger.violations)
        return self.report

    def round(self, number: int) -> None:
        self.report.rounds += 1
        changed = self.maybe_change_config()
        kill = kill_at_random(self.lab, self.rng, self.settings)
        label = f"round {number:>2}"
        self.report.triggers[kill.mode] += 1
        if kill.killed:
            self.report.kills += 1
            self.report.landed[kill.landed] += 1
            problems = self.ledger.check(self.lab, label)
            self._idle = False
            what = f"killed at {kill.trigger:<18} landed: {kill.landed}"
        else:
            self.report.finished_before_kill += 1
            completed = subprocess.CompletedProcess([], kill.returncode, "", kill.output)
            problems = self.ledger.check(self.lab, label, completed)
            self._idle = True
            what = f"finished (exit {kill.returncode}) before {kill.trigger}"
        self.say(label, f"{changed}{what}", problems)

    def maybe_change_config(self) -> str:
        if not self._idle and self.rng.random() >= self.settings.change_rate:
            return ""
        bumped = sorted(self.rng.sample(sorted(self.lab.names), self.rng.randint(1, min(3, len(self.lab.names)))))
        for name in bumped:
            self.lab.bump(name)
        self.report.changes += 1
        return f"bumped epoch_count of {', '.join(bumped)}; "

    def complete(self, label: str) -> None:
        self.report.reruns += 1
        started = time.monotonic()
        completed = self.lab.run("apply", "--auto-approve")
        took = time.monotonic() - started
        problems = self.ledger.check(self.lab, label, completed)
        self._idle = True
        self.say(label, f"ran to completion in {took:.1f}s (exit {completed.returncode})", problems)

    def say(self, label: str, what: str, problems: list[str]) -> None:
        verdict = "ok" if not problems else "VIOLATED:\n    " + "\n    ".join(problems)
        self.out(f"{label:<16} {what}  serial {self.ledger.serial}  {verdict}")


# -- command line ---------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> tuple[Settings, str, Path | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    defaults = Settings()
    parser.add_argument("--rounds", type=int, default=defaults.rounds, help="killed applies (default 30)")
    parser.add_argument("--seed", type=int, default=defaults.seed, help="seed of every random choice")
    parser.add_argument("--provider", choices=sorted(CLOUDS), default="gemini",
                        help="whose emulator the models are tuned on (default gemini)")
    parser.add_argument("--models", type=int, default=defaults.models, help="models in the project")
    parser.add_argument("--job-seconds", type=float, default=defaults.job_seconds,
                        help="how long each emulated tuning job runs (real time)")
    parser.add_argument("--max-delay-ms", type=float, default=defaults.max_delay * 1000,
                        help="upper bound of the random kill delay")
    parser.add_argument("--complete-every", type=int, default=defaults.complete_every,
                        help="run an apply to completion after every this many rounds")
    parser.add_argument("--change-rate", type=float, default=defaults.change_rate,
                        help="share of rounds that first bump one to three models' epoch_count")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the project here instead of a temp dir")
    args = parser.parse_args(argv)
    settings = Settings(rounds=args.rounds, seed=args.seed, models=args.models, job_seconds=args.job_seconds,
                        max_delay=args.max_delay_ms / 1000, complete_every=max(1, args.complete_every),
                        change_rate=args.change_rate)
    return settings, args.provider, args.workdir


def main(argv: list[str] | None = None) -> int:
    settings, provider, workdir = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="tuner-crash-") as scratch:
        root = workdir or Path(scratch) / "project"
        with make_emulator(provider, settings.job_seconds) as emulator:
            lab = CrashLab(root, CLOUDS[provider](emulator), models=settings.models)
            print(f"crash bench: {settings.models} {provider} models at {emulator.url}, project {root}, "
                  f"seed {settings.seed}", flush=True)
            report = CrashLoop(lab, settings, out=lambda line: print(line, flush=True)).run()
    print("\n" + report.summary())
    print("kill triggers: " + ", ".join(f"{k} {n}" for k, n in sorted(report.triggers.items())))
    print("kills landed:  " + "; ".join(f"{k}: {n}" for k, n in report.landed.most_common()))
    for violation in report.violations:
        print(f"VIOLATION {violation}")
    return 1 if report.violations else 0


if __name__ == "__main__":
    sys.exit(main())
