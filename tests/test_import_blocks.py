"""Top-level `import: [{to, id}]` blocks: plan shows NAME will be imported, apply adopts it as `tuner import` does."""

from __future__ import annotations

import json

from tests.conftest import SENTIMENT_SPEC
from tests.test_gemini_provider import BASE, ONE, emulator, gemini, sdk, spec  # noqa: F401 (fixtures)

OTHER = """\
  other:
    dataset: {train: ../data/train.jsonl, validation: ../data/valid.jsonl}
"""


def _forgotten(project) -> str:
    """A model tuner made, then forgot (`state rm`): it exists at the provider and no name manages it."""
    assert project.run("apply", "--auto-approve").code == 0
    tuned_id = project.state()["models"]["sentiment"]["tuned_model_id"]
    assert project.run("state", "rm", "sentiment").code == 0
    return tuned_id


def _importing(tuned_id: str, name: str = "sentiment") -> str:
    return f"import:\n  - {{to: {name}, id: {tuned_id}}}\n"


def test_an_import_block_plans_an_import_in_every_format_and_costs_nothing(project):
    tuned_id = _forgotten(project)
    project.spec(SENTIMENT_SPEC + _importing(tuned_id))
    text = project.run("plan", "--detailed-exitcode")
    assert text.code == 2, text.output
    assert "<- sentiment (local) will be imported" in text.out and f"# adopts {tuned_id}" in text.out
    assert "will be created" not in text.out and "training cost" not in text.out
    assert "State only: 0 to move, 1 to import (no job, $0)." in text.out
    change = json.loads(project.run("plan", "--json").out)["changes"][0]
    assert (change["action"], change["import_id"]) == ("import", tuned_id)
    assert "🔵 import" in project.run("plan", "--markdown").out


def test_apply_adopts_the_model_without_a_job_and_the_block_may_stay(project):
    tuned_id = _forgotten(project)
    project.spec(SENTIMENT_SPEC + _importing(tuned_id))
    result = project.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    record = project.state()["models"]["sentiment"]
    assert record["tuned_model_id"] == tuned_id and record["provider_info"]["imported"] is True
    assert project.artifacts() == [tuned_id]  # nothing was trained
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_a_saved_plan_with_an_import_applies_it(project):
    tuned_id = _forgotten(project)
    project.spec(SENTIMENT_SPEC + _importing(tuned_id))
    assert project.run("plan", "--out", "tfplan.json").code == 0
    result = project.run("apply", "tfplan.json")
    assert result.code == 0, result.output
    assert project.state()["models"]["sentiment"]["tuned_model_id"] == tuned_id


def test_an_import_of_a_model_another_name_manages_is_refused_naming_the_block(project):
    project.spec(SENTIMENT_SPEC + OTHER)
    assert project.run("apply", "--auto-approve").code == 0
    other_id = project.state()["models"]["other"]["tuned_model_id"]
    assert project.run("state", "rm", "sentiment").code == 0
    project.spec(SENTIMENT_SPEC + OTHER + _importing(other_id))
    result = project.run("plan")
    assert result.code == 1
    assert f"configs/models.yaml:15: import: {other_id} is already managed by other in this state" in result.err


def test_an_import_into_a_name_managing_another_model_is_refused(project):
    project.spec(SENTIMENT_SPEC + OTHER)
    assert project.run("apply", "--auto-approve").code == 0
    other_id = project.state()["models"]["other"]["tuned_model_id"]
    project.spec(SENTIMENT_SPEC + OTHER + _importing(other_id))
    result = project.run("plan")
    assert result.code == 1 and "configs/models.yaml:15: import: sentiment already manages" in result.err


def test_an_id_the_provider_lacks_is_refused_by_a_refreshed_plan_and_by_apply(project):
    assert project.run("apply", "--auto-approve").code == 0
    assert project.run("state", "rm", "sentiment").code == 0
    project.spec(SENTIMENT_SPEC + _importing("sentiment-nosuch"))
    result = project.run("plan")
    assert result.code == 1 and "configs/models.yaml:13: import: sentiment-nosuch was not found" in result.err
    assert "will be imported" in project.run("plan", "--refresh=false").out  # offline: apply asks
    applied = project.run("apply", "--auto-approve", "--refresh=false")
    assert applied.code == 1 and "sentiment-nosuch was not found" in applied.err
    assert project.state()["models"] == {}


def test_import_blocks_to_undeclared_or_repeated_names_are_spec_errors(project):
    project.spec(SENTIMENT_SPEC + """\
import:
  - {to: sentiment, id: a}
  - {to: sentiment, id: b}
  - {to: nosuch, id: a}
""")
    errors = project.run("validate").err
    assert "configs/models.yaml:14: import: sentiment: sentiment is imported twice (also at configs/models.yaml:13)" \
        in errors
    assert "configs/models.yaml:15: import: nosuch: nosuch is not declared in the configs" in errors
    assert "configs/models.yaml:15: import: nosuch: a is also imported at configs/models.yaml:13" in errors


def test_gemini_an_import_block_adopts_a_model_made_by_hand(gemini, emulator):  # noqa: F811
    examples = [json.loads(line) for line in (gemini.root / "data" / "train.jsonl").read_text().splitlines()]
    sdk(emulator).create_tuned_model(BASE, examples, id="made-by-hand", display_name="Reviews",
                                     description="Review sentiment", epoch_count=10, batch_size=16, learning_rate=0.5)
    gemini.spec(spec(emulator, ONE) + _importing("tunedModels/made-by-hand", "reviews"))
    assert "<- reviews (gemini) will be imported" in gemini.run("plan").out
    creates = emulator.stats["creates"]
    result = gemini.run("apply", "--auto-approve")
    assert result.code == 0, result.output
    assert gemini.state()["models"]["reviews"]["tuned_model_id"] == "tunedModels/made-by-hand"
    assert emulator.stats["creates"] == creates
    assert gemini.run("plan", "--detailed-exitcode").code == 0


def test_gemini_an_import_block_never_adopts_another_workspaces_model(gemini, emulator):  # noqa: F811
    assert gemini.run("apply", "--auto-approve", "-w", "dev").code == 0
    dev_id = gemini.state("dev")["models"]["reviews"]["tuned_model_id"]
    gemini.spec(spec(emulator, ONE) + _importing(dev_id, "reviews"))
    applied = gemini.run("apply", "--auto-approve", "-w", "prod")  # settings not yet applied: not refreshed
    assert applied.code == 1 and "created by another tuner state or workspace" in applied.err
    assert "reviews" not in gemini.state("prod")["models"]
    planned = gemini.run("plan", "-w", "prod")  # refreshed now: refused at plan time, naming the block
    assert planned.code == 1 and "configs/models.yaml:" in planned.err and "created by another" in planned.err
    assert [m.name for m in sdk(emulator).list_tuned_models()] == [dev_id]
