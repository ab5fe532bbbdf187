"""The schemas editors and reviewers read: documented field by field, named by a stable URL, printed by
`tuner schema`, and true to what tuner writes."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import jsonschema
import pytest

from runner import __version__
from tests.conftest import REPO

SCHEMAS = REPO / "schemas"


def _load(kind: str) -> dict:
    return json.loads((SCHEMAS / f"{kind}.schema.json").read_text())


def _properties(node, path: str = "") -> Iterator[tuple[str, dict]]:
    """Every (path, schema) of a property declared anywhere in NODE, $defs included."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                for name, prop in value.items():
                    yield f"{path}/{name}", prop
                    yield from _properties(prop, f"{path}/{name}")
            elif key != "examples":
                yield from _properties(value, f"{path}/{key}")
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item, path)


def test_every_property_of_the_spec_schema_has_a_description_and_examples_that_it_accepts():
    root = _load("spec")
    validator = jsonschema.Draft202012Validator(root)
    properties = list(_properties(root))
    assert len(properties) > 60  # the walk reaches the nested properties, not only the top level
    undocumented = [path for path, prop in properties if not prop.get("description") or not prop.get("examples")]
    assert undocumented == []
    wrong = [(path, example) for path, prop in properties for example in prop["examples"]
             if not validator.evolve(schema=prop).is_valid(example)]  # $refs resolve against the whole schema
    assert wrong == []


@pytest.mark.parametrize("kind", ["spec", "state", "plan"])
def test_each_schema_is_named_by_its_file_in_the_repository_at_this_version_tag(kind):
    schema = _load(kind)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert re.fullmatch(rf"https://\S+/v{re.escape(__version__)}/schemas/{kind}\.schema\.json", schema["$id"])
    bases = {_load(k)["$id"].rsplit("/", 1)[0] for k in ("spec", "state", "plan")}
    assert len(bases) == 1


@pytest.mark.parametrize("args, kind", [((), "spec"), (("state",), "state"), (("plan",), "plan")])
def test_tuner_schema_prints_the_schema_for_an_editor(project, args, kind):
    printed = project.run("schema", *args)
    assert printed.code == 0
    assert printed.out == (SCHEMAS / f"{kind}.schema.json").read_text()


def test_the_state_tuner_writes_matches_the_state_schema(project):
    validator = jsonschema.Draft202012Validator(_load("state"))
    assert project.run("apply", "--auto-approve").code == 0
    spec = project.root / "configs" / "models.yaml"
    spec.write_text(spec.read_text().replace("learning_rate: 0.5", "learning_rate: 0.25"))
    assert project.run("apply", "--auto-approve").code == 0
    state = project.state()
    record = next(iter(state["models"].values()))
    assert record["retained"] and record["history"]  # the replaced model is kept: every part of a record is there
    assert list(validator.iter_errors(state)) == []
