"""The GCS backend: state shared by CI runners through a bucket, with the same surface as LocalBackend.

Objects: <prefix>/<workspace>.json (state), .json.backup (previous version), .json.lock (lock) and, while an
apply runs, .json.journal/<serial> (one small object per journal record, runner.state.journal).
Safety rests on GCS generation preconditions rather than on the lock alone: every state upload carries
if_generation_match=<the generation this run last read or wrote>, so a writer that missed a newer version
is refused instead of overwriting it, and the lock is created with if_generation_match=0, which GCS grants
to exactly one creator. Journal records are created with if_generation_match=0 too, so two writers never
both record one serial; a full write first claims its serial that way (a marker record), and a record is
kept only if the state object is still the generation this run read: either way, a writer that missed the
other's write is refused, never silently merged.

google-cloud-storage is imported inside the methods: it costs the CLI start-up time even when unused.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

from runner.errors import StateError, first_line, is_network_error
from runner.sdkwarnings import quiet_sdk_banners
from runner.state import journal
from runner.state.base import StateBackend, workspace_of
from runner.state.model import State

if TYPE_CHECKING:
    from google.cloud import storage

EMULATOR_PROJECT = "tuner-local"
ALL_PERMISSIONS_ROLE = "roles/storage.objectAdmin"
READ, CREATE, DELETE = "storage.objects.get", "storage.objects.create", "storage.objects.delete"
LIST = "storage.objects.list"
JOURNAL_RECORD = re.compile(r"^[0-9]{10,19}$")  # a serial, zero-padded so names sort in serial order
# Journal records downloaded at once (the client's connection pool holds 10; more only queue for a connection).
PARALLEL_DOWNLOADS = 10
quiet_sdk_banners()  # google-cloud-storage is imported lazily, on first use


def default_client() -> storage.Client:
    """Application Default Credentials, or anonymous access when STORAGE_EMULATOR_HOST names an emulator."""
    from google.cloud import storage

    if os.environ.get("STORAGE_EMULATOR_HOST"):
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(project=EMULATOR_PROJECT, credentials=AnonymousCredentials())
    return storage.Client()


class GcsBackend(StateBackend):
    """Unlike the local backend, a stale lock is never broken automatically: its holder ran on another machine,
    whose processes cannot be checked from here. `tuner force-unlock` clears it."""

    max_journal_records = 500  # each record is one object a reader downloads: compact before reads get slow

    def __init__(self, bucket: str, prefix: str, workspace: str,
                 client_factory: Callable[[], storage.Client] | None = None,
                 sleep: Callable[[float], None] = time.sleep, monotonic: Callable[[], float] = time.monotonic,
                 retry=None):
        self.bucket_name = bucket
        self.prefix = _join(prefix, "")
        self.object_name = _join(prefix, f"{workspace}.json")
        self.backup_name = f"{self.object_name}.backup"
        self.lock_name = f"{self.object_name}.lock"
        self.journal_prefix = f"{self.object_name}.journal/"
        super().__init__(workspace, self._url(self.object_name), sleep, monotonic)
        self._client_factory = client_factory or default_client
        # None keeps each google-cloud-storage call's own retry (up to 120 s of backoff); tests inject a short one.
        self._retry = {} if retry is None else {"retry": retry}
        self._bucket_handle: storage.Bucket | None = None
        # Generation of the state object as this run last saw it (0: absent); None until the first read.
        self.generation: int | None = None
        self._journal_names: list[str] = []  # journal objects as last listed, plus those written since

    # -- state ---------------------------------------------------------------------------------------
    def exists(self) -> bool:
        with self._errors(f"read {self.display}", READ):
            return self._bucket().blob(self.object_name).exists(**self._retry)

    def workspaces(self) -> list[str]:
        """One paged listing of the prefix (its own level only: the delimiter leaves deeper prefixes out)."""
        with self._errors(f"list {self._url(self.prefix)}", LIST):
            blobs = self._client_factory().list_blobs(self.bucket_name, prefix=self.prefix, delimiter="/",
                                                      **self._retry)
            names = [blob.name.removeprefix(self.prefix) for blob in blobs]
        return sorted(filter(None, map(workspace_of, names)))

    def version(self) -> tuple[tuple[str, int], ...]:
        """The generations of the state object and of its journal's records, from one listing (strongly consistent:
        a write is listed once it returned) and nothing downloaded; GCS gives every write a new generation."""
        with self._errors(f"list {self._url(self.object_name)}*", LIST):
            blobs = self._bucket().list_blobs(prefix=self.object_name, **self._retry)
            return tuple(sorted((blob.name, blob.generation) for blob in blobs
                                if blob.name == self.object_name or blob.name.startswith(self.journal_prefix)))

    def _remove(self) -> None:
        from google.api_core.exceptions import NotFound

        for name in (self.object_name, self.backup_name):
            with self._errors(f"delete {self._url(name)}", DELETE), suppress(NotFound):
                self._bucket().blob(name).delete(**self._retry)

    def _load(self) -> bytes | None:
        raw, self.generation = self._download(self.object_name)
        return raw

    def _keep_backup(self) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        if self.generation is None:
            raise StateError("internal: state written without reading it first")
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

    def _store(self, payload: bytes) -> None:
        """Upload only if the state is still the generation this run last read or wrote."""
        from google.api_core.exceptions import PreconditionFailed

        # Replacing an existing object needs storage.objects.delete as well as create.
        with self._errors(f"write {self.display}", f"{CREATE} and {DELETE}"):
            blob = self._bucket().blob(self.object_name)
            try:
                blob.upload_from_string(payload, content_type="application/json",
                                        if_generation_match=self.generation, **self._retry)
                self.generation = blob.generation
            except PreconditionFailed:
                current, generation = self._download(self.object_name)
                if current != payload:  # else our own upload, retried by the client after its response was lost
                    raise self._changed_error(generation) from None
                self.generation = generation

    # -- journal -------------------------------------------------------------------------------------
    def _load_journal(self) -> list[bytes]:
        """Every record object under <state>.json.journal/, in serial order (an object's create is atomic: no
        record is ever torn). A name that is not a serial is refused: the bucket is untrusted input too."""
        with self._errors(f"list {self._url(self.journal_prefix)}", LIST):
            names = [blob.name for blob in self._client_factory().list_blobs(
                self.bucket_name, prefix=self.journal_prefix, **self._retry)]
        for name in names:
            if not JOURNAL_RECORD.match(name.removeprefix(self.journal_prefix)):
                raise StateError(f"{self._url(name)} is not a journal record (expected a serial number)",
                                 remedy=f"remove it: `gcloud storage rm {self._url(name)}`")
        self._journal_names = sorted(names)
        records = [raw for raw, _ in self._downloaded(self._journal_names)]
        if None in records:  # removed since the listing: a compaction ran meanwhile
            raise journal.JournalGap(f"{self.journal_display} changed while it was read",
                                     remedy="run the command again")
        return records

    def _downloaded(self, names: list[str]) -> list[tuple[bytes | None, int]]:
        """Each object's (bytes, generation), downloaded side by side: a journal's records are small objects, so
        reading up to 500 of them one after another is all round trips."""
        if len(names) < 2:
            return [self._download(name) for name in names]
        with ThreadPoolExecutor(max_workers=min(PARALLEL_DOWNLOADS, len(names))) as pool:
            return list(pool.map(self._download, names))

    def _append_journal(self, serial: int, record: bytes) -> None:
        """Create the record's object (one creator wins), then keep it only if the state object is still the
        generation this run read: a writer that missed a newer state is refused, as _store refuses it."""
        from google.api_core.exceptions import NotFound, PreconditionFailed

        name = f"{self.journal_prefix}{serial:010d}"
        with self._errors(f"write {self._url(name)}", CREATE):
            blob = self._bucket().blob(name)
            try:
                blob.upload_from_string(record, content_type="application/json", if_generation_match=0,
                                        **self._retry)
                created = blob.generation
            except PreconditionFailed:
                existing, created = self._download(name)
                if existing != record:  # else our own create, retried by the client after its response was lost
                    raise self._changed_error(self._download(self.object_name)[1]) from None
            self._journal_names.append(name)
            live = self._bucket().get_blob(self.object_name, **self._retry)
            if (live.generation if live else 0) != self.generation:
                with suppress(NotFound, PreconditionFailed):
                    blob.delete(if_generation_match=created, **self._retry)
                self._journal_names.remove(name)
                raise self._changed_error(live.generation if live else 0)

    def _claim(self, state: State) -> None:
        self._append_journal(state.serial, journal.encode(state, None))

    def _clear_journal(self) -> None:
        from google.api_core.exceptions import NotFound

        for name in self._journal_names:
            with self._errors(f"delete {self._url(name)}", DELETE), suppress(NotFound):
                self._bucket().blob(name).delete(**self._retry)
        self._journal_names = []

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
    def _create_lock(self, lock_id: str, payload: bytes) -> bool:
        """if_generation_match=0: GCS grants the create to exactly one caller."""
        from google.api_core.exceptions import PreconditionFailed

        with self._errors(f"lock {self.display}", CREATE):
            try:
                self._bucket().blob(self.lock_name).upload_from_string(
                    payload, content_type="application/json", if_generation_match=0, **self._retry)
                return True
            except PreconditionFailed:
                # Also where a create retried by the client after a lost response lands: then the lock is ours.
                return (self.lock_info() or {}).get("id") == lock_id

    def _read_lock(self) -> tuple[bytes | None, int]:
        return self._download(self.lock_name)

    def _delete_lock(self, token: int) -> None:
        from google.api_core.exceptions import NotFound, PreconditionFailed

        # Already released, or replaced since it was read (the precondition): either way not ours to delete.
        with self._errors(f"unlock {self.display}", DELETE), suppress(NotFound, PreconditionFailed):
            self._bucket().blob(self.lock_name).delete(if_generation_match=token, **self._retry)

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
