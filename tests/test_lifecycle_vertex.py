"""The lifecycle commands on the Vertex emulator (real google-genai and google-cloud-storage clients): renames,
forgetting and adoption without a new job; --replace; a saved plan --destroy."""

from __future__ import annotations

from tests.test_vertex_provider import TWO_SHARING_DATA, emulator, gcs, sdk, spec, vertex  # noqa: F401 (fixtures)


def test_vertex_renames_forgets_and_adopts_without_a_new_job(vertex, emulator):  # noqa: F811
    assert vertex.run("apply", "--auto-approve").code == 0
    ids = {name: record["tuned_model_id"] for name, record in vertex.state()["models"].items()}
    jobs = emulator.stats["create_accepted"]
    assert vertex.run("state", "mv", "reviews-copy", "copy").code == 0
    renamed = TWO_SHARING_DATA.replace("  reviews-copy:", "  copy:").replace("  reviews:", "  feedback:")
    vertex.spec(spec(emulator, renamed) + "moved:\n  - {from: reviews, to: feedback}\n")
    assert "# reviews has moved to feedback" in vertex.run("plan").out
    assert vertex.run("apply", "--auto-approve").code == 0
    assert vertex.run("plan", "--detailed-exitcode").code == 0
    forgotten = vertex.run("state", "rm", "copy")
    assert forgotten.code == 0 and ids["reviews-copy"] in forgotten.out
    vertex.spec(spec(emulator, renamed) + f"import:\n  - {{to: copy, id: '{ids['reviews-copy']}'}}\n")
    assert "<- copy (vertex) will be imported" in vertex.run("plan").out
    result = vertex.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    state = vertex.state()["models"]
    assert {name: record["tuned_model_id"] for name, record in state.items()} == {
        "feedback": ids["reviews"], "copy": ids["reviews-copy"]}
    assert emulator.stats["create_accepted"] == jobs


def _remaining(emulator) -> set[str]:  # noqa: F811 (fixture)
    return {m.name.split("@")[0] for m in sdk(emulator).models.list(config={"query_base": False})}


def test_replace_on_vertex_tunes_a_second_job_under_its_own_labels_and_retains_the_first(vertex, emulator):  # noqa: F811
    assert vertex.run("apply", "--auto-approve").code == 0
    old_id = vertex.state()["models"]["reviews"]["tuned_model_id"]
    result = vertex.run("apply", "--auto-approve", "--replace", "reviews")
    assert result.code == 0, result.output
    new = vertex.state()["models"]["reviews"]
    assert new["tuned_model_id"] != old_id and new["generation"] == 1
    remaining = _remaining(emulator)
    assert {old_id, new["tuned_model_id"]} <= remaining  # lifecycle.keep_previous: 1 (the default) retains the first
    assert [r["tuned_model_id"] for r in new["retained"]] == [old_id]
    assert vertex.run("plan", "--detailed-exitcode").code == 0


def test_a_saved_destroy_plan_deletes_the_vertex_models(vertex, emulator, tmp_path):  # noqa: F811
    assert vertex.run("apply", "--auto-approve").code == 0
    saved = tmp_path / "destroy.plan"
    assert vertex.run("plan", "--destroy", "--out", str(saved)).code == 0
    ids = {r["tuned_model_id"] for r in vertex.state()["models"].values()}
    assert len(ids) == 2 and ids <= _remaining(emulator)
    assert vertex.run("apply", str(saved)).code == 0
    assert not ids & _remaining(emulator)
    assert vertex.state()["models"] == {}
