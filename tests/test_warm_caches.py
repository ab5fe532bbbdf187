"""The caches a warm plan reads (.tuner/cache: specs, dataset hashes) are decoded with their types checked in one
pass: an entry of the wrong shape is never trusted, only recomputed."""

from __future__ import annotations

import json

SPEC_CACHE = ".tuner/cache/specs.json"


def test_a_spec_cache_entry_of_the_wrong_type_is_parsed_again(project):
    parsed = project.run("validate", "--json")
    stored = json.loads((project.root / SPEC_CACHE).read_text())
    for entry in stored["files"].values():
        entry["spec"]["models"][0]["base_model"] = 5  # what no parsed spec holds
    (project.root / SPEC_CACHE).write_text(json.dumps(stored))
    cached = project.run("validate", "--json")
    assert parsed.code == cached.code == 0, cached.err
    assert cached.out == parsed.out


def test_a_damaged_spec_cache_is_only_a_slower_plan(project):
    assert project.run("validate").code == 0
    (project.root / SPEC_CACHE).write_bytes(b'{"salt": "x", "files": {"a": ')
    assert project.run("validate").code == 0
    assert json.loads((project.root / SPEC_CACHE).read_text())["files"]  # written afresh

