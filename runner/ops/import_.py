"""import: adopt an existing tuned model under a declared name, recording what its provider reports."""

from __future__ import annotations

from runner.attributes import fingerprint
from runner.errors import StateError
from runner.identity import owner_tag
from runner.ops.state import write_outputs
from runner.plan import instances_of
from runner.planned import PlannedModel
from runner.project import Project
from runner.state import Instance, State


def import_model(project: Project, name: str, tuned_model_id: str,
                 lock_timeout: float = 0.0) -> tuple[Instance, list[str]]:
    """Adopt an existing tuned model under a configured name, recording what its provider reports."""
    model = project.declared(name)
    provider = project.providers[model.provider]
    with project.locked_state("import", lock_timeout) as (backend, state):
        record = state.models.get(name)
        if record is not None and record.current is not None:
            raise StateError(f"{name} already manages {record.current.tuned_model_id}",
                             remedy="destroy it first, or import under another name")
        settings = project.applied_settings(state, model.provider)
        if settings:  # asked for by hand: the settings it is run with become the recorded ones
            state.providers[model.provider] = settings
        seen = provider.get_model(tuned_model_id)
        if seen is None:
            raise StateError(f"{tuned_model_id} was not found at provider {model.provider}")
        _check_unmanaged(state, model.provider, seen.tuned_model_id)
        _check_not_owned_elsewhere(state, seen)
        instance, notes = _imported_instance(model, provider.import_attributes(model, seen), seen.state,
                                             provider.info(), project.clock.now())
        state.record(name).current = instance
        backend.write(state)
        write_outputs(project, state)
        return instance, notes


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
