"""The opened project every operation shares (runner/ops/): its root, config directory and workspace, the
config, the providers, the state backend, and the check that this workspace's state does not live elsewhere.

Each command's operation is its own module under runner/ops/; none of them is written here.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from runner.clock import Clock
from runner.collector import collector_paused
from runner.datasets import DatasetScanner, HashCache
from runner.desired import Resolution, resolve
from runner.environment import Environment
from runner.errors import PlanError, StateError, TunerError
from runner.plan import instances_of
from runner.planfile import read_plan
from runner.planned import PlannedModel
from runner.providers import Providers
from runner.spec import Config, load_config
from runner.state import LocalBackend, State
from runner.state.base import WORKSPACE_NAME, StateBackend
from runner.workers import Workers


@dataclass
class Project:
    root: Path
    config_dir: Path
    workspace: str = "default"
    allow_small_dataset: bool = False
    env: Environment = field(default_factory=Environment, repr=False)
    _config: Config | None = field(default=None, repr=False)
    _providers: Providers | None = field(default=None, repr=False)

    @classmethod
    def open(cls, config: str | None, workspace: str | None, allow_small_dataset: bool = False,
             env: Environment | None = None) -> Project:
        """The project around the working directory (see project_root); a relative `config` is relative to the
        working directory, as a user typing a path in a subdirectory expects."""
        env = env or Environment()
        root = project_root(env)
        return cls._at(root, _config_dir(env, config, root / "configs"), workspace, allow_small_dataset, env)

    @classmethod
    def _at(cls, root: Path, config_dir: Path, workspace: str | None, allow_small_dataset: bool,
            env: Environment) -> Project:
        workspace = workspace or env.environ.get("TUNER_WORKSPACE") or _selected_workspace(root) or DEFAULT_WORKSPACE
        check_workspace_name(workspace)
        return cls(root, config_dir, workspace, allow_small_dataset, env)

    @classmethod
    def open_for_plan(cls, plan_file: Path, config: str | None, workspace: str | None,
                      allow_small_dataset: bool = False, env: Environment | None = None) -> Project:
        """A saved plan records its config directory and workspace; given again, they must be the same."""
        env = env or Environment()
        document = read_plan(plan_file)
        recorded = document["config_dir"]
        root = project_root(env)
        if Path(recorded).is_absolute() or not (root / recorded).resolve().is_relative_to(root):
            raise PlanError(f"{plan_file}: corrupt plan file: config_dir {recorded!r} is outside the project",
                            remedy="run `tuner plan --out FILE` again from the project root")
        return cls._at(root, _config_dir(env, config, root / recorded), workspace or document["workspace"],
                       allow_small_dataset, env)

    @property
    def clock(self) -> Clock:
        """Wall time, and the waits of retries: the environment's."""
        return self.env.clock

    # -- inputs ----------------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = self._load_config()
        return self._config

    def _load_config(self, on_file=None, workers: Workers | None = None) -> Config:
        return load_config(self.config_dir, self.root, self.root / ".tuner" / "cache" / "specs.json", on_file,
                           self.workspace, workers)

    @property
    def config_relative(self) -> str:
        """The config directory as a plan file records it: relative to the project root, inside it."""
        if not self.config_dir.is_relative_to(self.root):
            raise PlanError(f"--config {self.config_dir} is outside the project ({self.root}): a saved plan "
                            f"records its config directory relative to the project root",
                            remedy="keep the configs inside the project, or apply without a saved plan")
        return self.config_dir.relative_to(self.root).as_posix()

    @property
    def providers(self) -> Providers:
        if self._providers is None:
            self._providers = Providers(self.root, self.config.providers, self.env.environ)
        return self._providers

    @property
    def backend_kind(self) -> str:
        return next(iter(self.config.backend), "local")

    def backend(self, kind: str | None = None, gcs: dict | None = None) -> StateBackend:
        """The configured state backend (local file unless the specs say `backend: {gcs: ...}`); `gcs` names
        a GCS location the specs do not (yet) name."""
        kind = kind or self.backend_kind
        if kind == "gcs":
            settings = gcs or self.config.backend.get("gcs")
            if not settings:
                raise StateError("no GCS backend is configured",
                                 remedy="add `backend: {gcs: {bucket: NAME, prefix: PATH}}` to a spec file, or "
                                        "pass --bucket NAME [--prefix PATH]")
            from runner.state.gcs import GcsBackend

            return GcsBackend(settings["bucket"], settings.get("prefix", ""), self.workspace)
        return LocalBackend(self.root / "state", self.workspace, display_root=self.root)

    def consulted(self, backend: StateBackend) -> list[StateBackend]:
        """The backends a read of BACKEND's state consults: it, and beside a remote one the local file _check_home
        compares with it."""
        return [backend] if isinstance(backend, LocalBackend) else [backend, self.backend("local")]

    def read_state(self, backend: StateBackend) -> State:
        """The configured backend's state, read without the lock (plan, show), checked as _check_home says."""
        state = backend.read()
        self._check_home(state, backend)
        return state

    @contextmanager
    def locked_state(self, operation: str, lock_timeout: float) -> Iterator[tuple[StateBackend, State]]:
        """The configured backend locked for `operation` and its state read under the lock (checked as
        _check_home says); the lock is released on every path out, Ctrl-C included."""
        backend = self.backend()
        with backend.locked(operation, lock_timeout) as state:
            self._check_home(state, backend)
            yield backend, state

    def _check_home(self, state: State, backend: StateBackend) -> None:
        """Refuse a state when this workspace's state lives elsewhere (Terraform's "backend configuration
        changed"): a plan against an empty or stale backend would re-pay for every model. With GCS configured
        this costs one stat of the local file; with the local default, nothing."""
        if state.moved_to:
            raise StateError(f"the state of workspace {self.workspace!r} in {backend.display} was migrated to "
                             f"{state.moved_to}, but the specs still name {backend.display}",
                             remedy=f"name the new backend in a spec file ({_backend_block(state.moved_to)}), or "
                                    f"bring the state back with `tuner state migrate --to {self.backend_kind}`")
        if self.backend_kind != "local":
            local = self.backend("local")
            if local.exists():
                _check_left_behind(state, backend.display, local.read(), local.display, self.workspace)

    def resolve(self) -> Resolution:
        with collector_paused():  # validate and apply too: specs and refs live as long as the command
            return self._resolved()

    def _resolved(self) -> Resolution:
        cache = HashCache(self.root / ".tuner" / "cache" / "datasets.json")
        scanner = DatasetScanner(self.root, cache)
        try:
            if self._config is None:  # datasets start scanning while the rest of the specs are read, on one pool
                self._config = self._load_config(scanner.add, scanner.workers)
            return resolve(self.config, self.providers, scanner, self.allow_small_dataset)
        finally:
            scanner.close()

    def declared(self, name: str) -> PlannedModel:
        """NAME's desired model (specs and datasets checked), or an error saying it is not declared."""
        model = next((m for m in self.resolve().models if m.name == name), None)
        if model is None:
            raise PlanError(f"{name!r} is not declared in the configs", remedy="declare the model in a spec file")
        return model

    # -- provider settings -----------------------------------------------------------------------------
    def settings(self, providers: Iterable[str], state: State) -> dict[str, dict]:
        """provider -> the settings it records, for these providers and those state uses; never a secret."""
        names = set(providers) | {i.provider for r in state.models.values() for i in instances_of(r)}
        current = {name: self.settings_of(name) for name in sorted(names)}
        return {name: settings for name, settings in current.items() if settings}

    def settings_of(self, provider: str) -> dict:
        return {key: value for key, value in self.providers[provider].recorded_settings().items() if value is not None}

    def applied_settings(self, state: State, provider: str) -> dict:
        """Commands that call a provider directly (import, predict, eval) never do so with settings changed
        since the last apply: a plan must show them first. Returns the provider's current settings."""
        current = self.settings_of(provider)
        recorded = state.providers.get(provider)
        if recorded is not None and recorded != current:
            raise PlanError(f"the settings of provider {provider} changed since the last apply",
                            remedy="review them with `tuner plan` and apply that first")
        return current


DEFAULT_WORKSPACE = "default"


def check_workspace_name(workspace: str) -> None:
    if not WORKSPACE_NAME.match(workspace):
        raise TunerError(f"invalid workspace name {workspace!r}",
                         remedy="use letters, digits, '.', '_' and '-' (at most 64 characters)")


def _config_dir(env: Environment, given: str | None, default: Path) -> Path:
    """--config, relative to the working directory; else the default, inside the project root."""
    return (env.cwd / given).resolve() if given else default.resolve()


def selected_workspace_path(root: Path) -> Path:
    """Where `tuner workspace select` records its choice."""
    return root / ".tuner" / "workspace"


def _selected_workspace(root: Path) -> str | None:
    """The workspace `tuner workspace select` recorded, if any; the file is checked like any input."""
    path = selected_workspace_path(root)
    remedy = "select one again with `tuner workspace select NAME`"
    try:
        name = path.read_text(encoding="utf-8").strip()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise TunerError(f"cannot read the selected workspace in {path}: {exc}", remedy=remedy) from None
    if name and not WORKSPACE_NAME.match(name):
        raise TunerError(f"{path}: invalid workspace name {name!r}", remedy=remedy)
    return name or None


def project_root(env: Environment) -> Path:
    """The directory named by TUNER_ROOT, else the nearest directory from the working one up holding configs/
    (as git finds .git), else the working directory itself."""
    named = env.environ.get("TUNER_ROOT")
    if named:
        root = (env.cwd / named).resolve()
        if not root.is_dir():
            raise TunerError(f"TUNER_ROOT {named!r} is not a directory",
                             remedy="set TUNER_ROOT to the project directory (the one holding configs/), or unset it")
        return root
    cwd = env.cwd.resolve()
    return next((directory for directory in (cwd, *cwd.parents) if (directory / "configs").is_dir()), cwd)


def _backend_block(location: str) -> str:
    """The spec text that names the backend holding `location` (a state's display name)."""
    if not location.startswith("gs://"):
        return "no `backend:` block: the local state file"
    bucket, _, name = location.removeprefix("gs://").partition("/")
    return f"`backend: {{gcs: {{bucket: {bucket}, prefix: {name.rpartition('/')[0]}}}}}`"


def _check_left_behind(state: State, where: str, local: State, local_where: str, workspace: str) -> None:
    """With a remote backend configured, a local state file may hold this workspace's real history."""
    if local.moved_to or not local.models:
        return  # migrated away (its history is the configured one), or nothing a plan could lose
    remedy = f"copy it there with `tuner state migrate --to gcs` (or remove {local_where} if it is not wanted)"
    if not state.lineage:
        raise StateError(f"the configured backend {where} holds no state for workspace {workspace!r}, but "
                         f"{local_where} does ({len(local.models)} model(s)): a plan would re-create every model",
                         remedy=remedy)
    if local.lineage != state.lineage:
        raise StateError(f"{where} and {local_where} hold different states for workspace {workspace!r} "
                         f"(lineages {state.lineage} and {local.lineage})",
                         remedy=f"keep one: remove {local_where} if {where} is the state to use; otherwise move "
                                f"{where} away and run `tuner state migrate --to gcs`")
    if local.serial > state.serial:
        raise StateError(f"{local_where} is newer than the configured backend {where} (serial {local.serial} > "
                         f"{state.serial}): the state changed locally after it was migrated", remedy=remedy)


