"""Specs: schema-checked at run time, every error as file:line: field.path: reason, templates expand."""

from __future__ import annotations

import json

import pytest


def test_schema_error_names_file_line_and_field_path(project):
    project.spec("""\
models:
  x:
    base_model: local/linear-ngram
    dataset: {train: ../data/train.jsonl}
    hyperparameters:
      epoch_count: 2
      batch_size: 0
""", name="a.yaml")
    result = project.run("validate")
    assert result.code == 1
    assert "configs/a.yaml:7: models.x.hyperparameters.batch_size: 0 is less than the minimum of 1" in result.err


def test_every_problem_in_every_file_is_reported(project):
    project.spec("models:\n  x:\n    base_model: 7\n", name="a.yaml")
    project.spec("models:\n  y:\n    provider: nowhere\n", name="b.yaml")
    result = project.run("validate")
    assert "configs/a.yaml:3: models.x.base_model: 7 is not of type 'string'" in result.err
    assert "configs/b.yaml:3: models.y.provider: 'nowhere' is not one of ['local', 'gemini', 'vertex', 'openai']" \
        in result.err


def test_a_name_declared_twice_names_both_places(project):
    project.spec("models:\n  sentiment:\n    base_model: local/linear-ngram\n"
                 "    dataset: {train: ../data/train.jsonl}\n", name="zz-other.yaml")
    result = project.run("validate")
    assert result.code == 1
    assert ("configs/zz-other.yaml:2: models.sentiment: declared twice (also at configs/models.yaml:6)"
            in result.err)


def test_invalid_model_names_are_refused(project):
    project.spec("models:\n  Bad_Name:\n    base_model: local/linear-ngram\n", name="a.yaml")
    result = project.run("validate")
    assert "configs/a.yaml:2: models.Bad_Name: invalid name 'Bad_Name'" in result.err


def test_duplicate_yaml_keys_are_errors_not_silent_overrides(project):
    project.spec("models:\n  x:\n    base_model: a\n    base_model: b\n", name="a.yaml")
    result = project.run("validate")
    assert "configs/a.yaml:4: models.x.base_model: duplicate key (first defined on line 3)" in result.err


def test_yaml_syntax_error_names_the_line(project):
    project.spec("models:\n  x: [unclosed\n", name="a.yaml")
    result = project.run("validate")
    assert result.code == 1 and "configs/a.yaml:3: invalid YAML" in result.err


def test_dataset_outside_the_project_root_is_refused(project, tmp_path):
    outside = tmp_path / "secret.jsonl"
    outside.write_text("")
    project.spec("models:\n  x:\n    base_model: local/linear-ngram\n"
                 "    dataset: {train: ../../secret.jsonl}\n", name="models.yaml")
    result = project.run("validate")
    assert result.code == 1
    assert "configs/models.yaml:4: models.x.dataset.train: ../../secret.jsonl resolves to" in result.err
    assert "outside the project root" in result.err


def test_hyperparameters_the_provider_does_not_accept_are_refused(project):
    project.spec("models:\n  x:\n    base_model: local/linear-ngram\n    dataset: {train: ../data/train.jsonl}\n"
                 "    hyperparameters: {adapter_size: 4}\n")
    result = project.run("validate")
    assert "models.x.hyperparameters.adapter_size: the local provider trains a linear model" in result.err


def test_unknown_base_model_is_refused_with_the_alternatives(project):
    project.spec("models:\n  x:\n    base_model: local/gpt\n    dataset: {train: ../data/train.jsonl}\n")
    result = project.run("validate")
    assert "'local/gpt' is not a local base model (available: local/linear-ngram)" in result.err


def test_for_each_stamps_out_one_model_per_key(project):
    for task in ("billing", "shipping"):
        (project.root / "data" / task).mkdir()
        (project.root / "data" / task / "train.jsonl").write_text(
            (project.root / "data" / "train.jsonl").read_text())
    project.spec("""\
defaults:
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 2}
models:
  router:
    for_each:
      billing: {hyperparameters: {epoch_count: 3}}
      shipping:
    display_name: Router for ${key}
    dataset:
      train: ../data/${key}/train.jsonl
""")
    changes = {c["name"]: c for c in json.loads(project.run("plan", "--json").out)["changes"]}
    assert sorted(changes) == ["router-billing", "router-shipping"]
    assert changes["router-billing"]["fields"]["hyperparameters.epoch_count"]["new"] == 3
    assert changes["router-shipping"]["fields"]["hyperparameters.epoch_count"]["new"] == 2
    assert changes["router-shipping"]["fields"]["display_name"]["new"] == "Router for shipping"


def test_for_each_list_form(project):
    project.spec("""\
models:
  lang:
    for_each: [en, de, fr]
    base_model: local/linear-ngram
    description: Sentiment in ${key}
    dataset: {train: ../data/train.jsonl}
""")
    result = json.loads(project.run("plan", "--json").out)
    assert [c["name"] for c in result["changes"]] == ["lang-de", "lang-en", "lang-fr"]
    assert result["changes"][0]["fields"]["description"]["new"] == "Sentiment in de"


def test_defaults_merge_deeply_and_provider_defaults_fill_the_rest(project):
    project.spec("""\
defaults:
  base_model: local/linear-ngram
  hyperparameters: {epoch_count: 7, learning_rate: 0.2}
models:
  x:
    dataset: {train: ../data/train.jsonl}
    hyperparameters: {learning_rate: 0.3}
""")
    fields = json.loads(project.run("plan", "--json").out)["changes"][0]["fields"]
    assert fields["hyperparameters.epoch_count"]["new"] == 7
    assert fields["hyperparameters.learning_rate"]["new"] == 0.3
    assert fields["hyperparameters.batch_size"]["new"] == 8  # the local provider's default
    assert fields["display_name"]["new"] == "x"


def test_writing_a_provider_default_explicitly_changes_nothing(project):
    project.spec("models:\n  x:\n    base_model: local/linear-ngram\n    dataset: {train: ../data/train.jsonl}\n")
    assert project.run("apply", "--auto-approve").code == 0
    project.spec("models:\n  x:\n    base_model: local/linear-ngram\n    dataset: {train: ../data/train.jsonl}\n"
                 "    hyperparameters: {batch_size: 8}\n")
    assert project.run("plan", "--detailed-exitcode").code == 0


def test_missing_config_directory_is_a_clear_error(project):
    result = project.run("plan", "--config", "nowhere")
    assert result.code == 1 and "nowhere: config directory not found" in result.err


def test_usage_errors_exit_1_not_2(project):
    result = project.run("plan", "--no-such-flag")
    assert result.code == 1
    assert "No such option" in result.err


@pytest.mark.parametrize("link", ["file", "directory"])
def test_a_dataset_reached_through_a_link_out_of_the_project_is_refused(project, tmp_path, link):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "train.jsonl").write_text((project.root / "data" / "train.jsonl").read_text())
    if link == "file":
        (project.root / "data" / "linked.jsonl").symlink_to(outside / "train.jsonl")
        train = "../data/linked.jsonl"
    else:
        (project.root / "data" / "linked").symlink_to(outside)
        train = "../data/linked/train.jsonl"
    project.spec(f"models:\n  x:\n    base_model: local/linear-ngram\n    dataset: {{train: {train}}}\n")
    result = project.run("validate")
    assert result.code == 1
    assert f"models.x.dataset.train: {train} resolves to {outside / 'train.jsonl'}" in result.err
    assert "outside the project root" in result.err
