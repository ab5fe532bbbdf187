"""What every emulator shares, whatever API it speaks: the request, the routing table, the dispatch that turns an
error into its answer, reproducible fault injection, keyset paging, the --state file and the cache of really
trained models. An emulator adds only its own surface: its routes and resources, its error body (an ApiError
subclass, e.g. google.GoogleError) and its paging style around keyset_page (e.g. google.cursor_page's opaque
pageToken/nextPageToken, or an OpenAI-style `after`/`has_more`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

from runner import trainer
from runner.emulators.loopback import LoopbackServer, run_until_interrupted
from runner.errors import TunerError
from runner.fsutil import atomic_write

POISON_OUTPUT = "__tuner_emulator_fail__"  # a training example with this output makes its job fail

_log = logging.getLogger(__name__)
Item = TypeVar("Item")


class ApiError(Exception):
    """An error answer. Each emulator subclasses it with its API's body shape and status vocabulary; the base
    raises the four kinds every API has through these constructors."""

    http_code: int = 500

    def body(self) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def invalid(cls, message: str) -> ApiError:
        raise NotImplementedError

    @classmethod
    def not_found(cls, message: str) -> ApiError:
        raise NotImplementedError

    @classmethod
    def unavailable(cls) -> ApiError:
        raise NotImplementedError

    @classmethod
    def internal(cls, message: str) -> ApiError:
        raise NotImplementedError


@dataclass
class Request:
    """One parsed HTTP request. `attempt` is its identity and how many times it came, for fault draws."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: Any
    body: bytes
    errors: type[ApiError]
    params: dict[str, str] = field(default_factory=dict)  # the route's named path segments
    attempt: bytes = b""

    def json(self) -> dict[str, Any]:
        """The body as a JSON object ({} when empty); anything else is the API's invalid-argument error."""
        if not self.body.strip():
            return {}
        try:
            payload = json.loads(self.body)
        except ValueError as error:  # UnicodeDecodeError is one
            raise self.errors.invalid(f"Invalid JSON payload received. {error}") from None
        if not isinstance(payload, dict):
            raise self.errors.invalid("Invalid JSON payload received. Expected an object.")
        return payload

    def arg(self, name: str, default: str | None = None) -> str | None:
        """A query parameter (its last value when repeated, as proto JSON parsers take it)."""
        values = self.query.get(name)
        return values[-1] if values else default


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    name: str  # what the stats count its calls as
    handler: Callable[[Request], dict[str, Any] | bytes]


def routes(table: Iterable[tuple[str, str, str, Callable[[Request], dict[str, Any] | bytes]]]) -> list[Route]:
    """Compile (method, path pattern with named groups, call name, handler) rows."""
    return [Route(method, re.compile(pattern), name, handler) for method, pattern, name, handler in table]


class Faults:
    """Seeded faults decided by a hash of (seed, kind of fault, the request's identity, its attempt number), so a
    run is reproducible however threads interleave their requests. The attempt number counts identical requests
    (method, path, query without an API key, body): a retry of a faulted request draws afresh."""

    def __init__(self, seed: int, unavailable_rate: float, slow_rate: float, slow_seconds: float,
                 ambiguous_create_rate: float, count: Callable[[str], None]):
        self.seed, self.unavailable_rate, self.slow_rate = seed, unavailable_rate, slow_rate
        self.slow_seconds, self.ambiguous_create_rate = slow_seconds, ambiguous_create_rate
        self._count = count  # told "faults_unavailable", "faults_slow" or "ambiguous_creates" as each happens
        self._lock = threading.Lock()
        self._attempts: dict[bytes, int] = {}
        self._outage = 0  # requests still to answer 503, whatever the rates

    def fail_next(self, requests: int) -> None:
        with self._lock:
            self._outage = requests

    def attempt(self, request: Request) -> bytes:
        """The request's identity and attempt number, or b"" when no fault is ever drawn."""
        if not (self.unavailable_rate or self.slow_rate or self.ambiguous_create_rate):
            return b""
        query = sorted(f"{k}={v}" for k, values in request.query.items() for v in values if k != "key")
        digest = hashlib.sha256("\0".join([request.method, request.path, *query]).encode() + b"\0"
                                + request.body).digest()
        with self._lock:
            count = self._attempts[digest] = self._attempts.get(digest, 0) + 1
        return digest + count.to_bytes(8, "big")

    def inject(self, request: Request, errors: type[ApiError]) -> None:
        """Before the request is answered: maybe sleep, maybe answer 503 (then nothing happens)."""
        with self._lock:
            outage, self._outage = self._outage > 0, max(0, self._outage - 1)
        if outage or self._unlucky(request):
            self._count("faults_unavailable")
            raise errors.unavailable()

    def _unlucky(self, request: Request) -> bool:
        """Draw this attempt's faults: sleep if it is slow; True if it fails."""
        if not (self.unavailable_rate or self.slow_rate):
            return False
        if self._chance("slow", request.attempt) < self.slow_rate:
            self._count("faults_slow")
            time.sleep(self.slow_seconds)
        return self._chance("unavailable", request.attempt) < self.unavailable_rate

    def ambiguous(self, request: Request) -> bool:
        """Whether a create that succeeded is answered 503 all the same (the client cannot tell it happened)."""
        if self._chance("ambiguous", request.attempt) >= self.ambiguous_create_rate:
            return False
        self._count("ambiguous_creates")
        return True

    def draw(self, fault: str, request: Request) -> float:
        """A uniform draw in [0, 1) for this attempt of REQUEST, e.g. to choose which error a fault answers."""
        return self._chance(fault, request.attempt)

    def _chance(self, fault: str, attempt: bytes) -> float:
        """A uniform draw in [0, 1), fixed by the seed, the kind of fault and the request's attempt."""
        digest = hashlib.sha256(f"{self.seed}\0{fault}\0".encode() + attempt).digest()
        return int.from_bytes(digest[:8], "big") / 2**64


def keyset_page(items: Iterable[Item], position: Callable[[Item], int], after: int | None, size: int,
                newest_first: bool = False) -> tuple[list[Item], bool]:
    """(the page, whether more follow): the SIZE items after the cursor position AFTER in order of POSITION.
    Creates and deletes between pages shift nothing, since a cursor names an item, not an offset."""
    ordered = sorted(items, key=position, reverse=newest_first)
    if after is not None:
        ordered = [item for item in ordered if (position(item) < after if newest_first else position(item) > after)]
    return ordered[:size], len(ordered) > size


class TrainedModels:
    """The "really learns" cache: models trained by runner.trainer, the most recently used kept. Training happens
    once per key under the cache's own lock: an emulator that calls it outside its own lock serves other requests
    meanwhile."""

    def __init__(self, capacity: int = 8):  # a 50-label classifier holds ~50 MB of weights: keep the latest few
        self._capacity = capacity
        self._models: OrderedDict[str, trainer.TunedModel] = OrderedDict()
        self._training = threading.Lock()  # one training at a time; a second asker for the same key waits for it
        self._index = threading.Lock()  # held only briefly: forget() never waits for a training

    def get(self, key: str, train: Callable[[], trainer.TunedModel]) -> trainer.TunedModel:
        """The model trained under KEY, calling TRAIN (once) when it is not cached."""
        with self._training:
            with self._index:
                model = self._models.get(key)
                if model is not None:
                    self._models.move_to_end(key)
                    return model
            model = train()
            self.put(key, model)
            return model

    def put(self, key: str, model: trainer.TunedModel) -> None:
        with self._index:
            self._models[key] = model
            while len(self._models) > self._capacity:
                self._models.popitem(last=False)

    def forget(self, key: str) -> None:
        with self._index:
            self._models.pop(key, None)


class EmulatedTime:
    """The emulator's time: wall-clock epoch seconds moved by the injected clock, so timestamps look real and a fake
    clock's advances count. It never runs backwards across a restart: it resumes from the save, or from the wall
    clock if that is later (real downtime counts, as cloud jobs keep running meanwhile)."""

    def __init__(self, clock: Callable[[], float]):
        self._clock = clock
        self._wall0, self._clock0 = time.time(), clock()

    def __call__(self) -> float:
        return self._wall0 + (self._clock() - self._clock0)

    def resume(self, saved_at: float) -> None:
        self._wall0, self._clock0 = max(time.time(), saved_at), self._clock()


class StateFile:
    """The --state FILE: the emulator's whole state as JSON, replaced atomically after every change."""

    def __init__(self, path: Path | None, what: str):
        self.path, self._what = (Path(path) if path else None), what

    def save(self, snapshot: dict[str, Any]) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, json.dumps(snapshot, indent=1).encode("utf-8"))  # readers never see half a file

    def load(self, restore: Callable[[dict[str, Any]], None]) -> None:
        """Call RESTORE with the saved snapshot, if there is one; a file it cannot read stops the start."""
        if self.path is None or not self.path.exists():
            return
        try:
            restore(json.loads(self.path.read_text(encoding="utf-8")))
        except (ValueError, KeyError, TypeError) as error:
            raise TunerError(f"{self.path}: not a {self._what} state file ({error!r})",
                             remedy="delete it to start empty") from error


class Emulator(LoopbackServer):
    """An API emulator: parses each request, draws its faults, authenticates it, routes it and turns an ApiError
    into the API's own error answer. GET /_emulator/stats serves `stats` (no auth, never faulted)."""

    errors: type[ApiError] = ApiError
    title = "API emulator"  # what `tuner emulator ...` prints, and what a foreign --state file is said not to be for

    def __init__(self, port: int = 0, *, job_seconds: float = 5.0, fault_rate: float = 0.0, seed: int = 0,
                 quota: int = 5, clock: Callable[[], float] = time.monotonic, persist_path: Path | None = None,
                 slow_rate: float = 0.0, fault_delay_seconds: float = 2.0, ambiguous_create_rate: float = 0.0):
        """JOB_SECONDS: how long a tuning job runs; QUOTA: concurrent jobs (per the API's unit); CLOCK: drives jobs
        (tests inject a fake); PERSIST_PATH: the --state file. Faults, from SEED: 503 with probability FAULT_RATE,
        a FAULT_DELAY_SECONDS pause with probability SLOW_RATE, a create answered 503 after it succeeded with
        probability AMBIGUOUS_CREATE_RATE (for the emulators that call _ambiguous)."""
        super().__init__(port)
        self.job_seconds, self.fault_rate, self.seed, self.quota = job_seconds, fault_rate, seed, quota
        self._now = EmulatedTime(clock)
        self._lock = threading.RLock()
        self._faults = Faults(seed, fault_rate, slow_rate, fault_delay_seconds, ambiguous_create_rate, self._count)
        self._state_file = StateFile(persist_path, self.title)
        self._routes: list[Route] = []  # filled by the subclass

    @property
    def persist_path(self) -> Path | None:
        return self._state_file.path

    @property
    def stats(self) -> dict[str, Any]:
        raise NotImplementedError

    def fail_next(self, requests: int) -> None:
        """A brief outage: the next REQUESTS requests answer 503, whatever the fault rate."""
        self._faults.fail_next(requests)

    # -- hooks -------------------------------------------------------------------------------------------------

    def _count(self, counter: str) -> None:
        """Count an event ("faults_unavailable", ...) in the stats."""

    def _count_error(self, error: ApiError) -> None:
        """Count an error answer in the stats."""

    def _authenticate(self, request: Request) -> None:
        """Refuse a request without valid credentials (the API's error)."""

    def _admit(self, request: Request) -> None:
        """What a request meets before routing: faults first, then authentication (as at a Google frontend)."""
        self._faults.inject(request, self.errors)
        self._authenticate(request)

    def _dispatch(self, route: Route, request: Request) -> dict[str, Any] | bytes:
        self._count(route.name)
        return route.handler(request)

    # -- the request path --------------------------------------------------------------------------------------

    def handle_http(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any] | bytes]:
        """Answer one HTTP request: (status, JSON body, or bytes for a download). Never raises; thread-safe."""
        url = urlsplit(target)
        if url.path.startswith("/_emulator/"):
            if method == "GET" and url.path == "/_emulator/stats":
                return 200, self.stats
            return 404, self.errors.not_found(f"No emulator endpoint {method} {url.path}.").body()
        self._count("requests")
        request = Request(method, url.path, parse_qs(url.query, keep_blank_values=True), headers, body, self.errors)
        try:
            request.attempt = self._faults.attempt(request)
            self._admit(request)
            route = self._route(request)
            return 200, self._dispatch(route, request)
        except ApiError as error:
            self._count_error(error)
            return error.http_code, error.body()
        except Exception as error:  # a bug here must still answer like the API, and say what broke
            _log.exception("emulator error on %s %s", method, target)
            return 500, self.errors.internal(f"Internal error encountered: {error!r}").body()

    def _route(self, request: Request) -> Route:
        for route in self._routes:
            match = route.pattern.fullmatch(request.path)
            if match and route.method == request.method:
                request.params = {k: v for k, v in match.groupdict().items() if v is not None}
                return route
        raise self.errors.not_found(f"The requested URL {request.path} was not found on this server "
                                    f"({request.method}).")

    def _ambiguous(self, request: Request) -> bool:
        return self._faults.ambiguous(request)

    # -- persistence ---------------------------------------------------------------------------------------------

    def _save(self) -> None:
        """Write the whole state. Called with the lock held, after every mutation."""
        if self._state_file.path is not None:
            self._state_file.save({"saved_at": self._now(), **self._snapshot()})

    def _load(self) -> None:
        self._state_file.load(self._resume)

    def _resume(self, snapshot: dict[str, Any]) -> None:
        self._now.resume(float(snapshot["saved_at"]))
        self._restore(snapshot)

    def _snapshot(self) -> dict[str, Any]:
        """The whole state as JSON; times in it are the emulator's (`self._now()`)."""
        raise NotImplementedError

    def _restore(self, snapshot: dict[str, Any]) -> None:
        raise NotImplementedError

    @classmethod
    def serve(cls, port: int = 0, job_seconds: float = 5.0, fault_rate: float = 0.0, seed: int = 0,
              persist_path: Path | None = None) -> None:
        """Run the emulator in the foreground until Ctrl-C (`tuner emulator ...`)."""
        run_until_interrupted(cls(port=port, job_seconds=job_seconds, fault_rate=fault_rate, seed=seed,
                                  persist_path=persist_path), cls.title)
