"""Specs: YAML files under the config directory -> validated, merged, expanded list of ModelSpec."""

from runner.spec.loader import MODEL_NAME, load_config
from runner.spec.model import Config, DatasetSpec, ModelSpec

__all__ = ["MODEL_NAME", "Config", "DatasetSpec", "ModelSpec", "load_config"]
