"""`lifecycle.ignore_changes`: listed attribute paths never show as changes, never update, never replace."""

from __future__ import annotations

import json

from tests.conftest import SENTIMENT_SPEC
from tests.test_gemini_provider import ONE, emulator, gemini, sdk, spec  # noqa: F401 (fixtures)

IGNORING = SENTIMENT_SPEC + "    lifecycle: {ignore_changes: [display_name, hyperparameters.learning_rate]}\n"


def test_an_ignored_display_name_change_plans_nothing(project):
    project.spec(IGNORING)
    assert project.run("apply", "--auto-approve").code == 0
    before = project.state_bytes()
    project.spec(IGNORING.replace("display_name: Sentiment", "display_name: Renamed"))
    result = project.run("plan", "--detailed-exitcode")
    assert result.code == 0, result.output
    assert "No changes" in result.out
    assert project.run("apply", "--auto-approve").code == 0
    assert project.state_bytes() == before


def test_an_update_beside_an_ignored_change_sends_only_the_rest(project):
    project.spec(IGNORING)
    assert project.run("apply", "--auto-approve").code == 0
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    project.spec(IGNORING.replace("display_name: Sentiment", "display_name: Renamed")
                 .replace("Reviews to labels", "Product reviews"))
    change = json.loads(project.run("plan", "--json").out)["changes"][0]
    assert change["action"] == "update" and list(change["fields"]) == ["description"]
    assert project.run("apply", "--auto-approve").code == 0
    record = project.state()["models"]["sentiment"]
    assert (record["display_name"], record["description"]) == ("Sentiment", "Product reviews")
    meta = json.loads((project.models_dir() / tuned_id / "meta.json").read_text())
    assert (meta["display_name"], meta["description"]) == ("Sentiment", "Product reviews")


def test_an_ignored_hyperparameter_never_retrains_but_another_change_trains_from_the_spec(project):
    project.spec(IGNORING)
    assert project.run("apply", "--auto-approve").code == 0
    project.spec(IGNORING.replace("learning_rate: 0.5", "learning_rate: 0.25"))
    assert project.run("plan", "--detailed-exitcode").code == 0
    project.spec(IGNORING.replace("learning_rate: 0.5", "learning_rate: 0.25").replace("epoch_count: 4",
                                                                                       "epoch_count: 5"))
    change = json.loads(project.run("plan", "--json").out)["changes"][0]
    assert change["action"] == "replace"
    assert change["fields"]["hyperparameters.learning_rate"]["new"] == 0.25
    assert project.run("apply", "--auto-approve").code == 0
    assert project.state()["models"]["sentiment"]["hyperparameters"]["learning_rate"] == 0.25


def test_an_unknown_ignored_path_is_an_error_naming_file_line_and_the_attributes(project):
    project.spec(SENTIMENT_SPEC + "    lifecycle: {ignore_changes: [hyperparameters.learning_rate_multiplier]}\n")
    result = project.run("validate")
    assert result.code == 1
    assert "configs/models.yaml:" in result.err
    assert ("models.sentiment.lifecycle.ignore_changes: 'hyperparameters.learning_rate_multiplier' is not an "
            "attribute of local models") in result.err
    assert "hyperparameters.learning_rate," in result.err


def test_a_saved_plan_with_an_ignored_change_applies(project, tmp_path):
    project.spec(IGNORING)
    assert project.run("apply", "--auto-approve").code == 0
    project.spec(IGNORING.replace("display_name: Sentiment", "display_name: Renamed")
                 .replace("Reviews to labels", "Product reviews"))
    saved = tmp_path / "update.plan"
    assert project.run("plan", "--out", str(saved)).code == 0
    result = project.run("apply", str(saved))
    assert result.code == 0, result.output
    assert project.state()["models"]["sentiment"]["display_name"] == "Sentiment"


def test_a_description_edited_outside_tuner_is_left_alone_when_ignored_on_gemini(gemini, emulator):  # noqa: F811
    ignoring = ONE + "    lifecycle: {ignore_changes: [description]}\n"
    gemini.spec(spec(emulator, ignoring))
    assert gemini.run("apply", "--auto-approve").code == 0
    tuned_id = gemini.state()["models"]["reviews"]["tuned_model_id"]
    sdk(emulator).update_tuned_model(tuned_id, {"description": "edited in the console"})
    assert gemini.run("plan", "--detailed-exitcode").code == 0
    gemini.spec(spec(emulator, ONE))  # without the ignore, refresh's drift is a change again
    result = gemini.run("plan", "--json")
    change = json.loads(result.out)["changes"][0]
    assert change["action"] == "update"
    assert change["fields"]["description"] == {"old": "edited in the console", "new": "Review sentiment",
                                               "forces_replacement": False}
