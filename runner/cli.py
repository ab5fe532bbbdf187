"""Command line: parse options, call one operation (runner/ops/) and one view (runner/render/). No logic here.

Exit codes (runner.status.ExitStatus): 0 success; 1 error; 2 changes present (plan --detailed-exitcode);
130 interrupted. The world a run reads (cwd, environment variables, terminals, clock) is one Environment, made
in main() and handed to every operation.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from runner import __version__
from runner.environment import Environment
from runner.errors import DatasetError, SpecError, TunerError
from runner.scaffold import CI_RECIPES, PROVIDERS
from runner.shipped import SCHEMAS, schema_path
from runner.status import ExitStatus

if TYPE_CHECKING:  # the operations are imported lazily: `tuner --help` stays fast
    from runner.clock import Clock
    from runner.project import Project


CONFIG_HELP = "Directory of spec files (*.yaml, searched recursively), relative to the working directory. " \
              "Default: configs/ in the project root"
WORKSPACE_HELP = "Separate state over the same configs (state/NAME.json). Env: TUNER_WORKSPACE. " \
                 "Default: the selected workspace (`tuner workspace select`), else default"


def _complete_models(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of a model NAME: the models the specs declare (read from the spec cache: fast)."""
    return _completions(ctx, incomplete, lambda project: [model.name for model in project.config.models])


def _complete_workspaces(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    """Shell completion of a workspace: those with a state in the configured backend, and default."""
    from runner.ops.workspace import workspaces

    return _completions(ctx, incomplete, workspaces)


def _completions(ctx: click.Context, incomplete: str, names_of) -> list[str]:
    """The names starting with INCOMPLETE of the project the words typed so far name (--config, -w, before or
    after the command). A project that cannot be read completes nothing: a shell prompt is no place for errors."""
    from runner.project import Project

    root = ctx.find_root()
    given = {key: ctx.params.get(key) or root.params.get(key) for key in ("config", "workspace")}
    try:
        names = names_of(Project.open(given["config"], given["workspace"], env=root.obj or Environment()))
    except (TunerError, OSError):
        return []
    return [name for name in names if name.startswith(incomplete)]


def project_options(func):
    """--config and --workspace, shared by every command that reads the project. Also accepted before the
    command (`tuner -w prod plan`); given both places, the command's own (later, more specific) one wins."""

    @click.option("--config", "config", metavar="DIR", default=None, help=CONFIG_HELP)
    @click.option("--workspace", "-w", metavar="NAME", default=None, help=WORKSPACE_HELP,
              shell_complete=_complete_workspaces)
    @functools.wraps(func)
    def wrapper(*args, config, workspace, **kwargs):
        before = click.get_current_context().meta.get(_GLOBAL_OPTIONS, {})
        return func(*args, config=config or before.get("config"), workspace=workspace or before.get("workspace"),
                    **kwargs)

    return wrapper


_GLOBAL_OPTIONS = "tuner.global_options"


def _env() -> Environment:
    """The run's Environment, made once in main()."""
    return click.get_current_context().find_root().obj


def _project(config, workspace, allow_small_dataset: bool = False) -> Project:
    from runner.project import Project

    return Project.open(config, workspace, allow_small_dataset, _env())


def _colour() -> bool:
    return _env().colour


def _out(text: str | Iterable[str], err: bool = False) -> None:
    """TEXT, or its pieces one after another (a large plan is printed without being held whole)."""
    for piece in [text] if isinstance(text, str) else text:
        click.echo(piece, nl=False, err=err)


def _warn(warnings: list[str], verbose: bool = False) -> None:
    from runner.render.outcome import warnings_text

    _out(warnings_text(warnings, verbose), err=True)


VERBOSE_HELP = "List every warning (a kind repeated in many files is otherwise said once, with its first)."


REFRESH_HELP = ("Ask each provider what it really holds first (one list call each; the default, as terraform "
                "does). --refresh=false (or --no-refresh) plans from the recorded state alone, calling no "
                "provider: for offline pull-request plans.")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


class FlagValueCommand(click.Command):
    """A command whose boolean flag pairs (--refresh/--no-refresh) also take terraform's spelling --refresh=false."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        pairs = {p.opts[0]: p.secondary_opts[0] for p in self.params
                 if isinstance(p, click.Option) and p.is_flag and p.secondary_opts}
        end = args.index("--") if "--" in args else len(args)
        return super().parse_args(ctx, [_flag_value(arg, pairs) for arg in args[:end]] + args[end:])


def _flag_value(arg: str, pairs: dict[str, str]) -> str:
    name, equals, value = arg.partition("=")
    if not equals or name not in pairs:
        return arg
    if value.lower() in _TRUE:
        return name
    if value.lower() in _FALSE:
        return pairs[name]
    raise click.BadParameter(f"{value!r} is not true or false", param_hint=f"'{name}'")


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="tuner")
@click.option("--config", "config", metavar="DIR", default=None, help=CONFIG_HELP)
@click.option("--workspace", "-w", metavar="NAME", default=None, help=WORKSPACE_HELP,
              shell_complete=_complete_workspaces)
@click.option("--no-color", "no_color", is_flag=True, help="Plain text even on a terminal (as NO_COLOR=1).")
@click.pass_context
def cli(ctx: click.Context, config, workspace, no_color):
    """tuner: Terraform for fine-tuned models.

    Declare models in YAML under configs/, review what would change with `tuner plan`, and let
    `tuner apply` submit only the tuning jobs that changed. State is recorded in state/ for git.

    \b
    Typical use:
      tuner validate                 check every spec and dataset (touches nothing)
      tuner plan                     show what would be created, replaced, updated, destroyed
      tuner apply --auto-approve     make it so
      tuner predict NAME "text"      ask the current tuned model
    """
    ctx.meta[_GLOBAL_OPTIONS] = {"config": config, "workspace": workspace}
    ctx.obj.no_color = ctx.obj.no_color or no_color


@cli.command()
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option("--provider", type=click.Choice(PROVIDERS), default="local", show_default=True,
              help="Which provider the example spec tunes on.")
@click.option("--ci", type=click.Choice(sorted(CI_RECIPES)), default=None,
              help="Also write the CI recipe (.github/workflows/tuner.yml or .gitlab-ci.yml).")
def init(directory: Path, provider: str, ci: str | None):
    """Lay out a project to commit: configs/ (a commented example spec), data/, state/, .gitignore entries.

    Never overwrites: files already there are kept, and .gitignore only gains the entries it lacks.
    """
    from runner.render.outcome import scaffold_text
    from runner.scaffold import init_project

    done = init_project(directory, provider, ci)
    _out(scaffold_text(str(directory), done.created, done.kept, done.ignored, done.has_specs))


@cli.command()
@click.argument("kind", type=click.Choice(SCHEMAS), default="spec")
def schema(kind: str):
    """Print the JSON schema of a spec file (default), a state file or a saved plan.

    \b
    Point an editor at a local copy:  tuner schema > .tuner/spec.schema.json
    """
    _out(schema_path(kind).read_text(encoding="utf-8"))


@cli.command()
@project_options
@click.option("--allow-small-dataset", is_flag=True, help="Fewer than 50 examples warns instead of failing.")
@click.option("--json", "as_json", is_flag=True, help="Print the models found (name, fingerprint, datasets).")
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
def validate(config, workspace, allow_small_dataset, as_json, verbose):
    """Check every spec and dataset without touching state or any provider.

    Exit 0 when everything is valid, 1 otherwise, listing every problem as file:line[:column].
    """
    if as_json:
        _validate_json(config, workspace, allow_small_dataset)
        return
    from runner.render.outcome import validated_text

    resolution = _project(config, workspace, allow_small_dataset).resolve()
    _warn(resolution.warnings, verbose)
    _out(validated_text(resolution))


def _validate_json(config, workspace, allow_small_dataset: bool) -> None:
    """validate --json: every problem and warning as a diagnostic on stdout, invalid or not."""
    from runner.render.json_view import invalid_json, validation_json

    try:
        resolution = _project(config, workspace, allow_small_dataset).resolve()
    except (SpecError, DatasetError) as error:
        _out(invalid_json(error.problems))
        sys.exit(ExitStatus.ERROR)
    _out(validation_json(resolution))


@cli.command(cls=FlagValueCommand)
@project_options
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Plan only this model (repeatable).")
@click.option("--replace", "forced", multiple=True, metavar="NAME", shell_complete=_complete_models,
              help="Train this model again even though nothing changed (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of text (= --format json).")
@click.option("--markdown", is_flag=True, help="Print a pull-request comment (= --format markdown).")
@click.option("--format", "output_format", type=click.Choice(["text", "json", "markdown"]), default=None,
              help="Output format. Default: text.")
@click.option("--compact", is_flag=True, help="One line per model, without its fields (text only).")
@click.option("--detailed-exitcode", is_flag=True, help="Exit 0 when nothing changes, 2 when changes are present.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Save the plan; `tuner apply FILE` then applies exactly it (or refuses if stale).")
@click.option("--refresh/--no-refresh", default=True, help=REFRESH_HELP)
@click.option("--destroy", is_flag=True,
              help="Preview `tuner destroy` (same rules, from the recorded state: no dataset is read, no provider "
                   "asked); with --out, `tuner apply FILE` then performs it.")
@click.option("--allow-small-dataset", is_flag=True, help="Fewer than 50 examples warns instead of failing.")
@click.option("--verbose", "-v", is_flag=True, help=VERBOSE_HELP)
def plan(config, workspace, targets, forced, as_json, markdown, output_format, compact, detailed_exitcode, out,
         refresh, destroy, allow_small_dataset, verbose):
    """Show what apply would create (+), replace (-/+), update in place (~) or destroy (-).

    Changed fields are shown old -> new; fields that force a new tuned model are marked.
    """
    from runner.ops.plan import plan as plan_op
    from runner.ops.plan import plan_destroy, save_plan

    if destroy and forced:
        raise click.UsageError("--replace cannot be combined with --destroy")
    output_format = _one_format(output_format, as_json, markdown)
    if compact and output_format != "text":
        raise click.UsageError(f"--compact is a text view: it cannot be combined with the {output_format} format")
    project = _project(config, workspace, allow_small_dataset)
    if destroy:
        the_plan, resolution = plan_destroy(project, list(targets)), None
    else:
        the_plan, resolution = plan_op(project, list(targets), refresh=refresh, forced=list(forced),
                                       changes_only=output_format == "text" and not out)
        _warn(resolution.warnings, verbose)
    if out:
        save_plan(project, out, the_plan, resolution, list(targets), list(forced))
    _out(_plan_view(output_format, project, compact)(the_plan))
    if out and output_format == "text":
        from runner.render.outcome import saved_plan_text

        _out(saved_plan_text(out))
    if detailed_exitcode and the_plan.has_changes:
        sys.exit(ExitStatus.CHANGES_PRESENT)


@cli.command(cls=FlagValueCommand)
@project_options
@click.argument("plan_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Apply only this model (repeatable).")
@click.option("--replace", "forced", multiple=True, metavar="NAME", shell_complete=_complete_models,
              help="Train this model again even though nothing changed (repeatable).")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 256),
              help="Most changes in flight at once (each provider also caps its own tuning jobs).")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long for another apply's lock instead of failing at once.")
@click.option("--refresh/--no-refresh", default=True, help=REFRESH_HELP + " Not with PLAN_FILE.")
@click.option("--allow-small-dataset", is_flag=True, help="Fewer than 50 examples warns instead of failing.")
def apply(config, workspace, plan_file, auto_approve, targets, forced, parallelism, lock_timeout, refresh,
          allow_small_dataset):
    """Submit the tuning jobs that changed, wait for them, and record state.

    With PLAN_FILE (from `tuner plan --out`), apply exactly that plan, refusing it if the state or
    any input changed since. Replacement is create-before-destroy. Interrupt with Ctrl-C at any time:
    state is kept, running jobs keep running, and the next apply resumes them without paying twice.
    """
    refresh_given = click.get_current_context().get_parameter_source("refresh") == ParameterSource.COMMANDLINE
    if plan_file and (targets or forced or refresh_given):
        raise click.UsageError("--target, --replace and --refresh cannot be combined with a saved plan "
                               "(it is already made)")
    from runner.ops.apply import apply as apply_op

    if plan_file:
        from runner.project import Project

        project = Project.open_for_plan(plan_file, config, workspace, allow_small_dataset, _env())
    else:
        project = _project(config, workspace, allow_small_dataset)
    _execute(lambda confirm, reporter: apply_op(project, plan_file, list(targets), confirm, reporter,
                                                parallelism=parallelism, lock_timeout=lock_timeout, refresh=refresh,
                                                forced=list(forced)),
             auto_approve or plan_file is not None)


@cli.command()
@project_options
@click.option("--target", "targets", multiple=True, metavar="NAME", help="Destroy only this model (repeatable).")
@click.option("--auto-approve", is_flag=True, help="Do not ask for confirmation.")
@click.option("--parallelism", default=10, show_default=True, type=click.IntRange(1, 256),
              help="Most deletions in flight at once.")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long for another operation's lock instead of failing at once.")
def destroy(config, workspace, targets, auto_approve, parallelism, lock_timeout):
    """Delete managed tuned models (all, or the --target ones) and remove them from state.

    Models with lifecycle.prevent_destroy: true are refused.
    """
    from runner.ops.apply import destroy as destroy_op

    project = _project(config, workspace)
    _execute(lambda confirm, reporter: destroy_op(project, list(targets), confirm, reporter, parallelism=parallelism,
                                                  lock_timeout=lock_timeout), auto_approve, verb="Destroy")


def _one_format(output_format: str | None, as_json: bool, markdown: bool) -> str:
    """The one output format --format, --json and --markdown name (text when none does)."""
    named = dict.fromkeys(f for f, given in ((output_format, output_format), ("json", as_json),
                                              ("markdown", markdown)) if given)
    if len(named) > 1:
        raise click.UsageError(f"output formats {' and '.join(named)} cannot be combined: choose one")
    return next(iter(named), "text")


def _plan_view(output_format: str, project: Project | None = None, compact: bool = False):
    """The plan's view for --format: each is imported only when asked for. The markdown names PROJECT's
    workspace and state backend: a pull request may carry plans of several."""
    if output_format == "json":
        from runner.render.json_view import plan_json

        return plan_json
    if output_format == "markdown":
        from runner.render.markdown import plan_markdown

        return functools.partial(plan_markdown, workspace=project.workspace, backend=project.backend_kind,
                                 state_at=project.backend().display)
    from runner.render.plan import plan_chunks

    return functools.partial(plan_chunks, colour=_colour(), compact=compact)


def _confirmed(question: str, remedy: str) -> bool:
    """Ask a yes/no question on the terminal; without a terminal, refuse (a script must say so explicitly)."""
    if not _env().stdin_isatty:
        raise TunerError("refusing to proceed without confirmation: standard input is not a terminal", remedy=remedy)
    answer = click.prompt(f"{question} Only 'yes' will be accepted", default="", show_default=False)
    return answer.strip() == "yes"


def _execute(run, auto_approve: bool, verb: str = "Apply") -> None:
    """Show the plan, confirm, run it with progress, and report the outcome with a trustworthy exit code."""
    from runner.render.outcome import INTERRUPTED_TEXT, complete_text, failures_text
    from runner.render.progress import progress_reporter

    show_plan = _plan_view("text")

    def confirm(the_plan) -> bool:
        _out(show_plan(the_plan))
        return auto_approve or _confirmed("\nDo you want to perform these actions?",
                                          "review with `tuner plan`, then pass --auto-approve")

    env = _env()  # the injected clock times the live table too
    reporter = progress_reporter(monotonic=env.clock.monotonic, live=env.stderr_isatty, colour=env.stderr_colour)
    try:
        the_plan, result = run(confirm, reporter)
    finally:
        reporter.close()
    if result is None:
        if the_plan.has_changes:
            click.echo("Cancelled.")
            sys.exit(ExitStatus.ERROR)
        _out(show_plan(the_plan))
        return
    if result.interrupted:
        _out(INTERRUPTED_TEXT, err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    if result.failures:
        _out(failures_text(result.failures), err=True)
        sys.exit(ExitStatus.ERROR)
    _out(complete_text(verb, the_plan))


@cli.command()
@project_options
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS",
              help="Wait this long for another operation's lock instead of failing at once.")
def refresh(config, workspace, lock_timeout):
    """Update state from what each provider really holds (one paged list call per provider).

    A model deleted outside tuner leaves state (the next plan re-creates it); a display name or
    description changed outside tuner is recorded (the next plan changes it back).
    """
    from runner.ops.refresh import refresh as refresh_op
    from runner.render.state import refresh_text

    _out(refresh_text(*refresh_op(_project(config, workspace), lock_timeout)))


@cli.command("import")
@project_options
@click.argument("name", shell_complete=_complete_models)
@click.argument("tuned_model_id")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def import_(config, workspace, name, tuned_model_id, lock_timeout):
    """Adopt an existing tuned model as NAME (declared in the configs).

    Records what the provider reports; run `tuner plan` next to see whether it matches the spec.
    """
    from runner.ops.import_ import import_model
    from runner.render.outcome import imported_text

    instance, notes = import_model(_project(config, workspace), name, tuned_model_id, lock_timeout)
    imported, noted = imported_text(name, instance, notes)
    _out(noted, err=True)
    _out(imported)


@cli.command()
@project_options
@click.argument("names", nargs=-1, shell_complete=_complete_models)
@click.option("--from", "source", required=True, metavar="WORKSPACE", shell_complete=_complete_workspaces,
              help="The workspace (of the same state backend) whose current models to serve here.")
@click.option("--all", "every", is_flag=True, help="Every model WORKSPACE serves that the specs declare.")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def promote(config, workspace, names, source, every, lock_timeout):
    """Serve here, without training, the model workspace --from serves as NAME (e.g. `tuner -w prod promote
    sentiment --from dev`).

    Only when this workspace's spec describes exactly that model (the same fingerprint); otherwise refused,
    showing the fields that differ. Nothing is deleted while another workspace still references a model.
    """
    if bool(names) == every:
        raise click.UsageError("name the models to promote, or pass --all")
    from runner.ops.promote import PromotionRefused
    from runner.ops.promote import promote as promote_op
    from runner.render.outcome import promoted_text, promotion_refused_text

    project = _project(config, workspace)
    try:
        promotions = promote_op(project, list(names), source, every, lock_timeout)
    except PromotionRefused as refused:
        _out(promotion_refused_text(refused), err=True)
        sys.exit(ExitStatus.ERROR)
    _out(promoted_text(promotions, source, project.workspace))


@cli.command()
@project_options
@click.option("--json", "as_json", is_flag=True, help="Print the raw state JSON.")
def show(config, workspace, as_json):
    """Print what the state records: every model, its tuned model id and status."""
    from runner.ops.state import current_state
    from runner.render.state import state_summary

    state = current_state(_project(config, workspace))
    _out(state.to_json().decode() if as_json else state_summary(state, _colour()))


@cli.group("state")
def state_group():
    """Inspect recorded state."""


@state_group.command("list")
@project_options
@click.option("--json", "as_json", is_flag=True, help="Print name -> tuned model id, provider, status.")
def state_list(config, workspace, as_json):
    """One line per recorded tuned model (pending and superseded ones too)."""
    from runner.ops.state import current_state
    from runner.render.json_view import state_list_json
    from runner.render.state import state_list

    state = current_state(_project(config, workspace))
    _out(state_list_json(state) if as_json else state_list(state, _colour()))


@state_group.command("show")
@project_options
@click.argument("name", shell_complete=_complete_models)
def state_show(config, workspace, name):
    """Everything recorded about one model."""
    from runner.ops.state import current_state
    from runner.render.state import record_text

    state = current_state(_project(config, workspace))
    record = state.models.get(name)
    if record is None:
        raise TunerError(f"no model named {name!r} in state",
                         remedy=f"recorded: {', '.join(sorted(state.models)) or 'none'}")
    _out(record_text(name, record))


@state_group.command("mv")
@project_options
@click.argument("old")
@click.argument("new")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def state_mv(config, workspace, old, new, lock_timeout):
    """Rename OLD to NEW in state without calling any provider.

    Rename the model in the specs too: the next plan then shows no change (a `moved:` block does both at once).
    """
    from runner.ops.move import state_mv as state_mv_op
    from runner.render.outcome import moved_text

    state = state_mv_op(_project(config, workspace), old, new, lock_timeout)
    _out(moved_text(old, new, state))


@state_group.command("rm")
@project_options
@click.argument("name")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def state_rm(config, workspace, name, lock_timeout):
    """Forget NAME: remove it from state without deleting its tuned models.

    The tuned models it managed keep existing (and costing what they cost) at their provider; the ids are
    printed so they can be imported again or deleted by hand.
    """
    from runner.ops.move import state_rm as state_rm_op
    from runner.render.outcome import forgotten_text

    _out(forgotten_text(name, state_rm_op(_project(config, workspace), name, lock_timeout)))


@cli.group()
def workspace():
    """Separate states over the same configs (dev, staging, prod): list, show, new, select, delete.

    \b
    The selected workspace is recorded in .tuner/workspace; TUNER_WORKSPACE and -w override it.
    """


@workspace.command("list")
@project_options
def workspace_list(config, workspace):
    """Every workspace with a state (and default), the one in use marked with *."""
    from runner.ops.workspace import workspaces
    from runner.render.workspace import workspace_list_text

    project = _project(config, workspace)
    _out(workspace_list_text(workspaces(project), project.workspace))


@workspace.command("show")
@project_options
def workspace_show(config, workspace):
    """Print the workspace in use."""
    click.echo(_project(config, workspace).workspace)


@workspace.command("new")
@project_options
@click.argument("name")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def workspace_new(config, workspace, name, lock_timeout):
    """Create workspace NAME (an empty state) and select it."""
    from runner.ops.workspace import new_workspace

    new_workspace(_project(config, workspace), name, lock_timeout)
    click.echo(f"Created and selected workspace {name!r}.")
    _warn_overridden(name)


@workspace.command("select")
@project_options
@click.argument("name", shell_complete=_complete_workspaces)
def workspace_select(config, workspace, name):
    """Use workspace NAME from now on (recorded in .tuner/workspace)."""
    from runner.ops.workspace import select_workspace

    select_workspace(_project(config, workspace), name)
    click.echo(f"Selected workspace {name!r}.")
    _warn_overridden(name)


def _warn_overridden(name: str) -> None:
    overriding = _env().environ.get("TUNER_WORKSPACE")
    if overriding and overriding != name:
        _warn([f"TUNER_WORKSPACE={overriding} is set: it overrides the selected workspace in this shell"])


@workspace.command("delete")
@project_options
@click.argument("name", shell_complete=_complete_workspaces)
@click.option("--force", is_flag=True, help="Forget the state even though it still manages models (they are "
                                            "named, and stay with their providers: nothing is deleted there).")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def workspace_delete(config, workspace, name, force, lock_timeout):
    """Forget workspace NAME's state. Refused while it still manages models unless --force.

    Never deletes a tuned model: `tuner -w NAME destroy` does that first.
    """
    from runner.ops.workspace import delete_workspace
    from runner.render.workspace import left_behind_text

    delete_workspace(_project(config, workspace), name, force,
                     lambda managed: _out(left_behind_text(name, managed), err=True), lock_timeout)
    click.echo(f"Deleted workspace {name!r}.")


@cli.group()
def emulator():
    """Loopback emulators of the cloud tuning APIs (127.0.0.1 only), for tests and demos."""


def emulator_options(default_port: int):
    """The options both emulators take."""

    def decorate(func):
        for option in reversed((
            click.option("--port", default=default_port, show_default=True, type=click.IntRange(0, 65535)),
            click.option("--job-seconds", default=5.0, show_default=True, type=click.FloatRange(0),
                         help="How long a tuning job runs before it succeeds."),
            click.option("--fault-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
                         help="Share of requests answered with an error (503; openai: 429 or 500)."),
            click.option("--seed", default=0, show_default=True, type=int, help="Seed of the fault injection."),
            click.option("--state", "state_file", type=click.Path(dir_okay=False, path_type=Path), default=None,
                         help="Persist the emulator's models to this file so they survive a restart."),
        )):
            func = option(func)
        return func

    return decorate


@emulator.command("gemini")
@emulator_options(8765)
def emulator_gemini(port, job_seconds, fault_rate, seed, state_file):
    """Serve the Gemini API tuning surface (v1beta REST) on 127.0.0.1:PORT.

    Point tuner at it with providers.gemini.endpoint or TUNER_GEMINI_ENDPOINT=http://127.0.0.1:PORT;
    any non-empty API key is accepted. A --fault-rate also slows half as many responses down.
    """
    from runner.emulators.gemini import serve

    serve(port, job_seconds, fault_rate, seed, state_file)


@emulator.command("vertex")
@emulator_options(8766)
def emulator_vertex(port, job_seconds, fault_rate, seed, state_file):
    """Serve the Vertex AI tuning-jobs surface (v1beta1 REST) on 127.0.0.1:PORT.

    Point tuner at it with providers.vertex.endpoint or TUNER_VERTEX_ENDPOINT; datasets are read from GCS
    (set STORAGE_EMULATOR_HOST to use a GCS emulator).
    """
    from runner.emulators.vertex import serve

    serve(port, job_seconds, fault_rate, seed, state_file)


@emulator.command("openai")
@emulator_options(8767)
def emulator_openai(port, job_seconds, fault_rate, seed, state_file):
    """Serve the OpenAI fine-tuning surface (files, fine_tuning.jobs, models, chat.completions) on 127.0.0.1:PORT.

    Point the openai SDK at it with base_url=http://127.0.0.1:PORT/v1 (tuner: providers.openai.base_url or
    TUNER_OPENAI_BASE_URL); any non-empty API key is accepted. A --fault-rate answers that share 429 or 500.
    """
    from runner.emulators.openai import serve

    serve(port, job_seconds, fault_rate, seed, state_file)


@state_group.command("migrate")
@project_options
@click.option("--to", "to", type=click.Choice(["gcs", "local"]), required=True,
              help="gcs: copy state/<workspace>.json to the configured GCS backend; local: the reverse.")
@click.option("--bucket", default=None, metavar="NAME", help="The GCS bucket, when the specs do not name it yet.")
@click.option("--prefix", default="", metavar="PATH", help="The object prefix in --bucket.")
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def state_migrate(config, workspace, to, bucket, prefix, lock_timeout):
    """Move a workspace's state between the local file and the GCS backend, keeping its lineage.

    The GCS location comes from `backend: {gcs: {bucket, prefix}}` in the specs, or from --bucket/--prefix
    before the specs name it. Both states are locked while copying; a target holding a different history
    is refused. The copy left behind is marked as moved: commands refuse it until the specs name the
    backend the state now lives in (change the spec before or after migrating).
    """
    if prefix and not bucket:
        raise click.UsageError("--prefix needs --bucket")
    gcs = {"bucket": bucket, "prefix": prefix} if bucket else None
    from runner.ops.state import migrate_state
    from runner.render.outcome import migrated_text

    _out(migrated_text(*migrate_state(_project(config, workspace), to, lock_timeout, gcs)))


@cli.command("force-unlock")
@project_options
@click.argument("lock_id")
@click.option("--force", is_flag=True,
              help="Do not ask for confirmation, and remove the lock even if its holder still runs on this host.")
def force_unlock(config, workspace, lock_id, force):
    """Remove a stale state lock. LOCK_ID is shown in the 'state is locked' message.

    Asks for confirmation first, and refuses the lock of a process still running on this host:
    removing the lock of a live apply lets a second one write the same state.
    """
    from runner.ops.state import force_unlock as force_unlock_op
    from runner.render.outcome import lock_holder_text

    def confirm(holder: dict) -> bool:
        return _confirmed(f"Remove lock {lock_id}, held by {lock_holder_text(holder)}?",
                          "pass --force if you are sure no tuner run still holds the lock")

    holder = force_unlock_op(_project(config, workspace), lock_id, confirm, force)
    if holder is None:
        click.echo("Cancelled.")
        sys.exit(ExitStatus.ERROR)
    click.echo(f"Lock {lock_id} removed (it was held by {lock_holder_text(holder)}).")


@cli.command()
@project_options
@click.argument("name", required=False, shell_complete=_complete_models)
@click.option("--json", "as_json", is_flag=True, help="Print JSON (what a deploy script reads).")
def output(config, workspace, name, as_json):
    """Print the current tuned model id of every model (or of NAME).

    Every apply also writes state/<workspace>.outputs.json, so other tools need not run tuner.
    """
    from runner.ops.state import current_state
    from runner.render.json_view import outputs_json
    from runner.render.state import output_text, outputs_text

    outputs = current_state(_project(config, workspace)).outputs()
    if name is not None:
        if name not in outputs:
            raise TunerError(f"no current tuned model named {name!r}",
                             remedy=f"current: {', '.join(outputs) or 'none'}")
        _out(outputs_json(outputs[name]) if as_json else output_text(outputs[name]))
        return
    _out(outputs_json(outputs) if as_json else outputs_text(outputs))


@cli.command("eval")
@project_options
@click.argument("name", shell_complete=_complete_models)
@click.option("--against", metavar="PREVIOUS", default=None,
              help="'previous' (the metrics recorded for the model this one replaced) or a tuned model id "
                   "(scored now on the same eval set).")
@click.option("--json", "as_json", is_flag=True)
@click.option("--lock-timeout", default=0.0, type=click.FloatRange(0), metavar="SECONDS")
def eval_(config, workspace, name, against, as_json, lock_timeout):
    """Score the current tuned model NAME on its eval set now, record it, and compare.

    Metrics: exact-match accuracy, per-label precision/recall/F1 (when outputs are labels) and
    consistency (the same input asked twice gives the same answer).
    """
    from runner.ops.evaluate import evaluate
    from runner.render.json_view import evaluation_json
    from runner.render.metrics import metrics_table

    current, previous, previous_id = evaluate(_project(config, workspace), name, against, lock_timeout)
    _out(evaluation_json(current, previous, previous_id) if as_json
         else metrics_table(current, previous, previous_id, _colour()))


@cli.command()
@project_options
@click.argument("name", shell_complete=_complete_models)
@click.option("--calls-per-month", type=click.FloatRange(0), required=True, help="Calls the application makes.")
@click.option("--prompt-tokens-saved", type=click.IntRange(0), default=None,
              help="Input tokens per call the tuned model no longer needs (instructions, few-shot examples).")
@click.option("--input-price-per-million", type=click.FloatRange(0), default=None,
              help="Input token price, per million, of the base model.")
@click.option("--prompt-price-per-1k-calls", type=click.FloatRange(0), default=None,
              help="Instead of tokens: what 1,000 calls cost with the long prompt...")
@click.option("--tuned-price-per-1k-calls", type=click.FloatRange(0), default=None,
              help="...and with the tuned model.")
@click.option("--training-usd", type=click.FloatRange(0), default=None,
              help="Training cost; default: the plan's estimate for NAME.")
@click.option("--months", type=click.IntRange(1, 600), default=None, help="Horizon of the table and chart.")
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Write a chart of cumulative cost over months (.svg; .png needs matplotlib).")
def cost(config, workspace, name, calls_per_month, prompt_tokens_saved, input_price_per_million,
         prompt_price_per_1k_calls, tuned_price_per_1k_calls, training_usd, months, plot):
    """Does tuning NAME pay? Training cost against the monthly saving over a prompt-based model.

    \b
    Example (the worked case: ~67 months to pay back):
      tuner cost sentiment --training-usd 20 --calls-per-month 10000 \\
          --prompt-price-per-1k-calls 0.05 --tuned-price-per-1k-calls 0.02 --plot cost.svg
    """
    from runner.ops.cost import break_even
    from runner.render.cost import break_even_table, write_break_even_chart

    per_call = (prompt_price_per_1k_calls, tuned_price_per_1k_calls)
    per_token = (prompt_tokens_saved, input_price_per_million)
    if None in per_call and None in per_token:
        raise click.UsageError("give --prompt-price-per-1k-calls and --tuned-price-per-1k-calls, "
                               "or --prompt-tokens-saved and --input-price-per-million")
    result = break_even(
        _project(config, workspace), name, calls_per_month, training_usd, months=months,
        prompt_price_per_1k_calls=prompt_price_per_1k_calls, tuned_price_per_1k_calls=tuned_price_per_1k_calls,
        prompt_tokens_saved=prompt_tokens_saved, input_price_per_million=input_price_per_million)
    _out(break_even_table(result, colour=_colour()))
    if plot:
        write_break_even_chart(result, plot)
        click.echo(f"Chart written to {plot}")


@cli.command()
@project_options
@click.argument("name", shell_complete=_complete_models)
@click.argument("text", required=False)
@click.option("--file", "text_file", metavar="PATH", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="Read the text from this file (UTF-8), for texts too long for an argument.")
def predict(config, workspace, name, text, text_file):
    """Ask the current tuned model NAME to answer TEXT ('-' reads it from standard input).

    Text read from standard input or --file loses one trailing line break, as shell substitution does.
    """
    if (text is None) == (text_file is None):
        raise click.UsageError("give the text as an argument, '-' for standard input, or --file PATH")
    try:
        if text_file is not None:
            text = _without_final_newline(text_file.read_text(encoding="utf-8"))
        elif text == "-":
            text = _without_final_newline(click.get_text_stream("stdin", encoding="utf-8").read())
    except UnicodeDecodeError as exc:
        raise TunerError(f"the text to predict from is not valid UTF-8 (byte {exc.start})",
                         remedy="convert it to UTF-8") from None
    from runner.ops.predict import predict as predict_op
    from runner.render.terminal import terminal_safe

    _, answer = predict_op(_project(config, workspace), name, text)
    click.echo(terminal_safe(answer))


def _without_final_newline(text: str) -> str:
    return text.removesuffix("\n").removesuffix("\r")


def main(argv: list[str] | None = None, clock: Clock | None = None, env: Environment | None = None) -> None:
    """Run one command in ENV (the real world unless given). `clock` is short for env=Environment(clock=clock)
    (tests inject one so retries never sleep)."""
    if env is not None and clock is not None:
        raise ValueError("give the clock inside env")
    env = env or Environment(clock=clock)
    try:
        cli.main(args=argv, prog_name="tuner", standalone_mode=False, obj=env)
    except TunerError as error:
        from runner.render.outcome import error_text

        _out(error_text(error), err=True)
        sys.exit(ExitStatus.ERROR)
    except click.exceptions.Exit as exit_:
        sys.exit(exit_.exit_code)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except click.UsageError as error:  # one line and a remedy, as every error
        from runner.render.outcome import error_text

        command = error.ctx.command_path if error.ctx else "tuner"
        _out(error_text(TunerError(error.format_message(), remedy=f"see `{command} --help`")), err=True)
        sys.exit(ExitStatus.ERROR)  # usage errors are errors: 2 means "changes present" to scripts
    except click.ClickException as error:
        error.show()
        sys.exit(ExitStatus.ERROR)
    except KeyboardInterrupt:
        click.echo("\nInterrupted.", err=True)
        sys.exit(ExitStatus.INTERRUPTED)
    except Exception as error:  # a bug: say so plainly; TUNER_DEBUG=1 shows the traceback
        if env.environ.get("TUNER_DEBUG"):
            raise
        from runner.render.outcome import internal_error_text

        _out(internal_error_text(error), err=True)
        sys.exit(ExitStatus.ERROR)
