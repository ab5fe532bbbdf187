"""A spec's every error is reported at once, and for_each errors name the offending key."""

from __future__ import annotations

import pytest

MODEL = "    base_model: local/linear-ngram\n    dataset: {train: ../data/train.jsonl}\n"


def test_a_nan_does_not_hide_the_other_errors_of_the_file(project):
    project.spec("models:\n  x:\n" + MODEL + "    hyperparameters:\n      learning_rate: .nan\n"
                 "      batch_size: 0\n  y:\n    base_model: 7\n    colour: blue\n", name="a.yaml")
    result = project.run("validate")
    assert result.code == 1
    assert "configs/a.yaml:6: models.x.hyperparameters.learning_rate: '.nan' is not a finite number" in result.err
    assert "configs/a.yaml:7: models.x.hyperparameters.batch_size: 0 is less than the minimum of 1" in result.err
    assert "configs/a.yaml:9: models.y.base_model: 7 is not of type 'string'" in result.err
    assert "configs/a.yaml:10: models.y.colour: unknown key" in result.err
    assert "learning_rate: None" not in result.err  # the refused value is not reported twice


def test_a_duplicate_key_does_not_hide_the_other_errors_of_the_file(project):
    project.spec("models:\n  x:\n" + MODEL + "    base_model: again\n  y:\n    base_model: 7\n", name="a.yaml")
    result = project.run("validate")
    assert "configs/a.yaml:5: models.x.base_model: duplicate key (first defined on line 3)" in result.err
    assert "configs/a.yaml:7: models.y.base_model: 7 is not of type 'string'" in result.err


FOR_EACH_ERRORS = {
    "a bad key in a list": ("    for_each: [good, Bad_Key]\n",
                            "configs/a.yaml:5: models.x.for_each.1: 'Bad_Key' does not match"),
    "a bad key in a mapping": ("    for_each:\n      good: {}\n      Bad_Key: {}\n",
                               "configs/a.yaml:7: models.x.for_each.Bad_Key: invalid key 'Bad_Key'"),
    "a bad override": ("    for_each:\n      good:\n        epochs: 3\n",
                       "configs/a.yaml:7: models.x.for_each.good.epochs: unknown key"),
}


@pytest.mark.parametrize("case", list(FOR_EACH_ERRORS))
def test_a_for_each_error_names_the_key(project, case):
    for_each, expected = FOR_EACH_ERRORS[case]
    project.spec("models:\n  x:\n" + MODEL + for_each, name="a.yaml")
    result = project.run("validate")
    assert result.code == 1
    assert expected in result.err, result.err
    assert "is not of type" not in result.err  # the branch of the wrong type is not what is wrong
