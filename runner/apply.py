"""Execute a Plan: schedule jobs per provider, submit, poll, and record state at every transition.

Crash safety rests on three rules:
  1. the intent (tuned model id, fingerprint, status `submitting`) is in state before anything is paid for;
  2. the provider's job handle is in state before the first poll;
  3. every provider can find the job it started: tuned model ids derive from this state's identity and the
     fingerprint (a re-submission meets ALREADY_EXISTS and adopts it) or jobs carry both as labels (Vertex),
     so an ambiguous failure or a crash never pays twice.
Each transition is recorded durably before the next step (one journal record of the model that changed,
runner.state.journal, so the bytes written grow with the changes, not with the fleet). A re-run after a
crash or Ctrl-C plans `resume` for such jobs and waits for them. A remote object that carries
another state's identity (runner.identity) is never adopted and never deleted.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Protocol

from runner.clock import Clock
from runner.errors import AlreadyExistsError, NotOwnedError, ProviderError, StateError, TunerError
from runner.evaluate import GateResult, check_gate, evaluate_model
from runner.identity import Owner
from runner.plan import CREATE, DELETE, NOOP, REPLACE, RESTORE, UPDATE, Change, Plan, managed_by
from runner.planned import PlannedModel
from runner.providers.base import ACTIVE as JOB_ACTIVE
from runner.providers.base import FAILED as JOB_FAILED
from runner.providers.base import JobStatus, Provider, ask
from runner.references import deleting_owner, referencing
from runner.retry import Interrupted, RetryPolicy
from runner.slots import Slots
from runner.state.model import ACTIVE, CREATING, FAILED, REJECTED, SUBMITTING, Instance, State


class Reporter(Protocol):
    """Told every job transition as plain data; how it reads is the view's business (runner.render.progress)."""

    def event(self, name: str, status: str, detail: str = "", elapsed: float | None = None,
              progress: float | None = None, epoch: int | None = None, epochs: int | None = None,
              loss: float | None = None) -> None: ...


@dataclass
class ApplyResult:
    failures: dict[str, str] = field(default_factory=dict)  # name -> message
    interrupted: bool = False


class Applier:
    def __init__(self, state: State, write: Callable[[State], None], providers, reporter: Reporter,
                 clock: Clock | None = None, retry: RetryPolicy | None = None, parallelism: int = 10,
                 siblings: Callable[[], Mapping[str, State]] = dict,
                 record: Callable[[State, str], None] | None = None):
        """`siblings`: the states of the backend's other workspaces as they are now (workspace -> state; e.g.
        runner.ops.workspace.SiblingStates, which reads again only those that changed); a model one of them
        references (promoted there) is never deleted here. `write` stores the whole state; `record(state,
        name)` durably records that model NAME changed (a backend's write_record), and defaults to a whole write."""
        self.state = state
        self._siblings = siblings
        self._write = write
        self._record_change = record or (lambda state, name: write(state))
        self.providers = providers
        self.reporter = reporter
        self.clock = clock or Clock()
        self.retry = retry or RetryPolicy()
        self.parallelism = max(1, parallelism)
        self._state_lock = threading.Lock()
        self._slots: dict[str, Slots] = {}
        self._rank: dict[str, int] = {}  # a change's place in the plan's order (longest job first)

    # -- entry point -------------------------------------------------------------------------------
    def run(self, plan: Plan) -> ApplyResult:
        """Execute every change's planned model (`change.planned`): the plan alone says what to do."""
        result = ApplyResult()
        changes = sorted((c for c in plan.changes if c.is_change), key=_expected_work, reverse=True)
        self._rank = {change.name: rank for rank, change in enumerate(changes)}
        self.providers.preflight(c.provider for c in changes)  # all of them, before anything is submitted
        if changes and not self.state.lineage:  # the state's identity is born before any id derives from it
            self._write(self.state)
        self._record_settings(plan)
        with ThreadPoolExecutor(max_workers=self.parallelism, thread_name_prefix="tuner-job") as pool:
            futures = {pool.submit(self._run_change, c): c for c in changes}
            try:
                for future, change in futures.items():
                    while not wait([future], timeout=0.2).done:
                        pass  # short waits keep the main thread responsive to Ctrl-C
                    self._collect(future, change, result)
            except KeyboardInterrupt:
                self.clock.stop.set()
                result.interrupted = True
                for future in futures:
                    future.cancel()
                for future, change in futures.items():
                    if not future.cancelled():
                        self._collect(future, change, result)
        return result

    def _record_settings(self, plan: Plan) -> None:
        """Provider settings the plan showed become the recorded ones once every provider is usable, before
        any job is submitted."""
        if plan.settings:
            self.state.providers.update({change.provider: dict(change.settings) for change in plan.settings})
            self._write(self.state)

    def _collect(self, future, change: Change, result: ApplyResult) -> None:
        error = future.exception()
        if isinstance(error, Interrupted):
            result.interrupted = True
        elif isinstance(error, TunerError):  # a provider's refusal, or data that changed since the plan
            result.failures[change.name] = _describe(error)
            self.reporter.event(change.name, "error", _describe(error))
        elif error is not None:  # a bug: this job fails loudly, the others carry on, state stays true
            result.failures[change.name] = f"internal error (a bug in tuner): {type(error).__name__}: {error}"
        elif future.result() is not None:
            result.failures[change.name] = future.result()

    def _record(self, name: str) -> None:
        """Model NAME changed: record it before going on (the caller holds _state_lock)."""
        self._record_change(self.state, name)

    @property
    def owner(self) -> Owner:
        return Owner(self.state.lineage, self.state.workspace)

    # -- one change ----------------------------------------------------------------------------------
    def _run_change(self, change: Change) -> str | None:
        """Returns None on success or the failure message; provider errors propagate."""
        if self.clock.stop.is_set():
            raise Interrupted()
        provider = self.providers[change.provider]
        model = change.planned
        failure = None
        if change.action in (CREATE, REPLACE):
            failure = self._tune(change, model, provider)
        elif change.action == UPDATE:
            self._update(change, provider)
        elif change.action == DELETE:
            self._delete_model(change, provider)
        elif change.action == RESTORE:
            self._restore(change, provider)
        if failure is None and self._cleanup(change, provider):  # the row's last word is the change's outcome
            self.reporter.event(change.name, _OUTCOMES[change.action], "superseded models removed")
        return failure

    def _tune(self, change: Change, model: PlannedModel, provider: Provider) -> str | None:
        tuned_id = provider.tuned_model_id(model, self.owner)
        self._check_not_managed_elsewhere(change.name, change.provider, tuned_id)
        slots = self._slots.setdefault(change.provider, Slots(provider.capabilities.max_concurrent_jobs))
        with slots.held(self._rank.get(change.name, 0)):
            if self.clock.stop.is_set():  # Ctrl-C while this job waited for a slot: submit nothing new
                raise Interrupted()
            pending = self._prepare(change, model, provider, tuned_id)
            if pending.status == SUBMITTING:
                self._submit(change.name, model, provider, pending)
            # A replaced model is retained (lifecycle.keep_previous); one re-created because it vanished is not.
            return self._wait(change.name, model, provider, pending,
                              retain=change.action == REPLACE and model.keep_previous > 0)

    def _check_not_managed_elsewhere(self, name: str, provider: str, tuned_id: str) -> None:
        """A deterministic id can be the model of another name (moved there by `state mv` or a `moved:` block, or
        imported): adopting it as this name's would let two names manage, and delete, one model."""
        with self._state_lock:
            other = managed_by(self.state, provider, tuned_id, besides=name)
        if other is not None:
            raise StateError(f"{tuned_id}, the id {name} would be tuned as, is managed by {other}: adopting it "
                             f"would let two names delete one model",
                             remedy=f"rename {name}, change its data or hyperparameters, or forget {other} first "
                                    f"(`tuner state rm {other}`)")

    def _prepare(self, change: Change, model: PlannedModel, provider: Provider, tuned_id: str) -> Instance:
        """Record the intent to pay for a job before paying, or pick up the one already recorded."""
        record = self.state.record(change.name)
        pending = record.pending
        if pending is not None and pending.fingerprint == model.fingerprint:
            if pending.status != FAILED:
                self.reporter.event(change.name, "resuming", pending.handle or pending.tuned_model_id)
                return pending
            if pending.handle is not None:  # a refused submission (no handle) created nothing to delete
                self.reporter.event(change.name, "retrying", "deleting the failed job's model first")
                self._remove(change.name, provider, pending)
        now, after = self.clock.now(), change.after
        pending = Instance(  # `after`, plus what only the job knows: the dataset files and example counts
            tuned_model_id=tuned_id, provider=after["provider"], fingerprint=model.fingerprint, status=SUBMITTING,
            base_model=after["base_model"], display_name=after["display_name"], description=after["description"],
            hyperparameters=dict(after["hyperparameters"]), dataset=model.dataset_record(), created_at=now,
            updated_at=now, provider_info=provider.info(), prevent_destroy=after["lifecycle"]["prevent_destroy"],
            generation=model.generation or None,
        )
        abandoned = record.pending
        if abandoned is not None and abandoned.fingerprint != model.fingerprint:
            self._abandon(change.name, provider, record, abandoned)
        with self._state_lock:
            record.pending = pending
            self._record(change.name)
        return pending

    def _abandon(self, name: str, provider: Provider, record, abandoned: Instance) -> None:
        """A job for a configuration no longer wanted is cancelled at once: it serves nothing."""
        if not abandoned.refused:
            self.reporter.event(name, "cancelling", f"superseded job {abandoned.handle or abandoned.tuned_model_id}")
            try:
                self._remove(name, provider, abandoned)
            except ProviderError:
                with self._state_lock:
                    record.deposed.append(abandoned)  # cleanup retries once the new model is current
        with self._state_lock:
            record.pending = None
            self._record(name)

    def _submit(self, name: str, model: PlannedModel, provider: Provider, pending: Instance) -> None:
        self.reporter.event(name, "submitting", pending.tuned_model_id)
        submit = functools.partial(provider.submit, model, pending.tuned_model_id, self.owner)
        if provider.capabilities.trains_in_submit:  # the job runs in this call: its epochs are reported as polled
            started = self.clock.monotonic()
            submit = functools.partial(submit, progress=lambda status: self._report(name, "creating", status, started))
        try:
            handle = self._call(provider, submit, name=name)
        except AlreadyExistsError:  # the provider proved it carries this state's identity
            handle = pending.handle or pending.tuned_model_id  # ours from an earlier, ambiguous attempt
            self.reporter.event(name, "adopting", f"{pending.tuned_model_id} already exists: adopting it")
        except TunerError as error:
            if not isinstance(error, ProviderError) or error.kind == ProviderError.FATAL:
                self._record_refusal(name, pending, error)  # refused outright: nothing was created, nothing to wait for
            raise  # transient errors that ran out of retries stay `submitting`: the job may exist; resume finds it
        with self._state_lock:
            pending.handle, pending.status, pending.updated_at = handle, CREATING, self.clock.now()
            self._record(name)

    def _record_refusal(self, name: str, pending: Instance, error: TunerError) -> None:
        with self._state_lock:
            pending.status, pending.handle, pending.updated_at = FAILED, None, self.clock.now()
            pending.error = _describe(error)
            self._record(name)

    def _wait(self, name: str, model: PlannedModel, provider: Provider, pending: Instance,
              retain: bool = False) -> str | None:
        started = self.clock.monotonic()
        interval = provider.capabilities.poll_seconds
        while True:
            status = self._call(provider, lambda: provider.poll(pending.tuned_model_id, pending.handle), name=name)
            if status.state == JOB_ACTIVE:
                with self._state_lock:
                    pending.tuned_model_id = status.tuned_model_id or pending.tuned_model_id
                    pending.resources = status.resources or pending.resources
                metrics = self._evaluate(model, provider, pending.tuned_model_id)
                verdict = self._judge(name, model, provider, metrics)
                if not verdict.passed:
                    return self._reject(name, pending, metrics, verdict.reasons)
                self._make_current(name, pending, metrics, retain)
                self._report(name, "active", status, started)
                return None
            if status.state == JOB_FAILED:
                with self._state_lock:
                    pending.status, pending.error, pending.updated_at = FAILED, status.message, self.clock.now()
                    self._record(name)
                self.reporter.event(name, "failed", status.message)
                return f"tuning job failed: {status.message or status.detail or 'no message'}"
            self._report(name, "creating", status, started)
            if self.clock.wait(interval):
                raise Interrupted()

    def _report(self, name: str, word: str, status: JobStatus, started: float) -> None:
        """A job's status and how far the provider says it is."""
        self.reporter.event(name, word, elapsed=self.clock.monotonic() - started, progress=status.progress,
                            epoch=status.epoch, epochs=status.epochs, loss=status.loss)

    def _make_current(self, name: str, pending: Instance, metrics: dict, retain: bool) -> None:
        """The new model is ACTIVE: it becomes current; the one it replaces is retained, or deposed then deleted."""
        with self._state_lock:
            record = self.state.record(name)
            now = self.clock.now()
            pending.status, pending.updated_at, pending.metrics, pending.error = ACTIVE, now, metrics, None
            # A model re-created under the same id (it vanished at the provider) has nothing to depose.
            if record.current is not None and record.current.tuned_model_id != pending.tuned_model_id:
                record.supersede(now, retain)
            record.current, record.pending = pending, None
            self._record(name)

    def _reject(self, name: str, pending: Instance, metrics: dict, reasons: tuple[str, ...]) -> str:
        """Below the quality gate: the old model stays current, the new one is kept and recorded, not made current."""
        message = "; ".join(reasons)
        with self._state_lock:
            pending.status, pending.metrics, pending.error = REJECTED, metrics, message
            pending.updated_at = self.clock.now()
            self._record(name)
        self.reporter.event(name, "rejected", message)
        return f"not made current: rejected by the quality gate: {message}"

    def _evaluate(self, model: PlannedModel, provider: Provider, tuned_id: str) -> dict:
        """Score the model on its eval set (eval.dataset, else the validation set), if it has one."""
        if model.eval_set is None:
            return {}
        return evaluate_model(model, lambda text: self._call(
            provider, lambda: ask(provider, tuned_id, text, model.system_prompt)))

    def _judge(self, name: str, model: PlannedModel, provider: Provider, metrics: dict) -> GateResult:
        if not model.gate:
            return GateResult(True)
        current = self.state.record(name).current
        previous = current.metrics if current is not None and current.status == ACTIVE else None
        if model.gate.get("no_regression") and current is not None and model.eval_set is not None and \
                (previous or {}).get("eval_set", {}).get("sha256") != model.eval_set.sha256:
            # The current model was scored on another eval set (or never): score it now on this one.
            self.reporter.event(name, "evaluating", f"current model {current.tuned_model_id} for no_regression")
            previous = self._evaluate(model, self.providers[current.provider], current.tuned_model_id)
        return check_gate(model.gate, metrics, previous)

    def _update(self, change: Change, provider: Provider) -> None:
        """Make the in-place attributes of `after` true at the provider, then record them."""
        current = self.state.record(change.name).current
        after = change.after
        if any(f.path in ("display_name", "description") for f in change.fields):
            self.reporter.event(change.name, "updating", current.tuned_model_id)
            self._call(provider, lambda: provider.update(current.tuned_model_id, after["display_name"],
                                                         after["description"]), name=change.name)
        with self._state_lock:
            current.display_name, current.description = after["display_name"], after["description"]
            current.prevent_destroy = after["lifecycle"]["prevent_destroy"]
            current.updated_at = self.clock.now()
            self._record(change.name)
        self.reporter.event(change.name, "updated", current.tuned_model_id)

    def _restore(self, change: Change, provider: Provider) -> None:
        """A retained model becomes current without a job; the current one is retained in turn (or deposed under
        keep_previous: 0). A job still pending for another configuration serves nothing now: it is cancelled."""
        record = self.state.record(change.name)
        if record.pending is not None:
            self._abandon(change.name, provider, record, record.pending)
        after = change.after
        with self._state_lock:
            restored = record.restore(change.restore_id, self.clock.now(), retain=change.planned.keep_previous > 0)
            self._record(change.name)
        renamed = (restored.display_name, restored.description) != (after["display_name"], after["description"])
        if renamed and restored.promoted_from is None:  # a promoted model's are its creator's (plan.CREATOR_SET)
            self._update(change, provider)  # the in-place attributes the spec says now
        elif restored.prevent_destroy != after["lifecycle"]["prevent_destroy"]:
            with self._state_lock:
                restored.prevent_destroy = after["lifecycle"]["prevent_destroy"]
                self._record(change.name)
        self.reporter.event(change.name, "restored", f"{restored.tuned_model_id} (retained; no training)")

    def _delete_model(self, change: Change, provider: Provider) -> None:
        record = self.state.record(change.name)
        deleted = True
        if record.current is not None:
            self.reporter.event(change.name, "deleting", record.current.tuned_model_id)
            deleted = self._remove(change.name, provider, record.current)
            with self._state_lock:
                record.current = None
                self._record(change.name)
        if record.pending is not None:
            with self._state_lock:
                record.deposed.append(record.pending)
                record.pending = None
        if deleted:  # a kept model was reported so by _remove
            self.reporter.event(change.name, "deleted")

    def _cleanup(self, change: Change, provider: Provider) -> bool:
        """Delete superseded instances (create-before-destroy: only after the new one is current) and the retained
        ones the plan expired. True when it deleted one (its row then needs the change's outcome again)."""
        record = self.state.record(change.name)
        reported = False
        if any(record.find_retained(tuned_id) for tuned_id in change.cleanup):
            with self._state_lock:
                record.release(change.cleanup)
                self._record(change.name)
        for instance in list(record.deposed):
            if not instance.refused:
                self.reporter.event(change.name, "deleting", f"superseded {instance.tuned_model_id}")
                # a kept model's row ends on why it was kept; a deleted one's on the change's outcome
                reported = self._remove(change.name, self.providers[instance.provider], instance) or reported
            with self._state_lock:
                record.deposed.remove(instance)
                if record.is_empty():
                    del self.state.models[change.name]
                self._record(change.name)
        if record.is_empty() and change.name in self.state.models:
            with self._state_lock:
                del self.state.models[change.name]
                self._record(change.name)
        return reported

    def _remove(self, name: str, provider: Provider, instance: Instance) -> bool:
        """Delete one instance at its provider. It is kept (this state only forgets it) while another workspace of
        this backend references it (`tuner promote`), and when it carries another state's identity: whatever state
        or workspace created it may still be serving it.

        Concurrency: the other workspaces' states are taken as they are just before the delete, without their locks
        (a lock order across workspaces could deadlock two applies): each one's version is probed then, and a state
        read earlier is kept only while its version is unchanged. A promote that records its reference after that
        probe finds the model gone at its provider, or its next refreshed plan does, and it is trained anew there:
        a reference can be lost in that window, never a model deleted that a state read here still references.
        Returns whether it was deleted (or was already gone)."""
        siblings = self._siblings()
        users = referencing(siblings, instance.provider, instance.tuned_model_id)
        if users:
            self.reporter.event(name, "kept", f"{instance.tuned_model_id} still referenced by workspace "
                                              f"{', '.join(users)}: not deleted, forgotten by this state")
            return False
        owner = deleting_owner(instance, self.owner, siblings)
        if owner is None:
            self.reporter.event(name, "kept", f"{instance.tuned_model_id} was promoted from workspace "
                                              f"{instance.promoted_from['owner']['workspace']}, whose state this "
                                              f"backend no longer holds: not deleted, forgotten by this state")
            return False
        try:
            self._call(provider, lambda: provider.delete(instance.tuned_model_id, instance.handle, owner), name=name)
        except NotOwnedError as error:
            self.reporter.event(name, "kept", f"not deleted: {error.message}; forgotten by this state")
            return False
        return True

    # -- retries -------------------------------------------------------------------------------------
    def _call(self, provider: Provider, fn, name: str = ""):
        """Quota errors wait and retry without limit; transient ones retry with bounded backoff."""
        def waiting(error: ProviderError, delay: float) -> None:
            self.reporter.event(name, "waiting", f"{error.code or error.kind}: retry in {delay:.1f}s")

        return self.retry.call(fn, self.clock, provider.capabilities.poll_seconds, waiting if name else None)


def _describe(error: TunerError) -> str:
    code = getattr(error, "code", None)
    text = f"{code}: {error.message}" if code and code not in error.message else error.message
    return f"{text} ({error.remedy})" if error.remedy else text


# A job's last status, said again once its cleanup is over (a noop only cleans up: its model is unchanged).
_OUTCOMES = {CREATE: "active", REPLACE: "active", UPDATE: "updated", DELETE: "deleted", RESTORE: "restored",
             NOOP: "unchanged"}


def _expected_work(change: Change) -> int:
    """Longest expected first, as the provider estimated it (a smaller makespan under a concurrency cap)."""
    if change.action not in (CREATE, REPLACE):
        return -1
    return change.planned.expected_work


__all__ = ["Applier", "ApplyResult", "Clock", "RetryPolicy"]
