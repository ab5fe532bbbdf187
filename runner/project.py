"""The engine behind each CLI command: one function per command, plain data in and out.

The CLI parses options and renders; everything it shows comes from here.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from runner.attributes import fingerprint
from runner.clock import Clock
from runner.datasets import DatasetScanner, HashCache
from runner.desired import Resolution, resolve
from runner.errors import PlanError, ProviderError, StateError, TunerError
from runner.fsutil import atomic_write
from runner.identity import owner_tag
from runner.plan import CREATE, REPLACE, Observation, Plan, instances_of, plan, settings_changes, unmanaged
from runner.planfile import check_fresh, conforming, plan_from_dict, read_plan, write_plan
from runner.planned import PlannedModel
from runner.providers import Providers, either
from runner.refresh import refresh_state
from runner.retry import RetryPolicy
from runner.spec import Config, load_config
from runner.state import Instance, LocalBackend, State
from runner.state.base import StateBackend

if TYPE_CHECKING:
    from runner.apply import ApplyResult, Reporter

WORKSPACE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
OFFLINE_REMEDY = "pass --refresh=false for a plan from the recorded state alone (no provider is called)"


@dataclass
class Project:
    root: Path
    config_dir: Path
    workspace: str = "default"
    allow_small_dataset: bool = False
    clock: Clock = field(default_factory=Clock, repr=False)  # wall time, and the waits of refresh's retries
    _config: Config | None = field(default=None, repr=False)
    _providers: Providers | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: str | None, workspace: str | None, allow_small_dataset: bool = False) -> Project:
        root = Path.cwd().resolve()
        workspace = workspace or os.environ.get("TUNER_WORKSPACE") or "default"
        if not WORKSPACE_NAME.match(workspace):
            raise TunerError(f"invalid workspace name {workspace!r}",
                             remedy="use letters, digits, '.', '_' and '-' (at most 64 characters)")
        config_dir = (root / (config or "configs")).resolve()
        return cls(root, config_dir, workspace, allow_small_dataset)

    @classmethod
    def open_for_plan(cls, plan_file: Path, config: str | None, workspace: str | None,
                      allow_small_dataset: bool = False) -> Project:
        """A saved plan records its config directory and workspace; given again, they must be the same."""
        document = read_plan(plan_file)
        recorded = document["config_dir"]
        root = Path.cwd().resolve()
        if Path(recorded).is_absolute() or not (root / recorded).resolve().is_relative_to(root):
            raise PlanError(f"{plan_file}: corrupt plan file: config_dir {recorded!r} is outside the project",
                            remedy="run `tuner plan --out FILE` again from the project root")
        return cls.open(config or recorded, workspace or document["workspace"], allow_small_dataset)

    # -- inputs ----------------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self._load_config()
        return self._config

    def _load_config(self, on_file=None) -> Config:
        return load_config(self.config_dir, self.root, self.root / ".tuner" / "cache" / "specs.json", on_file)

    @property
    def config_relative(self) -> str:
        """The config directory as a plan file records it: relative to the project root, inside it."""
        if not self.config_dir.is_relative_to(self.root):
            raise PlanError(f"--config {self.config_dir} is outside the project ({self.root}): a saved plan "
                            f"records its config directory relative to the project root",
                            remedy="keep the configs inside the project, or apply without a saved plan")
        return self.config_dir.relative_to(self.root).as_posix()

    @property
    def providers(self) -> Providers:
        if self._providers is None:
            self._providers = Providers(self.root, self.config.providers)
        return self._providers

    @property
    def backend_kind(self) -> str:
        return next(iter(self.config.backend), "local")

    def backend(self, kind: str | None = None, gcs: dict | None = None) -> StateBackend:
        """The configured state backend (local file unless the specs say `backend: {gcs: ...}`); `gcs` names
        a GCS location the specs do not (yet) name."""
        kind = kind or self.backend_kind
        if kind == "gcs":
            settings = gcs or self.config.backend.get("gcs")
            if not settings:
                raise StateError("no GCS backend is configured",
                                 remedy="add `backend: {gcs: {bucket: NAME, prefix: PATH}}` to a spec file, or "
                                        "pass --bucket NAME [--prefix PATH]")
            from runner.state.gcs import GcsBackend

            return GcsBackend(settings["bucket"], settings.get("prefix", ""), self.workspace)
        return LocalBackend(self.root / "state", self.workspace, display_root=self.root)

    def migrate_state(self, to: str, lock_timeout: float = 0.0, gcs: dict | None = None) -> tuple[str, str, State]:
        """Copy the workspace's state from the other backend into `to` (gcs or local), keeping its lineage."""
        from runner.state.migrate import migrate

        source, target = self.backend("local" if to == "gcs" else "gcs", gcs), self.backend(to, gcs)
        return source.display, target.display, migrate(source, target, lock_timeout)

    def read_state(self, backend: StateBackend) -> State:
        """The configured backend's state, read without the lock (plan, show), checked as _check_home says."""
        state = backend.read()
        self._check_home(state, backend)
        return state

    @contextmanager
    def locked_state(self, operation: str, lock_timeout: float) -> Iterator[tuple[StateBackend, State]]:
        """The configured backend locked for `operation` and its state read under the lock (checked as
        _check_home says); the lock is released on every path out, Ctrl-C included."""
        backend = self.backend()
        with backend.locked(operation, lock_timeout) as state:
            self._check_home(state, backend)
            yield backend, state

    def _check_home(self, state: State, backend: StateBackend) -> None:
        """Refuse a state when this workspace's state lives elsewhere (Terraform's "backend configuration
        changed"): a plan against an empty or stale backend would re-pay for every model. With GCS configured
        this costs one stat of the local file; with the local default, nothing."""
        if state.moved_to:
            raise StateError(f"the state of workspace {self.workspace!r} in {backend.display} was migrated to "
                             f"{state.moved_to}, but the specs still name {backend.display}",
                             remedy=f"name the new backend in a spec file ({_backend_block(state.moved_to)}), or "
                                    f"bring the state back with `tuner state migrate --to {self.backend_kind}`")
        if self.backend_kind != "local":
            local = self.backend("local")
            if local.exists():
                _check_left_behind(state, backend.display, local.read(), local.display, self.workspace)

    def resolve(self) -> Resolution:
        cache = HashCache(self.root / ".tuner" / "cache" / "datasets.json")
        scanner = DatasetScanner(self.root, cache)
        try:
            if self._config is None:  # datasets start scanning while the rest of the specs are read
                self._config = self._load_config(on_file=scanner.add)
            return resolve(self.config, self.providers, scanner, self.allow_small_dataset)
        finally:
            scanner.close()

    # -- commands --------------------------------------------------------------------------------------
    def validate(self) -> Resolution:
        return self.resolve()

    def plan(self, targets: list[str] | None = None, refresh: bool = True) -> tuple[Plan, Resolution]:
        resolution = self.resolve()
        state = self.read_state(self.backend())
        _check_targets(targets, resolution.models, state)
        observed = self.observe(state, OFFLINE_REMEDY) if refresh else None
        return self._plan(resolution.models, state, observed, targets), resolution

    def _plan(self, models, state, observed, targets) -> Plan:
        settings = self.settings({m.provider for m in models}, state)
        return self._priced(plan(models, state, observed, targets, settings))

    def settings(self, providers: Iterable[str], state: State) -> dict[str, dict]:
        """provider -> the settings it records, for these providers and those state uses; never a secret."""
        names = set(providers) | {i.provider for r in state.models.values() for i in instances_of(r)}
        current = {name: self._settings_of(name) for name in sorted(names)}
        return {name: settings for name, settings in current.items() if settings}

    def _settings_of(self, provider: str) -> dict:
        return {key: value for key, value in self.providers[provider].recorded_settings().items() if value is not None}

    def _applied_settings(self, state: State, provider: str) -> dict:
        """Commands that call a provider directly (import, predict, eval) never do so with settings changed
        since the last apply: a plan must show them first. Returns the provider's current settings."""
        current = self._settings_of(provider)
        recorded = state.providers.get(provider)
        if recorded is not None and recorded != current:
            raise PlanError(f"the settings of provider {provider} changed since the last apply",
                            remedy="review them with `tuner plan` and apply that first")
        return current

    def _priced(self, the_plan: Plan) -> Plan:
        """Attach the estimated training cost of every job the plan would pay for, and enforce the budget."""
        paid = [c for c in the_plan.changes if c.action in (CREATE, REPLACE) and not c.resume and c.planned]
        if not paid:
            return the_plan
        from runner.cost import load_pricing, overrides_from_settings, training_cost_for

        pricing = load_pricing(overrides_from_settings(self.config.providers))
        costs = {}
        for change in paid:
            estimate = training_cost_for(change.planned, pricing)
            costs[change.name] = {"usd": estimate.usd, "training_tokens": estimate.training_tokens,
                                  "summary": estimate.summary()}
        priced = replace(the_plan, costs=costs, pricing_as_of=pricing.as_of)
        _check_budget(priced, self.config.budget.get("max_plan_cost_usd"))
        return priced

    def save_plan(self, path: Path, the_plan: Plan, resolution: Resolution, targets: list[str] | None) -> None:
        write_plan(path, the_plan, self.workspace, self.config_relative, resolution.models, targets or [])

    def observe(self, state: State, offline_remedy: str | None = None, clock: Clock | None = None) -> Observation:
        """One list call per provider in use, not one call per model. A provider whose settings differ from
        those recorded is not asked: its credentials go where new settings point only once a plan showing
        them is applied. Every asked provider's configuration is checked first, so one run names every
        missing credential."""
        names = {rec.current.provider for rec in state.models.values() if rec.current}
        names |= {m.provider for m in self.config.models}
        changed = {c.provider for c in settings_changes(state.providers, self.settings(names, state))}
        asked = sorted(names - changed)
        self.providers.preflight(asked, offline_remedy)
        try:
            return Observation({name: self._listed(name, clock or self.clock) for name in asked},
                               skipped=tuple(sorted(names & changed)))
        except ProviderError as exc:
            raise ProviderError(f"refresh failed: {exc.message}", exc.kind, exc.code,
                                remedy=either(exc.remedy, offline_remedy)) from None

    def _listed(self, name: str, clock: Clock) -> tuple:
        """A provider's models, its list call retried as apply's calls are, but never without end."""
        provider = self.providers[name]
        return tuple(RetryPolicy().call(provider.list_models, clock, provider.capabilities.poll_seconds, bounded=True))

    def apply(self, plan_file: Path | None, targets: list[str] | None, confirm: Callable[[Plan], bool],
              reporter: Reporter, parallelism: int = 10, lock_timeout: float = 0.0,
              clock: Clock | None = None, refresh: bool = True) -> tuple[Plan, ApplyResult | None]:
        """Lock, (re)plan or load the saved plan, confirm, execute. Returns (plan, None) if declined."""
        resolution = self.resolve()

        def make_plan(state: State) -> Plan:
            if plan_file is None:
                _check_targets(targets, resolution.models, state)
                observed = self.observe(state, OFFLINE_REMEDY, clock) if refresh else None
                return self._plan(resolution.models, state, observed, targets)
            document = read_plan(plan_file)
            check_fresh(document, plan_file, self.workspace, self.config_relative, state.lineage, state.serial,
                        resolution.models)
            saved = plan_from_dict(document["plan"], state.lineage, state.serial)
            # Whatever the file says, the rules of plan hold: re-plan now (prevent_destroy, targets, budget)...
            _check_targets(document["targets"], resolution.models, state)
            fresh = self._plan(resolution.models, state, None, document["targets"])
            saved = conforming(document, saved, fresh, _protected(resolution.models, state), plan_file, self.root)
            return self._priced(saved)  # ...and the budget holds for what will really run

        return self._execute("apply", make_plan, confirm, reporter, parallelism, lock_timeout, clock)

    def destroy(self, targets: list[str] | None, confirm: Callable[[Plan], bool], reporter: Reporter,
                parallelism: int = 10, lock_timeout: float = 0.0) -> tuple[Plan, ApplyResult | None]:
        """Delete every managed tuned model (or the targets), honouring prevent_destroy."""
        protected = sorted(m.name for m in self.config.models
                           if m.prevent_destroy and (not targets or m.name in targets))

        def make_plan(state: State) -> Plan:
            _check_targets(targets, [], state)
            guarded = [name for name in protected if name in state.models]
            if guarded:
                raise PlanError(f"refusing to destroy {', '.join(guarded)}: lifecycle.prevent_destroy is set",
                                remedy="set prevent_destroy: false and apply that first, if destruction is intended")
            return plan([], state, None, targets, self.settings((), state))

        return self._execute("destroy", make_plan, confirm, reporter, parallelism, lock_timeout, None)

    def _execute(self, operation: str, make_plan: Callable[[State], Plan],
                 confirm: Callable[[Plan], bool], reporter: Reporter, parallelism: int, lock_timeout: float,
                 clock: Clock | None) -> tuple[Plan, ApplyResult | None]:
        with self.locked_state(operation, lock_timeout) as (backend, state):
            the_plan = make_plan(state)
            if not the_plan.has_changes or not confirm(the_plan):
                return the_plan, None
            from runner.apply import Applier  # only commands that apply pay for importing the applier

            applier = Applier(state, backend.write, self.providers, reporter, clock=clock, parallelism=parallelism)
            try:
                return the_plan, applier.run(the_plan)
            finally:
                self.write_outputs(state)  # even after a failure or Ctrl-C: it says what is current now

    @property
    def outputs_path(self) -> Path:
        return self.root / "state" / f"{self.workspace}.outputs.json"

    def write_outputs(self, state: State) -> None:
        """state/<workspace>.outputs.json: the current model per name, for deploy steps that don't run tuner."""
        payload = {"workspace": self.workspace, "serial": state.serial, "models": state.outputs()}
        self.outputs_path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.outputs_path, (json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())

    def evaluate(self, name: str, against: str | None, lock_timeout: float = 0.0) -> tuple[dict, dict | None, str]:
        """Score the current model of NAME on its eval set now and record it; compare with `against`:
        "previous" (the metrics recorded for the model it replaced) or a tuned model id (scored now)."""
        from runner.evaluate import evaluate_model

        model = self._declared(name)
        if model.eval_set is None:
            raise PlanError(f"{name} has no eval set", remedy="set eval.dataset (or dataset.validation) in its spec")
        with self.locked_state("eval", lock_timeout) as (backend, state):
            record = state.models.get(name)
            if record is None or record.current is None:
                raise StateError(f"{name} has no current model to evaluate", remedy="run `tuner apply` first")
            self._applied_settings(state, record.current.provider)
            provider = self.providers[record.current.provider]

            def score(tuned_id: str) -> dict:
                return evaluate_model(model, lambda text: provider.predict(tuned_id, text))

            current = score(record.current.tuned_model_id)
            record.current.metrics = current
            backend.write(state)
        if against is None:
            return current, None, ""
        if against == "previous":
            if not record.history:
                raise StateError(f"{name} has no previous model recorded")
            previous = record.history[-1]
            return current, previous.get("metrics") or {}, previous["tuned_model_id"]
        return current, score(against), against

    def break_even(self, name: str, calls_per_month: float, training_usd: float | None, **prices):
        """Training cost (estimated for NAME's next job unless given) against per-call savings."""
        from runner.cost import (
            break_even,
            break_even_from_tokens,
            load_pricing,
            overrides_from_settings,
            training_cost_for,
        )

        if training_usd is None:
            model = self._declared(name)
            estimate = training_cost_for(model, load_pricing(overrides_from_settings(self.config.providers)))
            if estimate.usd is None:
                raise PlanError(f"the training cost of {name} is unknown: {estimate.note}",
                                remedy="pass --training-usd, or add a price under providers.<name>.pricing")
            training_usd = estimate.usd
        months = prices.pop("months", None)
        if prices.get("prompt_price_per_1k_calls") is not None:
            return break_even(training_usd, calls_per_month, prices["prompt_price_per_1k_calls"],
                              prices["tuned_price_per_1k_calls"], months)
        return break_even_from_tokens(training_usd, calls_per_month, prices["prompt_tokens_saved"],
                                      prices["input_price_per_million"], months=months)

    def refresh(self, lock_timeout: float = 0.0) -> tuple[list[str], tuple[tuple[str, str], ...]]:
        """Update state from what providers hold; returns notes and the unmanaged models seen."""
        with self.locked_state("refresh", lock_timeout) as (backend, state):
            observation = self.observe(state)
            notes = refresh_state(state, observation, self.clock.now)
            notes += [f"{name}: not refreshed: its settings changed since the last apply (see `tuner plan`); "
                      f"nothing is sent where they point until that plan is applied" for name in observation.skipped]
            if notes:
                backend.write(state)
                self.write_outputs(state)
            return notes, unmanaged(state, observation)

    def import_model(self, name: str, tuned_model_id: str, lock_timeout: float = 0.0) -> tuple[Instance, list[str]]:
        """Adopt an existing tuned model under a configured name, recording what its provider reports."""
        model = self._declared(name)
        provider = self.providers[model.provider]
        with self.locked_state("import", lock_timeout) as (backend, state):
            record = state.models.get(name)
            if record is not None and record.current is not None:
                raise StateError(f"{name} already manages {record.current.tuned_model_id}",
                                 remedy="destroy it first, or import under another name")
            settings = self._applied_settings(state, model.provider)
            if settings:  # asked for by hand: the settings it is run with become the recorded ones
                state.providers[model.provider] = settings
            seen = provider.get_model(tuned_model_id)
            if seen is None:
                raise StateError(f"{tuned_model_id} was not found at provider {model.provider}")
            _check_unmanaged(state, model.provider, seen.tuned_model_id)
            _check_not_owned_elsewhere(state, seen)
            instance, notes = _imported_instance(model, provider.import_attributes(model, seen), seen.state,
                                                 provider.info(), self.clock.now())
            state.record(name).current = instance
            backend.write(state)
            self.write_outputs(state)
            return instance, notes

    def state(self) -> State:
        backend = self.backend()
        state = self.read_state(backend)
        if not state.lineage:
            raise StateError(f"no state yet for workspace {self.workspace!r} ({backend.display})",
                             remedy="run `tuner apply` first")
        return state

    def _declared(self, name: str) -> PlannedModel:
        """NAME's desired model (specs and datasets checked), or an error saying it is not declared."""
        model = next((m for m in self.resolve().models if m.name == name), None)
        if model is None:
            raise PlanError(f"{name!r} is not declared in the configs", remedy="declare the model in a spec file")
        return model

    def predict(self, name: str, text: str) -> tuple[str, str]:
        state = self.state()
        record = state.models.get(name)
        if record is None or record.current is None:
            raise StateError(f"no tuned model named {name!r} in state", remedy="run `tuner apply` first")
        current = record.current
        self._applied_settings(state, current.provider)
        return current.tuned_model_id, self.providers[current.provider].predict(current.tuned_model_id, text)

    def force_unlock(self, lock_id: str, confirm: Callable[[dict], bool], force: bool = False) -> dict | None:
        """Remove the lock LOCK_ID after confirm(holder) says yes; None when declined (see
        StateBackend.force_unlock for the rules)."""
        return self.backend().force_unlock(lock_id, confirm, force)


def _check_unmanaged(state: State, provider: str, tuned_model_id: str) -> None:
    """One remote model, one name: importing it twice would let one name delete it from under the other."""
    for other, record in sorted(state.models.items()):
        for instance in instances_of(record):
            if instance.provider == provider and instance.tuned_model_id == tuned_model_id:
                raise StateError(f"{tuned_model_id} is already managed by {other} in this state",
                                 remedy=f"import it under {other} only; to move it, destroy or replace {other} first")


def _check_not_owned_elsewhere(state: State, seen) -> None:
    ours = owner_tag(state.lineage, state.workspace) if state.lineage else None
    if seen.owner is not None and seen.owner != ours:
        raise StateError(f"{seen.tuned_model_id} was created by another tuner state or workspace (owner {seen.owner}): "
                         f"importing it here would let two states delete each other's model",
                         remedy="manage it from the workspace that created it")


def _imported_instance(model: PlannedModel, imported: dict, status: str, provider_info: dict,
                       now: str) -> tuple[Instance, list[str]]:
    """`imported`: the attributes the provider reports (Provider.import_attributes); the dataset is the spec's."""
    dataset = model.dataset_record()
    notes = [f"{model.provider} does not report training data: recorded the spec's dataset hashes, so only "
             f"later data changes show in plans"]
    instance = Instance(
        tuned_model_id=imported["tuned_model_id"], provider=model.provider,
        fingerprint=fingerprint(model.provider, imported["base_model"], imported["hyperparameters"], dataset),
        status=status, base_model=imported["base_model"], display_name=imported["display_name"],
        description=imported["description"], hyperparameters=imported["hyperparameters"], dataset=dataset,
        created_at=now, updated_at=now, provider_info={**provider_info, "imported": True},
        prevent_destroy=model.prevent_destroy,
    )
    return instance, notes


def _protected(models: list[PlannedModel], state: State) -> frozenset[str]:
    """Names under prevent_destroy, as plan judges them: the spec's word, or state's for undeclared models."""
    declared = {m.name: m.prevent_destroy for m in models}
    recorded = {name: bool(r.current and r.current.prevent_destroy) for name, r in state.models.items()}
    return frozenset(name for name, protected in (recorded | declared).items() if protected)


def _backend_block(location: str) -> str:
    """The spec text that names the backend holding `location` (a state's display name)."""
    if not location.startswith("gs://"):
        return "no `backend:` block: the local state file"
    bucket, _, name = location.removeprefix("gs://").partition("/")
    return f"`backend: {{gcs: {{bucket: {bucket}, prefix: {name.rpartition('/')[0]}}}}}`"


def _check_left_behind(state: State, where: str, local: State, local_where: str, workspace: str) -> None:
    """With a remote backend configured, a local state file may hold this workspace's real history."""
    if local.moved_to or not local.models:
        return  # migrated away (its history is the configured one), or nothing a plan could lose
    remedy = f"copy it there with `tuner state migrate --to gcs` (or remove {local_where} if it is not wanted)"
    if not state.lineage:
        raise StateError(f"the configured backend {where} holds no state for workspace {workspace!r}, but "
                         f"{local_where} does ({len(local.models)} model(s)): a plan would re-create every model",
                         remedy=remedy)
    if local.lineage != state.lineage:
        raise StateError(f"{where} and {local_where} hold different states for workspace {workspace!r} "
                         f"(lineages {state.lineage} and {local.lineage})",
                         remedy=f"keep one: remove {local_where} if {where} is the state to use; otherwise move "
                                f"{where} away and run `tuner state migrate --to gcs`")
    if local.serial > state.serial:
        raise StateError(f"{local_where} is newer than the configured backend {where} (serial {local.serial} > "
                         f"{state.serial}): the state changed locally after it was migrated", remedy=remedy)


def _check_budget(the_plan: Plan, limit: float | None) -> None:
    if limit is None:
        return
    if the_plan.unpriced:
        raise PlanError(f"budget.max_plan_cost_usd is set, but the cost of {', '.join(the_plan.unpriced)} is unknown",
                        remedy="add the price under providers.<name>.pricing.<base_model> in a spec file")
    if the_plan.total_cost_usd > limit:
        biggest = sorted(the_plan.costs.items(), key=lambda item: -(item[1]["usd"] or 0))[:5]
        detail = ", ".join(f"{name} ~${cost['usd']:.2f}" for name, cost in biggest)
        raise PlanError(f"the plan would cost ~${the_plan.total_cost_usd:.2f} in training, over the budget of "
                        f"${limit:.2f} ({detail}); nothing was submitted",
                        remedy="raise budget.max_plan_cost_usd, or apply part of it with --target")


def _check_targets(targets: list[str] | None, models: list[PlannedModel], state: State) -> None:
    known = {m.name for m in models} | set(state.models)
    unknown = sorted(set(targets or ()) - known)
    if unknown:
        raise PlanError(f"--target {', '.join(unknown)}: no such model in the configs or the state",
                        remedy=f"known models: {', '.join(sorted(known)) or 'none'}")
