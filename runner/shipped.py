"""Files tuner ships beside its code: the JSON schemas, the CI recipes and the example project.

They live at the top of the repository (schemas/, examples/, data/sentiment/). An editable install or a source
checkout reads them there; a wheel carries copies under runner/_shipped/ (setup.py puts them there).
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def shipped(folder: str) -> Path:
    """The directory of a shipped folder (e.g. "schemas"), wherever this tuner was installed from."""
    packaged = _PACKAGE / "_shipped" / folder
    return packaged if packaged.is_dir() else _PACKAGE.parent / folder


SCHEMAS = ("spec", "state", "plan")  # `tuner schema KIND`: schemas/KIND.schema.json


def schema_path(kind: str) -> Path:
    return shipped("schemas") / f"{kind}.schema.json"
