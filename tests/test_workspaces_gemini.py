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
