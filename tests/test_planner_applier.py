"""The pure planner (plan() over hand-built PlannedModels and States: no I/O) and the applier in process
(Applier over a fake Provider implementing the protocol and an in-memory state writer)."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from runner.apply import Applier, Clock
from runner.datasets import DatasetRef
from runner.plan import CREATE, DELETE, NOOP, REPLACE, UPDATE, Action, plan
from runner.planned import PlannedModel, TrainingEstimate
from runner.providers.base import ACTIVE, Capabilities, JobStatus
from runner.providers.planning import REPLACED_UNLESS_RENAMED
from runner.state.model import Instance, ModelRecord, State

TRAIN = DatasetRef(Path("/p/data/train.jsonl"), "data/train.jsonl", "text_input", "output", "1|2|3|4", "a" * 64, 60)


def planned(name: str = "reviews", epochs: int = 2, examples: int = 60, requires_replace=REPLACED_UNLESS_RENAMED,
            **changes) -> PlannedModel:
    fields = dict(name=name, provider="fake", base_model="base-1", display_name="Reviews", description="",
                  train=TRAIN if examples == 60 else DatasetRef(TRAIN.path, TRAIN.display, "text_input", "output",
                                                                 "1", "b" * 64, examples),
                  validation=None, input_key="text_input", output_key="output",
                  hyperparameters={"epoch_count": epochs}, prevent_destroy=False, source="configs/a.yaml:1",
                  requires_replace=requires_replace, estimate=TrainingEstimate(1000, epochs))
    return PlannedModel(**{**fields, **changes})


def recorded(model: PlannedModel, **changes) -> State:
    """A state whose current instance of `model` is exactly what apply would have recorded, then `changes`."""
    instance = Instance(tuned_model_id=f"{model.name}-1", provider=model.provider, fingerprint=model.fingerprint,
                        status="active", base_model=model.base_model, display_name=model.display_name,
                        description=model.description, hyperparameters=dict(model.hyperparameters),
                        dataset=model.dataset_record(), created_at="t0", updated_at="t0",
                        prevent_destroy=model.prevent_destroy)
    for key, value in changes.items():
        setattr(instance, key, value)
    return State(lineage="lineage-1", serial=3, models={model.name: ModelRecord(current=instance)})


# -- the planner ----------------------------------------------------------------------------------------------

def test_actions_know_the_symbol_plan_output_shows_and_the_word_plan_files_record():
    assert [(a.value, a.symbol) for a in Action] == [("create", "+"), ("replace", "-/+"), ("update", "~"),
                                                    ("delete", "-"), ("noop", " "), ("import", "<-"), ("restore", "<=")]


def test_a_new_model_is_created_with_its_planned_attributes_as_after():
    model = planned()

    (change,) = plan([model], State.new("default")).changes

    assert (change.action, change.before, change.after, change.planned) == (CREATE, None, model.attributes, model)
    assert change.fingerprint == model.fingerprint


def test_a_model_recorded_as_planned_is_a_noop():
    model = planned()

    (change,) = plan([model], recorded(model)).changes

    assert change.action == NOOP and change.before == change.after == model.attributes


def test_a_rename_is_updated_in_place_from_before_to_after():
    model = planned()

    (change,) = plan([model], recorded(model, display_name="Old")).changes

    assert change.action == UPDATE
    assert (change.before["display_name"], change.after["display_name"]) == ("Old", "Reviews")
    assert [(f.path, f.forces_replacement) for f in change.fields] == [("display_name", False)]


def test_the_planner_replaces_for_exactly_the_paths_the_provider_says_require_it():
    model = planned(requires_replace=REPLACED_UNLESS_RENAMED | {"display_name"})

    (change,) = plan([model], recorded(model, display_name="Old")).changes

    assert change.action == REPLACE
    assert [(f.path, f.forces_replacement) for f in change.fields] == [("display_name", True)]


def test_a_model_no_longer_planned_is_deleted_from_its_recorded_before():
    model = planned()
    state = recorded(model)

    (change,) = plan([], state).changes

    assert (change.action, change.after, change.planned) == (DELETE, None, None)
    assert change.before == state.models["reviews"].current.attributes()


# -- the applier ------------------------------------------------------------------------------------------------

class FakeProvider:
    """A test double of the Provider protocol: every job succeeds at once; calls are recorded."""

    name = "fake"

    def __init__(self):
        self.capabilities = Capabilities(max_concurrent_jobs=1, poll_seconds=0.0)
        self.submitted: list[PlannedModel] = []
        self.updated: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []

    def preflight(self) -> None:
        pass

    def tuned_model_id(self, model, owner) -> str:
        return f"{model.name}-{owner.tag}-{model.fingerprint[:10]}"

    def submit(self, model, tuned_model_id: str, owner) -> str:
        self.submitted.append(model)
        return f"jobs/{tuned_model_id}"

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        return JobStatus(ACTIVE)

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None:
        self.updated.append((tuned_model_id, display_name, description))

    def delete(self, tuned_model_id: str, handle: str | None, owner) -> None:
        self.deleted.append(tuned_model_id)

    def info(self) -> dict:
        return {"sdk": "fake"}


class FakeProviders(dict):
    def preflight(self, names) -> None:
        for name in set(names):
            self[name].preflight()


class InstantClock(Clock):
    def now(self) -> str:
        return "2026-12-01T00:00:00+00:00"

    def wait(self, seconds: float) -> bool:
        return self.stop.is_set()


class Recorder:
    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def event(self, name: str, status: str, detail: str = "", elapsed: float | None = None,
              progress: float | None = None, epoch: int | None = None, epochs: int | None = None,
              loss: float | None = None) -> None:
        with self._lock:
            self.events.append((name, status))


def run(the_plan, state: State) -> tuple[FakeProvider, list[bytes]]:
    provider, writes = FakeProvider(), []

    def write(written: State) -> None:  # in memory, as a backend would: a new version each time
        written.next_version()
        writes.append(written.to_json())

    result = Applier(state, write, FakeProviders(fake=provider), Recorder(), clock=InstantClock(),
                     parallelism=1).run(the_plan)
    assert result.failures == {} and not result.interrupted
    return provider, writes


def test_apply_submits_the_planned_job_and_state_records_after():
    model = planned()
    state = State.new("default")
    the_plan = plan([model], state)

    provider, writes = run(the_plan, state)

    assert provider.submitted == [model]
    current = state.models["reviews"].current
    assert (current.status, current.fingerprint) == ("active", model.fingerprint)
    assert current.attributes() == the_plan.changes[0].after
    assert writes and state.serial == len(writes)


def test_apply_of_an_update_sends_and_records_after_without_a_new_job():
    model = planned(display_name="New name", prevent_destroy=True)
    state = recorded(planned())

    provider, _ = run(plan([model], state), state)

    assert provider.submitted == [] and provider.updated == [("reviews-1", "New name", "")]
    assert state.models["reviews"].current.attributes() == model.attributes


def test_apply_starts_the_jobs_the_provider_expects_longest_first():
    models = [planned("short", epochs=1), planned("long", epochs=9), planned("bigger", epochs=2, examples=400)]
    state = State.new("default")

    provider, _ = run(plan(models, state), state)

    assert [m.name for m in provider.submitted] == ["bigger", "long", "short"]  # 400 x 2, 60 x 9, 60 x 1


def test_apply_of_a_delete_removes_the_model_and_its_record():
    state = recorded(planned())

    provider, _ = run(plan([], state), state)

    assert provider.deleted == ["reviews-1"] and state.models == {}


def test_a_saved_plan_rebuilds_the_planned_model_it_recorded(tmp_path):
    model = planned(gate={"min_accuracy": 0.5}, eval_set=TRAIN)

    rebuilt = PlannedModel.from_record(json.loads(json.dumps(model.to_record())), tmp_path)

    assert rebuilt.to_record() == model.to_record()
    assert (rebuilt.attributes, rebuilt.fingerprint) == (model.attributes, model.fingerprint)
    assert rebuilt.train.path == tmp_path / "data" / "train.jsonl"


class WitnessProvider(FakeProvider):
    """Reads state, as another process would, at the moment each job is paid for."""

    def __init__(self, backend):
        super().__init__()
        self.backend = backend
        self.seen_at_submit: list[tuple[str | None, bytes]] = []

    def submit(self, model, tuned_model_id: str, owner) -> str:
        pending = self.backend.read().models[model.name].pending
        self.seen_at_submit.append((pending and pending.status, self.backend.path.read_bytes()))
        return super().submit(model, tuned_model_id, owner)


def test_apply_records_each_transition_in_the_journal_and_leaves_the_state_file_to_the_end(tmp_path):
    """Bytes written grow with the changes, not the fleet: no full write while jobs run, yet every intent is
    durable (a fresh reader sees it) before the provider is called."""
    from runner.state import LocalBackend

    fleet = [planned(f"model-{i}") for i in range(40)]
    backend = LocalBackend(tmp_path, "default")
    with backend.locked("apply") as state:
        for model in fleet:
            state.models[model.name] = recorded(model).models[model.name]
        backend.write(state)
    before = backend.path.read_bytes()
    changed = [planned(f"model-{i}", epochs=5) for i in range(3)]
    provider = WitnessProvider(LocalBackend(tmp_path, "default"))
    with backend.locked("apply") as state:
        applier = Applier(state, backend.write, FakeProviders(fake=provider), Recorder(), clock=InstantClock(),
                          parallelism=1, record=backend.write_record)
        result = applier.run(plan(changed + fleet[3:], state))
        assert result.failures == {}
        assert backend.path.read_bytes() == before  # three jobs, three or more transitions each: all journaled
        journal_size = backend.journal_path.stat().st_size
        backend.compact(state)
    assert provider.seen_at_submit == [("submitting", before)] * 3
    assert journal_size < len(before) / 2
    assert not backend.journal_path.exists()
    assert backend.path.read_bytes() == state.to_json()
    assert {name: r.current.fingerprint for name, r in backend.read().models.items()} == \
        {m.name: m.fingerprint for m in changed + fleet[3:]}
