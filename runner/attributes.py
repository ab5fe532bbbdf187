"""The canonical attributes of a tuned model and its fingerprint: the one vocabulary shared by the planned
model (runner.planned), the plan and the recorded instance (runner.state), so no layer imports another for it.
"""

from __future__ import annotations

import hashlib
import json


def fingerprint(provider: str, base_model: str, hyperparameters: dict, dataset: dict) -> str:
    """What makes a tuned model what it is: change any of it and a new model must be tuned.

    The hash of the identity part of the canonical attributes, not of the whole `after`: display_name,
    description and lifecycle change in place, and these exact inputs (key names included) are what every
    recorded fingerprint was computed from. Changing them would plan every existing model for replacement,
    that is, paid retraining."""
    validation = dataset.get("validation")
    identity = {
        "provider": provider,
        "base_model": base_model,
        "train": dataset["train"]["sha256"],
        "validation": validation["sha256"] if validation else None,
        "input_key": dataset["input_key"],
        "output_key": dataset["output_key"],
        "hyperparameters": hyperparameters,
        **_system_prompt(dataset),
    }
    return hashlib.sha256(_IDENTITY_ENCODER.encode(identity).encode()).hexdigest()


# json.dumps(identity, sort_keys=True) exactly, without building an encoder per model (a plan computes 10,000)
_IDENTITY_ENCODER = json.JSONEncoder(sort_keys=True)


def attributes_fingerprint(attributes: dict) -> str:
    """The fingerprint of canonical attributes (model_attributes' shape): that of the model they describe."""
    dataset = attributes["dataset"]
    validation = dataset["validation"]
    return fingerprint(attributes["provider"], attributes["base_model"], attributes["hyperparameters"], {
        "train": {"sha256": dataset["train"]}, "validation": {"sha256": validation} if validation else None,
        "input_key": dataset["input_key"], "output_key": dataset["output_key"], **_system_prompt(dataset)})


def model_attributes(provider: str, base_model: str, display_name: str, description: str,
                     hyperparameters: dict, dataset: dict, prevent_destroy: bool) -> dict:
    """The attributes plan compares, shared by planned models and recorded instances."""
    validation = dataset.get("validation")
    return {
        "provider": provider,
        "base_model": base_model,
        "display_name": display_name,
        "description": description,
        "hyperparameters": dict(hyperparameters),
        "dataset": {
            "train": dataset["train"]["sha256"],
            "validation": validation["sha256"] if validation else None,
            "input_key": dataset["input_key"],
            "output_key": dataset["output_key"],
            **_system_prompt(dataset),
        },
        "lifecycle": {"prevent_destroy": prevent_destroy},
    }


def _system_prompt(dataset: dict) -> dict:
    """dataset.system_prompt (trained with every example, so part of the model), absent when unset: the models
    recorded before it existed keep their fingerprints."""
    return {"system_prompt": dataset["system_prompt"]} if dataset.get("system_prompt") else {}
