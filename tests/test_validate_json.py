"""`tuner validate --json` prints every diagnostic as JSON, valid or not, with a trustworthy exit code."""

from __future__ import annotations

import json

from tests.test_datasets import SMALL, rows, write_jsonl


def validate_json(project, *args: str) -> tuple[int, dict]:
    result = project.run("validate", "--json", *args)
    return result.code, json.loads(result.out)


def test_spec_errors_are_diagnostics_with_file_line_and_path(project):
    project.spec("models:\n  x:\n    base_model: 7\n", name="a.yaml")
    project.spec("models:\n  y:\n    provider: nowhere\n", name="b.yaml")
    code, report = validate_json(project)
    assert code == 1
    assert report["valid"] is False
    assert {"file": "configs/a.yaml", "line": 3, "column": None, "path": "models.x.base_model",
            "message": "7 is not of type 'string'", "severity": "error"} in report["diagnostics"]
    assert {"file": "configs/b.yaml", "line": 3, "column": None, "path": "models.y.provider",
            "message": "'nowhere' is not one of ['local', 'gemini', 'vertex', 'openai']",
            "severity": "error"} in report["diagnostics"]


def test_yaml_syntax_error_is_a_diagnostic(project):
    project.spec("models:\n  x: [unclosed\n", name="a.yaml")
    code, report = validate_json(project)
    assert code == 1
    [diagnostic] = report["diagnostics"]
    assert (diagnostic["file"], diagnostic["line"], diagnostic["path"]) == ("configs/a.yaml", 3, None)
    assert diagnostic["message"].startswith("invalid YAML")


def test_dataset_errors_carry_line_and_column(project):
    (project.root / "data" / "valid.jsonl").write_text('{"text_input": "a", "output": "b"}\nnot json\n')
    code, report = validate_json(project)
    assert code == 1 and report["valid"] is False
    [diagnostic] = report["diagnostics"]
    assert (diagnostic["file"], diagnostic["line"], diagnostic["column"]) == ("data/valid.jsonl", 2, 1)
    assert diagnostic["message"].startswith("invalid JSON") and diagnostic["severity"] == "error"


def test_warnings_are_diagnostics_of_a_valid_project(project):
    write_jsonl(project.root / "data" / "small.jsonl", rows(20))
    project.spec(SMALL.format(extra=", allow_small: true", batch=4))
    code, report = validate_json(project)
    assert code == 0 and report["valid"] is True
    [warning] = report["diagnostics"]
    assert warning["severity"] == "warning" and warning["path"] == "models.tiny.dataset.train"
    assert warning["file"] == "configs/models.yaml" and "has 20 examples" in warning["message"]
