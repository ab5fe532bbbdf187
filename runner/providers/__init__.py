"""Provider registry. Modules are imported only when a model uses them (start-up time matters)."""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runner.errors import ProviderError, SpecError
from runner.providers.base import Provider

_MODULES = {
    "local": "runner.providers.local",
    "gemini": "runner.providers.gemini",
    "vertex": "runner.providers.vertex",
    "openai": "runner.providers.openai",
}


@dataclass
class ProviderContext:
    root: Path
    settings: dict = field(default_factory=dict)
    environ: Mapping[str, str] = field(default_factory=lambda: os.environ)  # the run's (runner.environment)


def get_provider(name: str, context: ProviderContext) -> Provider:
    if name not in _MODULES:
        raise SpecError([f"provider {name!r} is not available in this version (available: {', '.join(_MODULES)})"])
    module = importlib.import_module(_MODULES[name])
    return module.create(context)


class Providers:
    """Provider instances for one run, created on first use."""

    def __init__(self, root: Path, settings: dict[str, dict], environ: Mapping[str, str] | None = None):
        self.root = root
        self.settings = settings
        self.environ = os.environ if environ is None else environ
        self._instances: dict[str, Provider] = {}

    def __getitem__(self, name: str) -> Provider:
        if name not in self._instances:
            self._instances[name] = get_provider(name, ProviderContext(self.root, self.settings.get(name) or {},
                                                                           self.environ))
        return self._instances[name]

    def preflight(self, names: Iterable[str], remedy: str | None = None) -> None:
        """Check every named provider can be used (credentials, settings) before anything is paid for, and
        report every problem in one error: fixing one missing variable per run would waste runs (and work)."""
        problems = []
        for name in sorted(set(names)):
            try:
                self[name].preflight()
            except ProviderError as exc:
                problems.append((name, exc))
        if problems:
            raise ProviderError("; ".join(f"{name}: {exc.message}" for name, exc in problems),
                                remedy=either("; ".join(filter(None, (exc.remedy for _, exc in problems))), remedy))


def either(remedy: str | None, alternative: str | None) -> str | None:
    """Two remedies as one line: the first, or else the alternative."""
    return "; or ".join(filter(None, (remedy, alternative))) or None
