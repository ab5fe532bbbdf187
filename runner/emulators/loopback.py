"""The HTTP side every emulator shares: a JSON-over-HTTP server bound to 127.0.0.1 only, run in a daemon thread
(common.Emulator builds the request handling on it)."""

from __future__ import annotations

import errno
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from runner.errors import TunerError


class LoopbackServer:
    """Base of an emulator: start() binds 127.0.0.1 (port 0 picks a free one), stop() releases it.

    Subclasses answer requests in handle_http(method, target, headers, body) -> (status, payload): a JSON
    payload, or bytes for a raw download (e.g. a file's content).
    """

    thread_name = "emulator"

    def __init__(self, port: int = 0):
        self._port = port
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def handle_http(self, method: str, target: str, headers: Any, body: bytes) -> tuple[int, dict[str, Any] | bytes]:
        raise NotImplementedError

    def _load(self) -> None:
        """Hook: restore persisted state before serving."""

    def start(self):
        if self._server is not None:
            return self
        self._load()
        try:
            self._server = _Server(("127.0.0.1", self._port), _Handler)
        except OSError as exc:
            raise _bind_error(self._port, exc) from None
        self._server.app = self
        # A short poll interval makes stop() prompt: shutdown() waits for the serving loop to notice.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=self.thread_name,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the emulator is not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _bind_error(port: int, exc: OSError) -> TunerError:
    remedy = "stop what listens there, or choose another port with --port (0 picks a free one)"
    if exc.errno == errno.EADDRINUSE:
        return TunerError(f"port {port} on 127.0.0.1 is already in use", remedy=remedy)
    return TunerError(f"cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", remedy=remedy)


def run_until_interrupted(emulator: LoopbackServer, title: str) -> None:
    """Serve in the foreground (`tuner emulator ...`) until Ctrl-C."""
    emulator.start()
    print(f"{title} listening on {emulator.url}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stop()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: LoopbackServer

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):  # a killed client is normal here, not news
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDKs' HTTP sessions expect
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    server: _Server

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def _answer(self) -> None:
        status, payload = self.server.app.handle_http(self.command, self.path, self.headers, self._body())
        raw = isinstance(payload, bytes)
        data = payload if raw else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream" if raw else "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> bytes:
        """The request body, sent with a Content-Length or chunked (as httpx streams an upload of unknown size)."""
        if "chunked" not in (self.headers.get("Transfer-Encoding") or "").lower():
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""
        chunks = []
        while size := int(self.rfile.readline().split(b";")[0].strip() or b"0", 16):
            chunks.append(self.rfile.read(size))
            self.rfile.readline()  # the CRLF after each chunk
        while self.rfile.readline().strip():  # trailers, up to the blank line
            pass
        return b"".join(chunks)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: tests and the CLI own the terminal
