"""The CI recipes users copy (examples/): valid against GitHub's and GitLab's schemas (as check-jsonschema vendors
them: offline), least privilege per job, the pinned tuner, real tuner options, one plan comment per workspace
updated in place, and apply of exactly the plan reviewed."""

from __future__ import annotations

import copy
import json
import re
import shlex
import shutil
import socket
import subprocess
import sys
import threading
import tomllib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.resources import files
from pathlib import Path

import jsonschema
import pytest
import referencing
from ruamel.yaml import YAML

from runner.cli import cli
from runner.plan import CREATE, Change, Plan
from runner.render.markdown import plan_markdown
from tests.conftest import REPO

GITHUB, GITLAB = REPO / "examples" / "github-actions.yml", REPO / "examples" / "gitlab-ci.yml"
DISTRIBUTION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"]


def install(options: str = "") -> str:
    """The pinned install line: this repository's distribution at the recipe's TUNER_VERSION."""
    return f'python -m pip install{options} "{DISTRIBUTION}==${{TUNER_VERSION}}"'


def load(path: Path) -> dict:
    """YAML 1.2, as GitHub and GitLab read it (`on:` is a key, not YAML 1.1's True)."""
    return YAML(typ="safe", pure=True).load(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def workflow() -> dict:
    return load(GITHUB)


@pytest.fixture(scope="module")
def pipeline() -> dict:
    return load(GITLAB)


@pytest.fixture
def offline(monkeypatch):
    """Any connection attempt fails the test: the schemas must come from check-jsonschema's vendored files."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def schema_errors(document: dict, vendored: str) -> list[str]:
    """Errors against check-jsonschema's vendored schema; an empty registry resolves no remote $ref (none is
    fetched: an unresolvable one raises)."""
    schema = json.loads(files("check_jsonschema.builtin_schemas.vendor").joinpath(vendored).read_text())
    validator = jsonschema.Draft7Validator(schema, registry=referencing.Registry())
    return [f"{list(error.path)}: {error.message}" for error in validator.iter_errors(document)]


def test_the_github_workflow_is_valid_against_githubs_workflow_schema(workflow, offline):
    broken = copy.deepcopy(workflow)
    broken["jobs"]["plan"]["permissions"]["pull-requests"] = "writable"

    assert schema_errors(workflow, "github-workflows.json") == []
    assert schema_errors(broken, "github-workflows.json") != []  # the schema does check what it is given


def test_the_gitlab_pipeline_is_valid_against_gitlabs_ci_schema(pipeline, offline):
    broken = copy.deepcopy(pipeline)
    broken["apply"]["when"] = "sometimes"

    assert schema_errors(pipeline, "gitlab-ci.json") == []
    assert schema_errors(broken, "gitlab-ci.json") != []


def steps_running(job: dict, text: str) -> list[dict]:
    return [step for step in job["steps"] if text in step.get("run", "")]


def test_every_github_job_asks_for_its_own_least_permissions(workflow):
    jobs = workflow["jobs"]

    assert workflow["permissions"] == {}  # nothing granted by default
    assert all("permissions" in job for job in jobs.values())
    assert jobs["plan"]["permissions"] == {"contents": "read", "pull-requests": "write", "id-token": "write"}
    assert jobs["apply"]["permissions"] == {"contents": "read", "actions": "read", "pull-requests": "read",
                                            "id-token": "write"}
    # Only the job holding no cloud credential may write to the repository.
    writers = [name for name, job in jobs.items() if job["permissions"].get("contents") == "write"]
    assert writers == ["propose-state"]
    assert "id-token" not in jobs["propose-state"]["permissions"]
    assert "secrets." not in json.dumps(jobs["propose-state"])


def test_google_cloud_is_reached_through_workload_identity_federation(workflow, pipeline):
    for name in ("plan", "apply"):
        auth = [step for step in workflow["jobs"][name]["steps"]
                if step.get("uses", "").startswith("google-github-actions/auth@")]
        assert auth and set(auth[0]["with"]) == {"workload_identity_provider", "service_account"}
        assert workflow["jobs"][name]["permissions"]["id-token"] == "write"
    assert "credentials_json" not in GITHUB.read_text()  # no service-account key
    assert pipeline[".tuner"]["id_tokens"]["GCP_ID_TOKEN"]["aud"].startswith("https://iam.googleapis.com/")
    assert '"type": "external_account"' in "\n".join(pipeline[".tuner"]["before_script"])


def test_every_job_that_runs_tuner_installs_the_pinned_release(workflow, pipeline):
    assert re.fullmatch(r"\d+\.\d+\.\d+", workflow["env"]["TUNER_VERSION"])
    assert pipeline["variables"]["TUNER_VERSION"] == workflow["env"]["TUNER_VERSION"]
    for name in ("plan", "apply"):
        steps = workflow["jobs"][name]["steps"]
        installed = steps.index(steps_running(workflow["jobs"][name], install())[0])
        first_use = min(steps.index(step) for step in steps if re.search(r"^\s*tuner ", step.get("run", ""), re.M))
        assert installed < first_use
    assert pipeline[".tuner"]["before_script"][0] == install(" -q")
    jobs = {name: job for name, job in pipeline.items() if isinstance(job, dict) and "script" in job}
    running = {name for name, job in jobs.items() if tuner_commands(*job["script"])}
    assert running == {name for name, job in jobs.items() if job.get("extends") == ".tuner"} == {"plan", "apply"}
    assert "make install" not in GITHUB.read_text() + GITLAB.read_text()  # that is tuner's own repository


def scripts(recipe: dict) -> list[str]:
    """The shell scripts of a recipe's jobs: GitHub's `run` steps, GitLab's before_script and script lines."""
    jobs = recipe["jobs"].values() if "jobs" in recipe else [job for job in recipe.values() if isinstance(job, dict)]
    return [step["run"] for job in jobs for step in job.get("steps", []) if "run" in step] + \
           [line for job in jobs for key in ("before_script", "script") for line in job.get(key, [])]


def tuner_commands(*texts: str) -> list[list[str]]:
    """Every `tuner ...` command in shell scripts, variables given sample values, redirections cut."""
    commands = []
    for text in texts:
        for line in re.findall(r"(?:^|[;&|(]) *(tuner (?:validate|plan|apply)\b[^\n;|>]*)", text, re.M):
            line = re.sub(r"\"?\$\{?(\w+)\}?\"?", lambda m: "true" if m[1] == "SAME_REPOSITORY" else "x", line)
            commands.append(shlex.split(line)[1:])
    return commands


@pytest.mark.parametrize("recipe", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_the_recipes_use_only_options_tuner_has(recipe):
    commands = tuner_commands(*scripts(load(recipe)))

    assert [command[0] for command in commands] == ["validate", "plan", "apply"]
    for args in commands:
        with cli.make_context("tuner", list(args), resilient_parsing=False) as parent:
            name, command, rest = cli.resolve_command(parent, list(args))
            command.make_context(name, rest, parent=parent)  # raises on an unknown option or a bad value
    plan, apply = commands[1], commands[2]
    assert {"--detailed-exitcode", "--markdown"} <= set(plan) and plan[plan.index("--out") + 1] == "tuner.plan"
    assert apply[-1] == "tuner.plan"  # exactly the reviewed plan: apply refuses it when stale


def test_the_github_apply_job_applies_the_artifact_the_pull_request_saved(workflow):
    plan, apply = workflow["jobs"]["plan"], workflow["jobs"]["apply"]
    upload = next(step for step in plan["steps"] if step.get("uses", "").startswith("actions/upload-artifact@"))
    fetch = apply["steps"][[step.get("name") for step in apply["steps"]].index("Fetch the plan reviewed on the pull "
                                                                              "request")]

    assert upload["with"] == {"name": "tuner-plan-${{ env.TUNER_WORKSPACE }}", "path": "tuner.plan",
                              "retention-days": 30}
    assert '--name "tuner-plan-$TUNER_WORKSPACE"' in fetch["run"] and "--event pull_request" in fetch["run"]
    assert not steps_running(apply, "tuner plan")  # no new plan on merge: the reviewed one or nothing
    assert apply["concurrency"]["cancel-in-progress"] is False


def test_no_recipe_pushes_to_the_protected_branch(workflow, pipeline):
    assert "git push" not in GITHUB.read_text()
    create = next(step for step in workflow["jobs"]["propose-state"]["steps"]
                  if step.get("uses", "").startswith("peter-evans/create-pull-request@"))
    assert create["with"]["branch"] == "tuner/state"
    pushes = [line for line in pipeline["propose-state"]["script"] if "git push" in line]
    assert len(pushes) == 1 and "HEAD:refs/heads/tuner/state " in pushes[0]


def _plan_comment(workspace: str, models: int) -> str:
    changes = tuple(Change(f"m{number}", CREATE, "local") for number in range(models))
    return plan_markdown(Plan(changes, "lineage", 1), workspace=workspace, backend="local",
                         state_at=f"state/{workspace}.json")


GITHUB_API_FAKE = """
const fs = require('fs');
const [scriptPath, statePath] = process.argv.slice(2);
const script = fs.readFileSync(scriptPath, 'utf8');
const state = JSON.parse(fs.readFileSync(statePath, 'utf8'));
const listComments = async () => {};
const github = {
  paginate: async (method, where) => { if (method !== listComments) throw new Error('not paged'); return state; },
  rest: {issues: {
    listComments,
    updateComment: async ({comment_id, body}) => { state.find(c => c.id === comment_id).body = body; },
    createComment: async ({issue_number, body}) => {
      state.push({id: 1000 + state.length, issue_number, body, user: {type: 'Bot'}}); },
  }},
};
const context = {repo: {owner: 'team', repo: 'models'}, issue: {number: 7}};
const run = new (Object.getPrototypeOf(async function () {}).constructor)('require', 'github', 'context', script);
run(require, github, context).then(() => fs.writeFileSync(statePath, JSON.stringify(state)));
"""


def test_the_github_plan_comment_is_one_per_workspace_updated_in_place(workflow, tmp_path):
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the github-script step cannot be run")
    step = next(s for s in workflow["jobs"]["plan"]["steps"] if s.get("uses", "").startswith("actions/github-script"))
    (tmp_path / "script.js").write_text(step["with"]["script"])
    (tmp_path / "fake.js").write_text(GITHUB_API_FAKE)
    comments = tmp_path / "comments.json"
    quoted = {"id": 1, "body": _plan_comment("default", 1), "user": {"type": "User"}}  # a person quoting it
    other = {"id": 2, "body": _plan_comment("prod", 1), "user": {"type": "Bot"}}
    comments.write_text(json.dumps([quoted, other]))

    def post(plan: str) -> list[dict]:
        (tmp_path / "plan.md").write_text(plan)
        subprocess.run([node, "fake.js", "script.js", str(comments)], cwd=tmp_path, check=True, timeout=30)
        return json.loads(comments.read_text())

    first = post(_plan_comment("default", 1))
    second = post(_plan_comment("default", 2))

    assert len(first) == 3 and first[:2] == [quoted, other]
    assert second[:2] == [quoted, other] and [c["id"] for c in second] == [c["id"] for c in first]
    assert second[2]["body"] == _plan_comment("default", 2)


class FakeGitLab(BaseHTTPRequestHandler):
    """GitLab's REST API as the pipeline's helper calls it (notes, merge requests of a commit, pipelines, jobs,
    artifacts), paged 100 items at a time with X-Next-Page, on 127.0.0.1."""

    notes: list[dict]
    artifacts: dict[int, bytes]
    routes: dict[str, list]

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body: bytes, headers: dict | None = None) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if self.headers["PRIVATE-TOKEN"] != "glpat-test":
            return self._answer(401, b"{}")
        if path == "/api/v4/user":
            return self._answer(200, b'{"id": 42}')
        if match := re.fullmatch(r"/api/v4/projects/5/jobs/(\d+)/artifacts/tuner.plan", path):
            return self._answer(200, self.artifacts[int(match[1])])
        items = self.notes if path.endswith("/merge_requests/7/notes") else self.routes[path]
        asked = re.search(r"(?:^|&)page=(\d+)", query)
        page = int(asked[1]) if asked else 1
        more = {"X-Next-Page": str(page + 1)} if len(items) > page * 100 else {"X-Next-Page": ""}
        self._answer(200, json.dumps(items[(page - 1) * 100:page * 100]).encode(), more)

    def _body(self) -> str:
        return json.loads(self.rfile.read(int(self.headers["Content-Length"])))["body"]

    def do_PUT(self) -> None:
        note_id = int(self.path.rsplit("/", 1)[1])
        next(note for note in self.notes if note["id"] == note_id)["body"] = self._body()
        self._answer(200, b"{}")

    def do_POST(self) -> None:
        self.notes.append({"id": 5000 + len(self.notes), "body": self._body(), "author": {"id": 42}})
        self._answer(201, b"{}")


@pytest.fixture
def gitlab(tmp_path):
    """A fake GitLab on 127.0.0.1, and a runner of the pipeline's API helper against it in TMP_PATH."""
    FakeGitLab.notes, FakeGitLab.artifacts, FakeGitLab.routes = [], {}, {}
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitLab)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    helper = re.search(r"<<'PY'\n(.*?)\nPY\n", load(GITLAB)[".gitlab-api"], re.S)[1]
    (tmp_path / "gitlab_api.py").write_text(helper)
    env = {"CI_API_V4_URL": f"http://127.0.0.1:{server.server_port}/api/v4", "CI_PROJECT_ID": "5",
           "CI_MERGE_REQUEST_IID": "7", "TUNER_GITLAB_TOKEN": "glpat-test", "CI_COMMIT_SHA": "f00d",
           "TUNER_STATE_IN_GIT": "true", "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "feature"}

    def run(function: str, **variables: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "gitlab_api.py", function], cwd=tmp_path, env={**env, **variables},
                              capture_output=True, text=True, timeout=30)

    yield run
    server.shutdown()
    server.server_close()


def test_the_gitlab_plan_note_is_one_per_workspace_updated_in_place(gitlab, tmp_path):
    people = [{"id": n, "body": "LGTM", "author": {"id": 7}} for n in range(120)]  # the notes span two pages
    quoted = {"id": 200, "body": _plan_comment("default", 1), "author": {"id": 7}}
    other = {"id": 201, "body": _plan_comment("prod", 1), "author": {"id": 42}}
    FakeGitLab.notes = [*people, quoted, other]

    (tmp_path / "plan.md").write_text(_plan_comment("default", 1))
    assert gitlab("upsert_note").returncode == 0
    (tmp_path / "plan.md").write_text(_plan_comment("default", 2))
    result = gitlab("upsert_note")

    assert result.returncode == 0, result.stderr
    assert FakeGitLab.notes[:122] == [*people, quoted, other]
    assert [note["body"] for note in FakeGitLab.notes[122:]] == [_plan_comment("default", 2)]


def test_the_gitlab_apply_fetches_the_plan_of_the_merged_requests_last_successful_pipeline(gitlab, tmp_path):
    FakeGitLab.routes = {
        "/api/v4/projects/5/repository/commits/f00d/merge_requests": [{"iid": 7, "sha": "head"}],
        "/api/v4/projects/5/merge_requests/7/pipelines": [{"id": 12, "sha": "head", "status": "failed"},
                                                          {"id": 11, "sha": "head", "status": "success"},
                                                          {"id": 10, "sha": "older", "status": "success"}],
        "/api/v4/projects/5/pipelines/11/jobs": [{"id": 30, "name": "validate"}, {"id": 31, "name": "plan"}],
    }
    FakeGitLab.artifacts = {31: b'{"the": "reviewed plan"}'}

    result = gitlab("reviewed_plan")

    assert result.returncode == 0, result.stderr
    assert (tmp_path / "tuner.plan").read_bytes() == b'{"the": "reviewed plan"}'


def test_the_gitlab_apply_refuses_a_merge_whose_head_was_never_planned(gitlab, tmp_path):
    FakeGitLab.routes = {
        "/api/v4/projects/5/repository/commits/f00d/merge_requests": [{"iid": 7, "sha": "head"}],
        "/api/v4/projects/5/merge_requests/7/pipelines": [{"id": 10, "sha": "older", "status": "success"}],
    }
    result = gitlab("reviewed_plan")
    assert result.returncode == 1 and "no successful plan of merge request !7 at head" in result.stderr
    assert not (tmp_path / "tuner.plan").exists()


def test_gitlab_plans_wait_for_an_open_state_merge_request_to_be_merged(gitlab):
    FakeGitLab.routes = {"/api/v4/projects/5/merge_requests": [{"iid": 8, "source_branch": "tuner/state"}]}

    refused = gitlab("open_state_requests")

    assert refused.returncode == 1 and "merge the open tuner/state merge request first" in refused.stderr
    assert gitlab("open_state_requests", CI_MERGE_REQUEST_SOURCE_BRANCH_NAME="tuner/state").returncode == 0
    assert gitlab("open_state_requests", TUNER_STATE_IN_GIT="false").returncode == 0
    FakeGitLab.routes = {"/api/v4/projects/5/merge_requests": []}
    assert gitlab("open_state_requests").returncode == 0


@pytest.mark.parametrize("recipe", [GITHUB, GITLAB], ids=["github", "gitlab"])
def test_every_shell_script_of_the_recipes_parses(recipe):
    """`bash -n`: a quote or heredoc left open fails here, not in a user's first pipeline."""
    for script in scripts(load(recipe)):
        checked = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"{checked.stderr}\n{script}"
