"""Specs: YAML files under the config directory -> validated, merged, expanded list of ModelSpec."""

from runner.spec.loader import MODEL_NAME, load_config
from runner.spec.model import Config, DatasetRef, ModelSpec

__all__ = ["MODEL_NAME", "Config", "DatasetRef", "ModelSpec", "load_config"]
