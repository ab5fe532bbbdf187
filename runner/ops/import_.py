"""import: adopt an existing tuned model under a declared name, recording what its provider reports."""

from __future__ import annotations

from runner.attributes import fingerprint
from runner.errors import StateError
from runner.ops.blocks import check_not_owned_elsewhere, check_unmanaged
from runner.ops.state import write_outputs
from runner.planned import PlannedModel
from runner.project import Project
from runner.state import Instance, State


def import_model(project: Project, name: str, tuned_model_id: str,
                 lock_timeout: float = 0.0) -> tuple[Instance, list[str]]:
    """Adopt an existing tuned model under a configured name, recording what its provider reports."""
    model = project.declared(name)
    with project.locked_state("import", lock_timeout) as (backend, state):
        instance, notes = adopt(project, state, model, tuned_model_id)
        backend.write(state)
        write_outputs(project, state)
        return instance, notes


def adopt(project: Project, state: State, model: PlannedModel, tuned_model_id: str) -> tuple[Instance, list[str]]:
    """Record TUNED_MODEL_ID as MODEL's current instance in STATE (in memory, lock held), as its provider reports
    it, once the ownership rules allow: `tuner import` and apply of an `import:` block both come here."""
    record = state.models.get(model.name)
    if record is not None and record.current is not None:
        raise StateError(f"{model.name} already manages {record.current.tuned_model_id}",
                         remedy="destroy it first, or import under another name")
    settings = project.applied_settings(state, model.provider)
    if settings:  # asked for by hand: the settings it is run with become the recorded ones
        state.providers[model.provider] = settings
    provider = project.providers[model.provider]
    seen = provider.get_model(tuned_model_id)
    if seen is None:
        raise StateError(f"{tuned_model_id} was not found at provider {model.provider}")
    check_unmanaged(state, model.provider, seen.tuned_model_id)
    check_not_owned_elsewhere(state, seen)
    instance, notes = _imported_instance(model, provider.import_attributes(model, seen), seen.state,
                                         provider.info(), project.clock.now())
    state.record(model.name).current = instance
    return instance, notes


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
