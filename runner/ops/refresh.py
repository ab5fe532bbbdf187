"""refresh: what providers hold, read once per provider; recorded into state by `tuner refresh`."""

from __future__ import annotations

from runner.errors import ProviderError
from runner.ops.state import write_outputs
from runner.plan import Observation, settings_changes, unmanaged
from runner.project import Project
from runner.providers import either
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
    project.providers.preflight(asked, offline_remedy)
    try:
        return Observation({name: _listed(project, name) for name in asked}, skipped=tuple(sorted(names & changed)))
    except ProviderError as exc:
        raise ProviderError(f"refresh failed: {exc.message}", exc.kind, exc.code,
                            remedy=either(exc.remedy, offline_remedy)) from None


def _listed(project: Project, name: str) -> tuple:
    """A provider's models, its list call retried as apply's calls are, but never without end."""
    provider = project.providers[name]
    return tuple(RetryPolicy().call(provider.list_models, project.clock, provider.capabilities.poll_seconds,
                                    bounded=True))
