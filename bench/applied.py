"""A corpus project as after `tuner apply` of every model, made without training: the warm "nothing changed" plan.

Training 10,000 local models (and writing state at each of their transitions) would take longer than the whole
benchmark, so this records what apply would: the plan's every create as an active Instance (the fields apply's
_prepare records), and for each the local provider's artifact as `list_models` reads it (meta.json and weights
of the size meta.json records; the weights are placeholder bytes, since a plan only stats them).

It is kept apart (under .bench-applied/) and swapped in only while measured: `applied(root)` moves the state
file and the artifact folder into place and back, so the corpus's own empty-state plans are never affected.

    python bench/applied.py ROOT     # (re)build .bench-applied/ for the corpus project at ROOT
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

KEPT = ".bench-applied"
WORKSPACE = "default"
WEIGHTS = b"placeholder weights: a plan only stats this file\n"


def build(root: Path) -> int:
    """Write .bench-applied/{state.json,models/} for every model the corpus declares; returns the model count."""
    from runner.environment import Environment
    from runner.identity import Owner
    from runner.ops.plan import plan
    from runner.plan import CREATE
    from runner.project import Project
    from runner.state import ACTIVE, Instance, State

    project = Project.open(None, WORKSPACE, env=Environment(cwd=root, environ={}))
    the_plan, _ = plan(project, refresh=False)
    state = State.new(WORKSPACE)
    state.next_version()
    owner = Owner(state.lineage, WORKSPACE)
    kept = root / KEPT
    now = "2026-01-01T00:00:00Z"
    for change in the_plan.changes:
        if change.action != CREATE:
            continue
        model, after = change.planned, change.after
        provider = project.providers[change.provider]
        tuned_id = provider.tuned_model_id(model, owner)
        state.record(change.name).current = Instance(
            tuned_model_id=tuned_id, provider=after["provider"], fingerprint=model.fingerprint, status=ACTIVE,
            base_model=after["base_model"], display_name=after["display_name"], description=after["description"],
            hyperparameters=dict(after["hyperparameters"]), dataset=model.dataset_record(), created_at=now,
            updated_at=now, handle=f".tuner/models/{tuned_id}", provider_info={"sdk": "tuner-local-trainer"},
            prevent_destroy=after["lifecycle"]["prevent_destroy"])
        _artifact(kept / "models" / tuned_id, tuned_id, model, owner)
    state.providers = project.settings({c.provider for c in the_plan.changes}, state)
    (kept / "state.json").write_bytes(state.to_json())
    return len(state.models)


def _artifact(folder: Path, tuned_id: str, model, owner) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "model.npz").write_bytes(WEIGHTS)
    meta = {"tuned_model_id": tuned_id, "display_name": model.display_name, "description": model.description,
            "base_model": model.base_model, "mode": "ngram", "fingerprint": model.fingerprint, "examples": 0,
            "hyperparameters": model.hyperparameters,
            "owner": {"tag": owner.tag, "lineage": owner.lineage, "workspace": owner.workspace},
            "model_bytes": len(WEIGHTS)}
    (folder / "meta.json").write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")


@contextmanager
def applied(root: Path) -> Iterator[None]:
    """The applied state and artifacts in place (state/default.json, .tuner/models/) for the duration; moved back
    after, whatever happens. Renames only: O(1) whatever the fleet's size."""
    moves = [(root / KEPT / "state.json", root / "state" / f"{WORKSPACE}.json"),
             (root / KEPT / "models", root / ".tuner" / "models")]
    for _, live in moves:
        if live.is_dir() and not any(live.iterdir()):
            live.rmdir()  # the empty folder a plan's preflight leaves
        if live.exists():
            raise RuntimeError(f"{live} exists: the corpus is not in its unapplied shape")
    done = []
    try:
        for kept, live in moves:
            live.parent.mkdir(parents=True, exist_ok=True)
            os.rename(kept, live)
            done.append((kept, live))
        yield
    finally:
        for kept, live in reversed(done):
            os.rename(live, kept)


def main(argv: list[str]) -> int:
    """Built afresh each time: a state recorded by other code (other fingerprints) would not be "unchanged"."""
    root = Path(argv[0]).resolve()
    shutil.rmtree(root / KEPT, ignore_errors=True)
    print(f"{root / KEPT}: {build(root)} models recorded as applied")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(main(sys.argv[1:]))
