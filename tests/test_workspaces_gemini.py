"""A forced `workspace delete` on the Gemini API emulator: it forgets the state and leaves the model serving."""

from __future__ import annotations

from tests.test_gemini_provider import emulator, gemini, sdk  # noqa: F401 (fixtures)


def test_a_forced_delete_names_the_gemini_model_and_leaves_it_active(gemini, emulator):  # noqa: F811
    assert gemini.run("-w", "dev", "apply", "--auto-approve").code == 0
    tuned = gemini.state("dev")["models"]["reviews"]["tuned_model_id"]
    refused = gemini.run("workspace", "delete", "dev")
    assert refused.code == 1 and f"reviews ({tuned})" in refused.err
    result = gemini.run("workspace", "delete", "dev", "--force")
    assert result.code == 0 and f"reviews: {tuned} (gemini, active)" in result.err
    assert not (gemini.root / "state" / "dev.json").exists()
    assert sdk(emulator).get_tuned_model(tuned).state.name == "ACTIVE"


def test_promote_serves_devs_gemini_model_in_prod_until_the_last_workspace_lets_it_go(gemini, emulator):  # noqa: F811
    assert gemini.run("-w", "dev", "apply", "--auto-approve").code == 0
    tuned = gemini.state("dev")["models"]["reviews"]["tuned_model_id"]
    result = gemini.run("-w", "prod", "promote", "reviews", "--from", "dev")
    assert result.code == 0 and f"promoted {tuned} from workspace dev to prod" in result.out
    assert emulator.stats["tuned_models"] == 1  # no job for prod
    assert gemini.run("-w", "prod", "plan", "--detailed-exitcode").code == 0
    destroyed = gemini.run("-w", "dev", "destroy", "--auto-approve")
    assert destroyed.code == 0 and "still referenced by workspace prod" in destroyed.err
    assert sdk(emulator).get_tuned_model(tuned).state.name == "ACTIVE"
    assert gemini.run("-w", "prod", "predict", "reviews", "great").code == 0
    assert gemini.run("-w", "prod", "destroy", "--auto-approve").code == 0
    assert tuned not in [m.name for m in sdk(emulator).list_tuned_models()]  # deleted under dev's identity
