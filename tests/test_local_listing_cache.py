"""The local provider's listing cache (.tuner/cache/local-models.json): a warm listing stats each artifact's
meta.json and weights instead of reading them, and sees every change a read would see."""

from __future__ import annotations

import json
import os

import pytest

import runner.providers.local as local
from runner.providers.local import LocalProvider

OLD = 1_600_000_000_000_000_000  # an mtime long past: any later write of the file changes it
HYPERPARAMETERS = {"epoch_count": 5, "batch_size": 8, "learning_rate": 0.5}


def artifact(directory, name: str, display_name: str = "d1", owner: dict | None = None, weights: bytes = b"weights"):
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.npz").write_bytes(weights)
    meta = {"tuned_model_id": name, "display_name": display_name, "description": "", "base_model": "local/linear-ngram",
            "hyperparameters": HYPERPARAMETERS, "model_bytes": len(weights)}
    if owner is not None:
        meta["owner"] = owner
    (folder / "meta.json").write_text(json.dumps(meta))
    for file in ("meta.json", "model.npz"):
        os.utime(folder / file, ns=(OLD, OLD))
    return folder


@pytest.fixture
def models(tmp_path):
    directory = tmp_path / ".tuner" / "models"
    artifact(directory, "ours", owner={"tag": "abcd1234"})
    artifact(directory, "foreign", owner={"tag": "ffff0000"})
    artifact(directory, "untagged")
    return directory


@pytest.fixture
def reads(monkeypatch):
    """The paths of the meta.json files the local provider reads (counted; what they hold is read for real)."""
    paths = []
    real = local.read_bytes
    monkeypatch.setattr(local, "read_bytes", lambda path: paths.append(path) or real(path))
    return paths


def listing(directory) -> dict[str, tuple]:
    return {m.tuned_model_id: (m.display_name, m.description, m.state, m.base_model, m.hyperparameters, m.owner)
            for m in LocalProvider(directory).list_models()}


def cache_file(directory):
    return directory.parent / "cache" / "local-models.json"


def test_a_second_listing_reads_no_meta_json_and_lists_the_same(models, reads):
    first = listing(models)
    assert len(reads) == 3
    reads.clear()
    assert listing(models) == first
    assert reads == []  # was a read and parse of every meta.json, at every listing
    assert first["foreign"][-1] == "ffff0000" and first["untagged"][-1] is None  # owner tags reported as they are
    assert first["ours"] == ("d1", "", "active", "local/linear-ngram", HYPERPARAMETERS, "abcd1234")


def test_the_cache_is_written_only_when_something_changed(models):
    listing(models)
    written = cache_file(models).stat()
    listing(models)
    assert cache_file(models).stat().st_ino == written.st_ino  # atomic_write would have swapped in a new file
    artifact(models, "added")
    assert "added" in listing(models)
    assert cache_file(models).stat().st_ino != written.st_ino


def test_a_same_size_edit_of_meta_json_is_seen(models):
    assert listing(models)["ours"][0] == "d1"
    meta = models / "ours" / "meta.json"
    before = meta.stat()
    meta.write_text(meta.read_text().replace('"d1"', '"d2"'))
    assert meta.stat().st_size == before.st_size and meta.stat().st_ino == before.st_ino  # edited in place
    assert listing(models)["ours"][0] == "d2"


@pytest.mark.parametrize("damage", ["truncated", "deleted", "grown"])
def test_weights_changed_after_a_listing_are_seen(models, damage):
    assert "ours" in listing(models)
    weights = models / "ours" / "model.npz"
    if damage == "deleted":
        weights.unlink()
    else:
        with open(weights, "r+b") as handle:
            handle.truncate(3) if damage == "truncated" else handle.write(b"weights and more")
    assert sorted(listing(models)) == ["foreign", "untagged"]


def test_a_removed_artifact_folder_is_gone(models):
    listing(models)
    for file in (models / "ours").iterdir():
        file.unlink()
    (models / "ours").rmdir()
    assert sorted(listing(models)) == ["foreign", "untagged"]


def test_a_damaged_meta_json_stays_unlisted_until_repaired(models, reads):
    meta = models / "ours" / "meta.json"
    good = meta.read_bytes()
    meta.write_bytes(good[:-1])
    os.utime(meta, ns=(OLD, OLD))
    assert "ours" not in listing(models)
    reads.clear()
    assert "ours" not in listing(models)
    assert reads == []  # what a damaged artifact derived to (nothing) is cached too
    meta.write_bytes(good)
    assert "ours" in listing(models)


def test_a_folder_moved_out_and_linked_back_is_never_listed_from_the_cache(models, tmp_path):
    listing(models)
    os.rename(models / "ours", tmp_path / "elsewhere")
    (models / "ours").symlink_to(tmp_path / "elsewhere")  # the same files, stats and all, through a link
    assert sorted(listing(models)) == ["foreign", "untagged"]


def test_cache_entries_of_folders_not_there_are_never_listed(models):
    listing(models)
    stored = json.loads(cache_file(models).read_text())
    stored["folders"]["ghost"] = stored["folders"]["ours"]
    cache_file(models).write_text(json.dumps(stored))
    assert sorted(listing(models)) == ["foreign", "ours", "untagged"]
    assert "ghost" not in json.loads(cache_file(models).read_text())["folders"]  # and forgotten


@pytest.mark.parametrize("damage", ["garbage", "truncated", "wrong type", "unknown field", "other salt"])
def test_a_damaged_cache_is_only_a_slower_listing(models, reads, damage):
    fresh = listing(models)
    stored = json.loads(cache_file(models).read_text())
    model = stored["folders"]["ours"][2]
    if damage == "wrong type":
        model[1] = 5  # a display name no meta.json check lets through
    elif damage == "unknown field":
        model.append("extra")
    elif damage == "other salt":
        stored["salt"] = "local-listing-0|elsewhere"
    text = {"garbage": "\x00not json", "truncated": json.dumps(stored)[:-10]}.get(damage, json.dumps(stored))
    cache_file(models).write_text(text)
    reads.clear()
    assert listing(models) == fresh
    assert len(reads) == 3  # nothing of it trusted
    reads.clear()
    assert listing(models) == fresh and reads == []  # and it was written afresh


def test_a_project_whose_cache_cannot_be_written_still_lists(models, reads):
    cache_file(models).parent.parent.joinpath("cache").write_text("a file where the cache folder would be")
    assert sorted(listing(models)) == ["foreign", "ours", "untagged"]
    reads.clear()
    assert sorted(listing(models)) == ["foreign", "ours", "untagged"]
    assert len(reads) == 3
