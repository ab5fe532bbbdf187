"""The Google flavour of an emulator's surface: google.rpc.Status error bodies, opaque pageToken cursors, proto JSON
field names, RFC 3339 timestamps and generateContent's usage counts. Shared by the Gemini and Vertex emulators."""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from runner.emulators.common import ApiError, Item, keyset_page

# google.rpc.Code name -> (HTTP status, numeric code), as Google maps them.
STATUS_CODES = {
    "INVALID_ARGUMENT": (400, 3),
    "FAILED_PRECONDITION": (400, 9),
    "UNAUTHENTICATED": (401, 16),
    "PERMISSION_DENIED": (403, 7),
    "NOT_FOUND": (404, 5),
    "ALREADY_EXISTS": (409, 6),
    "RESOURCE_EXHAUSTED": (429, 8),
    "INTERNAL": (500, 13),
    "UNIMPLEMENTED": (501, 12),
    "UNAVAILABLE": (503, 14),
}
TYPE_PREFIX = "type.googleapis.com/"


class GoogleError(ApiError):
    """An answer in google.rpc.Status form: {"error": {"code", "message", "status", "details"}}."""

    def __init__(self, status: str, message: str, details: list[dict[str, Any]] | None = None):
        super().__init__(message)
        self.status, self.message, self.details = status, message, details or []

    @property
    def http_code(self) -> int:  # type: ignore[override]
        return STATUS_CODES[self.status][0]

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.http_code, "message": self.message, "status": self.status}
        if self.details:
            error["details"] = self.details
        return {"error": error}

    @classmethod
    def invalid(cls, message: str, field_path: str | None = None) -> GoogleError:
        """INVALID_ARGUMENT; with FIELD_PATH it carries a google.rpc.BadRequest naming the field."""
        if field_path is None:
            return cls("INVALID_ARGUMENT", message)
        return cls.bad_request([(field_path, message)], message)

    @classmethod
    def bad_request(cls, violations: list[tuple[str, str]], message: str) -> GoogleError:
        details = [{"@type": TYPE_PREFIX + "google.rpc.BadRequest",
                    "fieldViolations": [{"field": f, "description": d} for f, d in violations]}]
        return cls("INVALID_ARGUMENT", message, details)

    @classmethod
    def not_found(cls, message: str) -> GoogleError:
        return cls("NOT_FOUND", message)

    @classmethod
    def unavailable(cls) -> GoogleError:
        return cls("UNAVAILABLE", "The service is currently unavailable.")

    @classmethod
    def internal(cls, message: str) -> GoogleError:
        return cls("INTERNAL", message)


def rfc3339(epoch_seconds: float) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def snake_case(name: str) -> str:
    """lowerCamel -> snake_case, as proto JSON names map to field names."""
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower()


def usage(prompt: str, answer: str) -> dict[str, int]:
    """Token counts of a generation: words stand for tokens."""
    prompt_tokens, answer_tokens = len(prompt.split()), len(answer.split())
    return {"promptTokenCount": prompt_tokens, "candidatesTokenCount": answer_tokens,
            "totalTokenCount": prompt_tokens + answer_tokens}


def encode_cursor(kind: str, position: int) -> str:
    """An opaque page cursor: which list and the position (a sortable key) of the last item served."""
    return base64.urlsafe_b64encode(json.dumps([kind, position]).encode()).decode().rstrip("=")


def decode_cursor(token: str, kind: str) -> int | None:
    """The position in a cursor of list KIND; None for a token of another list or a tampered one."""
    try:
        token_kind, position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, TypeError, binascii.Error):
        return None
    if token_kind != kind or not isinstance(position, int) or isinstance(position, bool) or position < 0:
        return None
    return position


def cursor_page(items: Iterable[Item], position: Callable[[Item], int], kind: str, token: str | None, size: int,
                bad_token: Callable[[], ApiError], newest_first: bool = False) -> tuple[list[Item], str | None]:
    """keyset_page behind opaque page tokens (Google's pageToken/nextPageToken style): (the page, the next token or
    None). A token of another list, or a tampered one, is BAD_TOKEN's error."""
    after = decode_cursor(token, kind) if token else None
    if token and after is None:
        raise bad_token()
    page, more = keyset_page(items, position, after, size, newest_first)
    return page, encode_cursor(kind, position(page[-1])) if more else None
