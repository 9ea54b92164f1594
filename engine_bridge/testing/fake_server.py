"""The fake to-do centre behind a real loopback HTTP server.

Some failures only exist on a socket: connection pooling, a server closing the connection
without an answer, read timeouts, UTF-8 on the wire, a separate process. This module puts the
unchanged ``FakeCenter.answer`` logic behind the standard library's threading HTTP server (no
extra dependency), so a client can be tested exactly as it runs in production.

Request lines go to the ``engine_bridge.testing.fake_server`` logger at INFO, so they stay off
stderr unless logging is configured to show them (``engine-bridge -v fake-center``).
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from engine_bridge.testing.fake_center import FakeCenter

__all__ = ["FakeCenterServer"]

logger = logging.getLogger(__name__)


class _HTTPServer(ThreadingHTTPServer):
    """Threading server that knows its centre and the connections it holds open."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], center: FakeCenter) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.center = center
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client going away mid-request is normal in fault tests; keep stderr quiet
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_sockets = list(self.connections)
        for sock in open_sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    """Translates one HTTP exchange to and from an ``httpx.Request``/``httpx.Response``."""

    protocol_version = "HTTP/1.1"  # keep-alive, as a pooled client will use it
    disable_nagle_algorithm = True  # headers and body are separate writes; don't wait on ACKs
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        logger.info("%s - %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._exchange()

    def do_POST(self) -> None:
        self._exchange()

    def do_PUT(self) -> None:
        self._exchange()

    def do_DELETE(self) -> None:
        self._exchange()

    def do_PATCH(self) -> None:
        self._exchange()

    def _exchange(self) -> None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self._send(411, b'{"code":411,"message":"send a Content-Length"}', "application/json")
            self.close_connection = True
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        host = str(self.server.server_address[0])
        port = int(self.server.server_address[1])
        shown_host = f"[{host}]" if ":" in host else host
        request = httpx.Request(
            self.command,
            f"http://{shown_host}:{port}{self.path}",
            headers=list(self.headers.items()),
            content=body,
        )
        answer = self.server.center.answer(request)
        if answer.response is None:
            # DROP / APPLIED_ANSWER_LOST: close the connection without a status line
            self.close_connection = True
            logger.info(
                "%s - %s %s: connection closed without an answer (%s)",
                self.address_string(),
                self.command,
                self.path,
                answer.lost,
            )
            return
        response = answer.response
        self._send(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/json"),
        )

    def _send(self, status: int, content: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(content)))
        self.end_headers()
        self.wfile.write(content)


class FakeCenterServer:
    """A ``FakeCenter`` served over loopback HTTP from a daemon thread.

    The socket is bound on construction (``port=0`` picks a free port), so ``url`` is known
    before ``start``. Use as a context manager, or call ``close``; closing also cuts
    connections a client still holds open, so no request reaches the centre afterwards.
    """

    def __init__(self, center: FakeCenter, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.center = center
        self._httpd = _HTTPServer((host, port), center)
        self._thread: threading.Thread | None = None
        self._closed = False

    @property
    def host(self) -> str:
        return str(self._httpd.server_address[0])

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        """``http://HOST:PORT`` (no trailing slash), the base URL for a client."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self) -> FakeCenterServer:
        if self._closed:
            raise RuntimeError("this fake centre server was closed; start a new one")
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"fake-center-{self.port}",
                daemon=True,
            )
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving, release the port and cut open connections; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
        self._httpd.server_close()
        self._httpd.close_connections()

    def __enter__(self) -> FakeCenterServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "serving" if self._thread else "bound"
        return f"FakeCenterServer({self.url}, {state})"
