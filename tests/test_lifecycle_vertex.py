"""state mv / rm, `moved:` and `import:` blocks on the Vertex emulator: renames and adoption without a new job."""

from __future__ import annotations

from tests.test_vertex_provider import TWO_SHARING_DATA, emulator, gcs, spec, vertex  # noqa: F401 (fixtures)


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
