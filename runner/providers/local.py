"""The local provider: trains on this machine with the embedded n-gram trainer. Offline, free, no key.

Artifacts live in <root>/.tuner/models/<tuned-model-id>/ (git-ignored): model.npz and meta.json.
A model exists exactly when meta.json is readable (it is written last and atomically) and model.npz has the
size meta.json records; anything less (deleted or truncated weights, a damaged meta.json) is rebuilt.
A listing reads a meta.json only when its stat or its weights' stat changed since the last listing
(runner.providers.local_cache, in <root>/.tuner/cache/local-models.json).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import orjson

from runner import __version__
from runner.datasets import DatasetRef, open_examples
from runner.errors import AlreadyExistsError, ProviderError
from runner.fsutil import atomic_write, read_bytes, stat_key
from runner.identity import Owner
from runner.planned import PlannedModel, TrainingEstimate
from runner.providers import ProviderContext, planning
from runner.providers.base import (
    ACTIVE,
    CREATING,
    Capabilities,
    JobStatus,
    ObservedModel,
    checked,
)
from runner.providers.local_cache import Folder, ListingCache, Model
from runner.providers.planning import Hyperparameters, ModelDatasets, PlanResponse, plan_model

if TYPE_CHECKING:
    from runner.spec import ModelSpec

BASE_MODELS = ("local/linear-ngram",)
HYPERPARAMETERS = Hyperparameters(
    defaults={"epoch_count": 5, "batch_size": 8, "learning_rate": 0.5},
    refused={"learning_rate_multiplier": "not used by the local provider; set learning_rate instead",
             "adapter_size": "the local provider trains a linear model and has no adapter"})
# A folder name under .tuner/models: no dot, no slash, so an id from an edited state can never name another path.
ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,126}[a-z0-9])?")


def create(context: ProviderContext) -> LocalProvider:
    return LocalProvider(context.root / ".tuner" / "models", context.settings)


class LocalProvider:
    name = "local"

    def __init__(self, directory: Path, settings: dict | None = None):
        self.directory = directory
        self.capabilities = Capabilities(
            max_concurrent_jobs=(settings or {}).get("max_concurrent_jobs", 2),
            poll_seconds=0.2,
            trains_in_submit=True,
        )

    def plan(self, spec: ModelSpec, datasets: ModelDatasets | None) -> PlanResponse:
        return plan_model(spec, datasets, HYPERPARAMETERS, _estimate, self._limits)

    def import_attributes(self, planned: PlannedModel, seen: ObservedModel) -> dict:
        return planning.imported_attributes(planned, seen)

    @staticmethod
    def _limits(model: PlannedModel) -> list[str]:
        if model.base_model not in BASE_MODELS:
            return [f"base_model: {model.base_model!r} is not a local base model (available: {', '.join(BASE_MODELS)})"]
        return []

    def recorded_settings(self) -> dict:
        return {}  # nothing leaves this machine

    def preflight(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)

    def tuned_model_id(self, model, owner: Owner) -> str:
        return f"{model.name}-{owner.tag}-{model.job_key[:10]}"

    def submit(self, model, tuned_model_id: str, owner: Owner,
               progress: Callable[[JobStatus], None] | None = None) -> str:
        """Trains to completion in the calling worker thread, telling `progress` each epoch; the handle is the
        artifact folder."""
        folder = self._folder(tuned_model_id)
        meta = _read_meta(folder)
        if meta is not None:
            self._check_owner(tuned_model_id, meta, owner)
            if _complete(folder, meta):
                raise AlreadyExistsError(f"local model {tuned_model_id} already exists")
        shutil.rmtree(folder, ignore_errors=True)  # a damaged or half-written artifact is rebuilt from scratch
        examples = [(e.input, e.output) for e in open_examples(model.train)]
        from runner.trainer import train  # numpy is imported only when something is trained

        hp = model.hyperparameters
        epochs = hp["epoch_count"]

        def trained_epoch(epoch: int, loss: float) -> None:
            if progress is not None:
                progress(JobStatus(CREATING, "training", progress=epoch / epochs, epoch=epoch, epochs=epochs,
                                   loss=loss))

        try:
            tuned = train(examples, epochs, hp["batch_size"], hp["learning_rate"],
                          seed=int(model.fingerprint[:8], 16), on_epoch=trained_epoch)
        except (ValueError, FloatingPointError) as exc:
            raise ProviderError(f"local training failed: {exc}") from None
        folder.mkdir(parents=True, exist_ok=True)
        staging = folder / "model.npz.tmp"
        tuned.save(staging)
        staging.replace(folder / "model.npz")
        meta = {"tuned_model_id": tuned_model_id, "display_name": model.display_name,
                "description": model.description, "base_model": model.base_model, "mode": tuned.mode,
                "fingerprint": model.fingerprint, "examples": len(examples), "hyperparameters": hp,
                "owner": {"tag": owner.tag, "lineage": owner.lineage, "workspace": owner.workspace},
                "model_bytes": (folder / "model.npz").stat().st_size}
        atomic_write(folder / "meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())
        return str(folder.relative_to(self.directory.parent.parent))

    def poll(self, tuned_model_id: str, handle: str | None) -> JobStatus:
        meta = self._meta(tuned_model_id)
        if meta is None:
            return JobStatus(CREATING, detail="not started")
        return JobStatus(ACTIVE, detail=meta.get("mode", ""), progress=1.0)

    def update(self, tuned_model_id: str, display_name: str, description: str) -> None:
        meta = self._require(tuned_model_id)
        meta.update(display_name=display_name, description=description)
        atomic_write(self._folder(tuned_model_id) / "meta.json", json.dumps(meta, indent=2, sort_keys=True).encode())

    def delete(self, tuned_model_id: str, handle: str | None, owner: Owner) -> None:
        folder = self._folder(tuned_model_id)
        meta = _read_meta(folder)
        if meta is not None:
            self._check_owner(tuned_model_id, meta, owner)
        shutil.rmtree(folder, ignore_errors=True)

    def list_models(self) -> list[ObservedModel]:
        """One directory listing; per model two stats (its meta.json and weights), and a read of meta.json only
        when one of them changed since the listing cache saw it. A damaged artifact is not listed: it is not a
        model anyone can use."""
        try:
            descriptor = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return []
        cache = ListingCache(self.directory.parent / "cache" / "local-models.json", self.directory)
        try:  # a plain folder directly inside: never a link (where it leads is not ours), so none is resolved
            names = sorted(entry.name for entry in os.scandir(descriptor)
                           if entry.is_dir(follow_symlinks=False) and ID.fullmatch(entry.name))
            models = [_listed(cache, descriptor, str(self.directory), name) for name in names]
        finally:
            os.close(descriptor)
        cache.save()
        return [ObservedModel(m.tuned_model_id, m.display_name, m.description, ACTIVE, m.base_model, m.hyperparameters,
                              m.owner) for m in models if m is not None]

    def get_model(self, tuned_model_id: str) -> ObservedModel | None:
        return next((m for m in self.list_models() if m.tuned_model_id == tuned_model_id), None)

    def predict(self, tuned_model_id: str, text: str) -> str:
        self._require(tuned_model_id)
        return self._loaded(tuned_model_id).predict(text)

    @functools.lru_cache(maxsize=8)  # noqa: B019 - a provider lives for one command; evaluation asks many times
    def _loaded(self, tuned_model_id: str):
        from runner.trainer import TunedModel

        return TunedModel.load(self._folder(tuned_model_id) / "model.npz")

    def info(self) -> dict:
        import numpy

        return {"sdk": "tuner-local-trainer", "version": __version__, "numpy": numpy.__version__}

    def _folder(self, tuned_model_id: str) -> Path:
        """The artifact folder of an id, which must be a plain name directly inside the models directory."""
        folder = self.directory / checked(ID, tuned_model_id, "local tuned model id")
        if folder.resolve().parent != self.directory.resolve():  # a symlinked folder pointing elsewhere
            raise ProviderError(f"refusing to use {folder}: it resolves outside {self.directory}",
                                code="INVALID_ID", remedy=f"remove the link {folder}")
        return folder

    def _meta(self, tuned_model_id: str) -> dict | None:
        return _complete_meta(self._folder(tuned_model_id))


    @staticmethod
    def _check_owner(tuned_model_id: str, meta: dict, owner: Owner) -> None:
        owner.refuse_foreign(_owner_tag(meta), f"local model {tuned_model_id}")

    def _require(self, tuned_model_id: str) -> dict:
        meta = self._meta(tuned_model_id)
        if meta is None:
            raise ProviderError(f"local model {tuned_model_id} not found (or damaged) in {self.directory}",
                                code="NOT_FOUND", remedy="run `tuner apply` to create it")
        return meta


# Folders are Path or str: list_models passes _read_meta strings, as a Path per file costs a listing of 10,000
# models a second of path parsing.
def _complete_meta(folder: Path | str) -> dict | None:
    """meta.json of a complete artifact, or None when it is missing, unreadable or its weights are not
    the size it records (deleted, truncated or still being written)."""
    meta = _read_meta(folder)
    return meta if meta is not None and _complete(folder, meta) else None


def _read_meta(folder: Path | str) -> dict | None:
    try:
        meta = orjson.loads(read_bytes(os.path.join(folder, "meta.json")))
    except (OSError, ValueError):
        return None
    return meta if _well_formed(meta) else None


def _listed(cache: ListingCache, descriptor: int, directory: str, name: str) -> Model | None:
    """What list_models reports of folder NAME of the models directory (open as DESCRIPTOR: 10,000 stats resolve
    no path twice): from the cache when both files' stats are unchanged, else read."""
    try:
        meta_stat = os.stat(f"{name}/meta.json", dir_fd=descriptor)
        weights_stat = os.stat(f"{name}/model.npz", dir_fd=descriptor)
    except OSError:
        return None  # no meta.json or no weights: no model, and nothing to read
    meta_key, weights_key = stat_key(meta_stat), stat_key(weights_stat)
    entry = cache.get(name, meta_key, weights_key)
    if entry is None:  # read after the stats: a change made in between shows as a changed stat next time
        meta = _read_meta(os.path.join(directory, name))
        complete = meta is not None and _weighs(weights_stat.st_size, meta)
        entry = Folder(meta_key, weights_key, _reported(meta) if complete else None)
        cache.put(name, entry)
    return entry.model


def _reported(meta: dict) -> Model:
    return Model(meta["tuned_model_id"], meta["display_name"], meta["description"], meta.get("base_model", ""),
                 meta.get("hyperparameters", {}), _owner_tag(meta))


def _complete(folder: Path | str, meta: dict) -> bool:
    """A stat, never a read: the weights exist with the size meta.json recorded (when it records one)."""
    try:
        weights = os.stat(os.path.join(folder, "model.npz")).st_size
    except OSError:
        return False
    return _weighs(weights, meta)


def _weighs(weights: int, meta: dict) -> bool:
    return weights > 0 and weights == meta.get("model_bytes", weights)


def _owner_tag(meta: dict) -> str | None:
    owner = meta.get("owner")
    return owner.get("tag") if isinstance(owner, dict) else None


def _well_formed(meta: object) -> bool:
    get = meta.get if isinstance(meta, dict) else None  # spelled out: a listing of 10,000 models asks 10,000 times
    return (get is not None and isinstance(get("tuned_model_id"), str) and isinstance(get("display_name"), str)
            and isinstance(get("description"), str) and isinstance(get("hyperparameters", {}), dict)
            and isinstance(get("model_bytes", 0), int))


def _estimate(hyperparameters: dict, train: DatasetRef) -> TrainingEstimate:
    """Training here is free; the estimate still shows the volume, by the same token rule as Gemini's."""
    return TrainingEstimate(planning.estimate_tokens(train.text_bytes, train.examples), hyperparameters["epoch_count"])
