"""A forced `workspace delete` on the Vertex AI emulator: it forgets the state and leaves the model in place."""

from __future__ import annotations

from tests.test_vertex_provider import emulator, gcs, sdk, vertex  # noqa: F401 (fixtures)


def test_a_forced_delete_names_the_vertex_model_and_leaves_it(vertex, emulator):  # noqa: F811
    assert vertex.run("-w", "dev", "apply", "--auto-approve").code == 0
    tuned = vertex.state("dev")["models"]["reviews"]["tuned_model_id"]
    assert f"reviews ({tuned})" in vertex.run("workspace", "delete", "dev").err
    result = vertex.run("workspace", "delete", "dev", "--force")
    assert result.code == 0 and f"reviews: {tuned} (vertex, active)" in result.err
    assert not (vertex.root / "state" / "dev.json").exists()
    assert sdk(emulator).models.get(model=tuned).name == tuned
