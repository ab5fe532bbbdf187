"""The GCS backend: state shared by CI runners through a bucket, with the same surface as LocalBackend.

Objects: <prefix>/<workspace>.json (state), .json.backup (previous version) and .json.lock (lock).
Safety rests on GCS generation preconditions rather than on the lock alone: every state upload carries
if_generation_match=<the generation this run last read or wrote>, so a writer that missed a newer version
is refused instead of overwriting it, and the lock is created with if_generation_match=0, which GCS grants
to exactly one creator.

google-cloud-storage is imported inside the methods: it costs the CLI start-up time even when unused.
"""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from runner.errors import StateError, StateLockedError, first_line, is_network_error
from runner.sdkwarnings import quiet_sdk_banners
from runner.state.model import State, locked_error

if TYPE_CHECKING:
    from google.cloud import storage

EMULATOR_PROJECT = "tuner-local"
ALL_PERMISSIONS_ROLE = "roles/storage.objectAdmin"
READ, CREATE, DELETE = "storage.objects.get", "storage.objects.create", "storage.objects.delete"
quiet_sdk_banners()  # google-cloud-storage is imported lazily, on first use


def default_client() -> storage.Client:
    """Application Default Credentials, or anonymous access when STORAGE_EMULATOR_HOST names an emulator."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())
    return storage.Client()


class GcsBackend:
    def __init__(self, bucket: str, prefix: str, workspace: str,
                 client_factory: Callable[[], storage.Client] | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 retry=None):
        self.bucket_name = bucket
        self.workspace = workspace
        self.object_name = _join(prefix, f"{workspace}.json")
        self.backup_name = f"{self.object_name}.backup"
        self.lock_name = f"{self.object_name}.lock"
        self.display = self._url(self.object_name)
        self._client_factory = client_factory or default_client
        self._sleep = sleep
        self._monotonic = monotonic
        # None keeps each google-cloud-storage call's own retry (up to 120 s of backoff); tests inject a short one.
        self._retry = {} if retry is None else {"retry": retry}
        self._bucket_handle: storage.Bucket | None = None
        self._lock_id: str | None = None
        # Generation of the state object as this run last saw it (0: absent); None until the first read.
        self.generation: int | None = None

    # -- state ---------------------------------------------------------------------------------------
    def read(self) -> State:
        """The recorded state, or a new empty one (not yet written) when there is none."""
        raw, self.generation = self._download(self.object_name)
        if raw is None:
            return State.new(self.workspace)
        try:
            return State.from_json(raw, self.display)
        except StateError as exc:
            if exc.remedy is None:  # an unsupported format version: the message already says what to do
                raise
            raise StateError(exc.message, remedy=self._restore_remedy()) from None

    def exists(self) -> bool:
        with self._errors(f"read {self.display}", READ):
            return self._bucket().blob(self.object_name).exists(**self._retry)

    def write(self, state: State) -> None:
        """Back up the version read, bump the serial, and upload only if nobody wrote in between."""
        if self._lock_id is None:
            raise StateError("internal: state written without holding the lock")
        if self.generation is None:
            raise StateError("internal: state written without reading it first")
        self._backup_current()
        state.next_version()
        self.generation = self._upload_state(state.to_json())

    def _backup_current(self) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        if not self.generation:
            return  # nothing recorded yet, so no previous version to keep
        with self._errors(f"back up {self.display} to {self._url(self.backup_name)}", f"{READ} and {CREATE}"):
            bucket = self._bucket()
            try:
                # A server-side copy of exactly the generation read, refused (412, or 404 when that generation
                # is gone) once a newer one is live: the backup is then left alone and the write refused here.
                bucket.copy_blob(bucket.blob(self.object_name), bucket, self.backup_name,
                                 source_generation=self.generation, if_source_generation_match=self.generation,
                                 **self._retry)
            except (PreconditionFailed, NotFound):
                raise self._changed_error(self._download(self.object_name)[1]) from None

    def _upload_state(self, payload: bytes) -> int:
        from google.api_core.exceptions import PreconditionFailed

        # Replacing an existing object needs storage.objects.delete as well as create.
        with self._errors(f"write {self.display}", f"{CREATE} and {DELETE}"):
            blob = self._bucket().blob(self.object_name)
            try:
                blob.upload_from_string(payload, content_type="application/json",
                                        if_generation_match=self.generation, **self._retry)
                return blob.generation
            except PreconditionFailed:
                current, generation = self._download(self.object_name)
                if current == payload:  # our own upload, retried by the client after its response was lost
                    return generation
                raise self._changed_error(generation) from None

    def _changed_error(self, now: int) -> StateError:
        return StateError(
            f"state {self.display} was changed by someone else since it was read "
            f"(generation {self.generation}, now {now or 'deleted'})",
            remedy="nothing was overwritten; run the command again so it starts from the current state, and "
                   "check that every writer uses the lock (a `tuner force-unlock` of a live run also causes this)",
        )

    def _restore_remedy(self) -> str:
        return (f"restore the previous version with `gcloud storage cp {self._url(self.backup_name)} {self.display}`, "
                f"or an older generation if the bucket has object versioning "
                f"(`gcloud storage ls -a {self.display}`)")

    # -- lock ----------------------------------------------------------------------------------------
    def lock(self, operation: str, timeout: float = 0.0) -> None:
        """Take the lock or fail at once (or after `timeout` seconds) naming who holds it.

        Unlike the local backend, a stale lock is never broken automatically: its holder ran on another
        machine, whose processes cannot be checked from here. `tuner force-unlock` clears it.
        """
        lock_id = str(uuid.uuid4())
        info = {"id": lock_id, "operation": operation, "pid": os.getpid(), "host": socket.gethostname(),
                "who": os.environ.get("USER", ""), "created": datetime.now(UTC).isoformat(timespec="seconds")}
        payload = json.dumps(info, indent=2).encode("utf-8")
        deadline = self._monotonic() + timeout
        while not self._try_lock(lock_id, payload):
            if self._monotonic() >= deadline:
                raise self._locked_error()
            self._sleep(min(1.0, max(0.05, deadline - self._monotonic())))
        self._lock_id = lock_id

    def _try_lock(self, lock_id: str, payload: bytes) -> bool:
        from google.api_core.exceptions import PreconditionFailed

        with self._errors(f"lock {self.display}", CREATE):
            try:
                self._bucket().blob(self.lock_name).upload_from_string(
                    payload, content_type="application/json", if_generation_match=0, **self._retry)
                return True
            except PreconditionFailed:
                # Also where a create retried by the client after a lost response lands: then the lock is ours.
                return (self.lock_info() or {}).get("id") == lock_id

    def unlock(self) -> None:
        if self._lock_id is None:
            return
        try:
            holder, generation = self._read_lock()
            if holder and holder.get("id") == self._lock_id:
                self._delete_lock(generation)
        finally:
            self._lock_id = None

    def lock_info(self) -> dict | None:
        return self._read_lock()[0]

    def force_unlock(self, lock_id: str) -> dict:
        holder, generation = self._read_lock()
        if holder is None:
            raise StateError(f"{self.display} is not locked")
        if holder.get("id") != lock_id:
            raise StateError(f"lock id {lock_id!r} does not match the lock held ({holder.get('id')!r})",
                             remedy="copy the id from the 'state is locked' message")
        self._delete_lock(generation)
        return holder

    def _read_lock(self) -> tuple[dict | None, int]:
        raw, generation = self._download(self.lock_name)
        if raw is None:
            return None, 0
        try:
            return json.loads(raw), generation
        except ValueError:
            return {"id": "?", "note": "unreadable lock object"}, generation

    def _delete_lock(self, generation: int) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        # Already released, or replaced since it was read (the precondition): either way not ours to delete.
        with self._errors(f"unlock {self.display}", DELETE), suppress(NotFound, PreconditionFailed):
            self._bucket().blob(self.lock_name).delete(if_generation_match=generation, **self._retry)

    def _locked_error(self) -> StateLockedError:
        return locked_error(self.display, self.lock_info() or {})

    # -- storage access ------------------------------------------------------------------------------
    def _bucket(self) -> storage.Bucket:
        if self._bucket_handle is None:
            self._bucket_handle = self._client_factory().bucket(self.bucket_name)
        return self._bucket_handle

    def _download(self, name: str) -> tuple[bytes | None, int]:
        """The object's bytes and generation, or (None, 0) when it does not exist."""
        from google.api_core.exceptions import NotFound

        with self._errors(f"read {self._url(name)}", READ):
            blob = self._bucket().blob(name)
            try:
                return blob.download_as_bytes(**self._retry), blob.generation
            except NotFound as exc:
                if _bucket_missing(exc):
                    raise
                return None, 0

    @contextmanager
    def _errors(self, action: str, permission: str) -> Iterator[None]:
        """Turn google-cloud-storage and google-auth failures into a StateError naming the bucket and the fix."""
        from google.api_core import exceptions as api
        from google.auth import exceptions as auth
        from requests import exceptions as http  # google-cloud-storage's own transport

        bucket = f"gs://{self.bucket_name}"
        try:
            yield
        except (api.Forbidden, api.Unauthorized) as exc:
            raise StateError(f"cannot {action}: permission denied ({first_line(exc)})",
                             remedy=f"grant the account tuner runs as {permission} on {bucket} "
                                    f"({ALL_PERMISSIONS_ROLE} includes all the state backend needs)") from None
        except api.NotFound as exc:  # a missing object is handled by the callers: this is the bucket
            raise StateError(f"cannot {action}: bucket {bucket} does not exist or is not visible "
                             f"({first_line(exc)})",
                             remedy=f"check the bucket name, or create it: `gcloud storage buckets create {bucket}`"
                             ) from None
        except (api.GoogleAPICallError, api.RetryError) as exc:  # 5xx/429 still failing after the client's retries
            if is_network_error(exc):
                raise _unreachable(action, exc) from None
            raise StateError(f"cannot {action}: Cloud Storage failed ({first_line(exc)})",
                             remedy="run the command again in a moment; nothing was written") from None
        except auth.DefaultCredentialsError:
            raise StateError(f"cannot {action}: no Google credentials found",
                             remedy="run `gcloud auth application-default login`, or set "
                                    "GOOGLE_APPLICATION_CREDENTIALS to a service account key file") from None
        except auth.GoogleAuthError as exc:
            raise StateError(f"cannot {action}: authentication failed ({first_line(exc)})",
                             remedy="refresh the credentials: `gcloud auth application-default login`") from None
        except http.RequestException as exc:
            raise _unreachable(action, exc) from None

    def _url(self, name: str) -> str:
        return f"gs://{self.bucket_name}/{name}"


def _join(prefix: str, name: str) -> str:
    prefix = prefix.strip("/")
    return f"{prefix}/{name}" if prefix else name


def _unreachable(action: str, exc: BaseException) -> StateError:
    return StateError(f"cannot {action}: Cloud Storage is unreachable ({first_line(exc)})",
                      remedy="check the network (or STORAGE_EMULATOR_HOST when using an emulator)")


def _bucket_missing(exc: Exception) -> bool:
    # GCS answers 404 for a missing object and a missing bucket alike; only the message tells them apart.
    return "bucket does not exist" in str(exc).lower()
