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


def test_promote_serves_devs_vertex_model_in_prod_until_the_last_workspace_lets_it_go(vertex, emulator):  # noqa: F811
    assert vertex.run("-w", "dev", "apply", "--auto-approve").code == 0
    dev, jobs = vertex.state("dev")["models"]["reviews"], emulator.stats["create_accepted"]
    tuned = dev["tuned_model_id"]
    result = vertex.run("-w", "prod", "promote", "--all", "--from", "dev")
    assert result.code == 0 and f"promoted {tuned} from workspace dev to prod" in result.out
    assert vertex.run("-w", "prod", "plan", "--detailed-exitcode").code == 0
    assert emulator.stats["create_accepted"] == jobs  # no job for prod
    assert vertex.state("prod")["models"]["reviews"]["resources"] == dev["resources"]  # served where dev serves it
    destroyed = vertex.run("-w", "dev", "destroy", "--auto-approve")
    assert destroyed.code == 0 and "still referenced by workspace prod" in destroyed.err
    assert sdk(emulator).models.get(model=tuned).name == tuned
    assert vertex.run("-w", "prod", "predict", "reviews", "great").code == 0
    assert vertex.run("-w", "prod", "destroy", "--auto-approve").code == 0
    assert tuned not in [m.name for m in sdk(emulator).models.list(config={"query_base": False})]
