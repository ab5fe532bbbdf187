"""refresh: what providers hold, read once per provider; recorded into state by `tuner refresh`."""

from __future__ import annotations

from runner.clock import Clock
from runner.errors import ProviderError
from runner.ops.state import write_outputs
from runner.plan import Observation, settings_changes, unmanaged
from runner.project import Project
from runner.providers import Provider, Providers, either
from runner.refresh import refresh_state
from runner.retry import RetryPolicy
from runner.state import State


def refresh(project: Project, lock_timeout: float = 0.0) -> tuple[list[str], tuple[tuple[str, str], ...]]:
    """Update state from what providers hold; returns notes and the unmanaged models seen."""
    with project.locked_state("refresh", lock_timeout) as (backend, state):
        observation = observe(project, state)
        notes = refresh_state(state, observation, project.clock.now)
        notes += [f"{name}: not refreshed: its settings changed since the last apply (see `tuner plan`); "
                  f"nothing is sent where they point until that plan is applied" for name in observation.skipped]
        if notes:
            backend.write(state)
            write_outputs(project, state)
        return notes, unmanaged(state, observation)


def observe(project: Project, state: State, offline_remedy: str | None = None) -> Observation:
    """One list call per provider in use, not one call per model. A provider whose settings differ from
    those recorded is not asked: its credentials go where new settings point only once a plan showing
    them is applied. Every asked provider's configuration is checked first, so one run names every
    missing credential."""
    names = {rec.current.provider for rec in state.models.values() if rec.current}
    names |= {m.provider for m in project.config.models}
    changed = {c.provider for c in settings_changes(state.providers, project.settings(names, state))}
    asked = sorted(names - changed)
    return listed(project.providers, asked, project.clock, offline_remedy, skipped=tuple(sorted(names & changed)))


def listed(providers: Providers, asked: list[str], clock: Clock, offline_remedy: str | None = None,
           skipped: tuple[str, ...] = ()) -> Observation:
    """The models each ASKED provider holds (its configuration checked first, for all of them), each list call
    retried as apply's calls are, but never without end."""
    providers.preflight(asked, offline_remedy)
    try:
        return Observation({name: _listed(providers[name], clock) for name in asked}, skipped=skipped)
    except ProviderError as exc:
        raise ProviderError(f"refresh failed: {exc.message}", exc.kind, exc.code,
                            remedy=either(exc.remedy, offline_remedy)) from None


def _listed(provider: Provider, clock: Clock) -> tuple:
    return tuple(RetryPolicy().call(provider.list_models, clock, provider.capabilities.poll_seconds, bounded=True))
