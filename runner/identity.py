"""Whose a tuned model is: the (state lineage, workspace) that created it.

Every remote object tuner creates carries its owner's tag (in the id, in labels or in artifact metadata), so
two workspaces or two states never share a model: a retry adopts an existing object only when it carries this
state's tag, and a delete never touches an object that carries another's.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from runner.errors import NotOwnedError

TAG_LENGTH = 8  # hex digits: fits Gemini's 40-character ids and Vertex label values; 2^32 makes collisions moot
TAG = re.compile(r"^[0-9a-f]{8}$")
MODEL_NAME = re.compile(r"^[a-z]([a-z0-9-]{0,30}[a-z0-9])?$")  # the third part of an owner: specs and state share it


@dataclass(frozen=True)
class Owner:
    lineage: str
    workspace: str

    @property
    def tag(self) -> str:
        return owner_tag(self.lineage, self.workspace)

    def refuse_foreign(self, tag: str | None, what: str, strict: bool = False) -> None:
        """Raise NotOwnedError when TAG (the owner tag a remote object carries) is another state's; `strict` (an id
        this state is about to create or adopt) also refuses an object carrying no tag at all."""
        if tag == self.tag or (tag is None and not strict):
            return
        whose = f"belongs to another tuner state or workspace (owner {tag})" if tag else "carries no owner tag"
        raise NotOwnedError(f"{what} does not carry this state's identity: it {whose}; this state is {self.tag}",
                            remedy="the state was edited or belongs to another workspace: restore it from git")


def owner_tag(lineage: str, workspace: str) -> str:
    if not lineage:
        raise ValueError("a state has no identity before its first write")  # a bug if it ever shows
    return hashlib.sha256(f"{lineage}\0{workspace}".encode()).hexdigest()[:TAG_LENGTH]


def model_digest(name: str, fingerprint: str, length: int = 10) -> str:
    """Two names with the same configuration (and a shared prefix that ids truncate) still differ."""
    return hashlib.sha256(f"{name}\0{fingerprint}".encode()).hexdigest()[:length]
