"""Plan cost per model at fleet scale: work that must not grow with the fleet for each model looked at.

Timings on a shared machine are noise, so these count work (comparisons, path resolutions) instead.
"""

from __future__ import annotations

from runner.plan import Observation
from runner.providers.base import ObservedModel

FLEET = 2000


class CountedId(str):
    """A tuned model id that counts how often it is compared for equality."""

    comparisons = 0

    def __eq__(self, other: object) -> bool:
        CountedId.comparisons += 1
        return str.__eq__(self, other)

    __hash__ = str.__hash__


def test_finding_each_observed_model_costs_no_scan_of_the_fleet():
    ids = [CountedId(f"model-{i:05d}") for i in range(FLEET)]
    observed = Observation({"local": tuple(ObservedModel(i, i, "", "active") for i in ids)})
    CountedId.comparisons = 0
    found = [observed.find("local", i) for i in ids]
    assert [m.tuned_model_id for m in found] == ids
    assert CountedId.comparisons <= 2 * FLEET  # a scan per lookup: FLEET^2 / 2 = 2,000,000
    assert observed.find("local", "missing") is None and observed.find("gemini", ids[0]) is None


def test_the_first_report_of_a_duplicated_id_is_the_one_found():
    first, second = ObservedModel("m-1", "first", "", "active"), ObservedModel("m-1", "second", "", "active")
    assert Observation({"local": (first, second)}).find("local", "m-1") is first


def test_listing_local_models_resolves_the_models_directory_once_not_each_folder(tmp_path, monkeypatch):
    import json
    import os

    from runner.providers.local import LocalProvider

    directory = tmp_path / "models"
    for index in range(100):
        folder = directory / f"model-{index:03d}"
        folder.mkdir(parents=True)
        (folder / "model.npz").write_bytes(b"weights")
        (folder / "meta.json").write_text(json.dumps({"tuned_model_id": folder.name, "display_name": "d",
                                                      "description": "", "model_bytes": 7}))
    (directory / "linked").symlink_to(directory / "model-000")  # not a folder of this directory: never listed
    resolved = []
    real = os.path.realpath
    monkeypatch.setattr(os.path, "realpath", lambda path, **kw: resolved.append(path) or real(path, **kw))
    listed = LocalProvider(directory).list_models()
    assert [m.tuned_model_id for m in listed] == [f"model-{index:03d}" for index in range(100)]
    assert len(resolved) <= 2  # was two resolutions of every folder (its meta.json, then its weights)
