"""tuner: declare fine-tuned models in YAML, plan the changes, apply them, keep reproducible state."""

__version__ = "0.1.0"
