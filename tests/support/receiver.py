"""A tiny HTTP receiver on 127.0.0.1 for webhook tests: records requests, answers as told.

    with running_receiver([500, Hang(2), redirect("http://127.0.0.1:1/"), Reply(200)]) as rx:
        ...  # POST to rx.url + "/hook"
        first, *_ = rx.wait_for_requests(1, timeout=5)

Each request takes the next behaviour from the list; once it is used up, every request gets
`default`. A request is recorded before its behaviour runs, so a test can wait for a request
that is still hanging. Pass `tls=` (a server-side ssl.SSLContext) to serve https.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass(frozen=True)
class Reply:
    """Answer with this status, body and headers."""

    status: int = 200
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Hang:
    """Hold the request for `seconds` (or until the receiver stops), then answer `status`."""

    seconds: float
    status: int = 200


def redirect(location: str, status: int = 307) -> Reply:
    return Reply(status, headers={"Location": location})


Behaviour = int | Reply | Hang


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header's value by case-insensitive name."""
        wanted = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == wanted), None)

    def json(self) -> object:
        return json.loads(self.body)


class Receiver:
    """The running server's address, its recorded requests and its queue of behaviours."""

    def __init__(self, behaviours: Iterable[Behaviour], default: Behaviour) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.scheme = "http"
        self.default = default
        self.stopping = threading.Event()
        self._behaviours: deque[Behaviour] = deque(behaviours)
        self._requests: list[RecordedRequest] = []
        self._changed = threading.Condition()

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of the requests received so far, in arrival order."""
        with self._changed:
            return list(self._requests)

    def add(self, *behaviours: Behaviour) -> None:
        """Queue more behaviours."""
        with self._changed:
            self._behaviours.extend(behaviours)

    def wait_for_requests(self, n: int, timeout: float = 5.0) -> list[RecordedRequest]:
        """Block until at least `n` requests arrived; AssertionError after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(self._requests) < n:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(
                        f"receiver got {len(self._requests)} requests, expected {n}"
                    )
                self._changed.wait(remaining)
            return list(self._requests)

    def _record(self, request: RecordedRequest) -> Behaviour:
        with self._changed:
            self._requests.append(request)
            self._changed.notify_all()
            return self._behaviours.popleft() if self._behaviours else self.default


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            recorded = RecordedRequest(self.command, self.path, dict(self.headers.items()), body)
            behaviour = receiver._record(recorded)
            if isinstance(behaviour, Hang):
                receiver.stopping.wait(behaviour.seconds)
                behaviour = Reply(behaviour.status, headers={"Connection": "close"})
            elif isinstance(behaviour, int):
                behaviour = Reply(behaviour)
            with contextlib.suppress(OSError):
                self._answer(behaviour)

        def _answer(self, reply: Reply) -> None:
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            self.wfile.write(reply.body)

        do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _handle

        def log_message(self, format: str, *args: object) -> None:
            """Quiet: tests read `receiver.requests` instead."""

    return Handler


@contextlib.contextmanager
def running_receiver(
    behaviours: Iterable[Behaviour] = (),
    *,
    default: Behaviour = 200,
    tls: ssl.SSLContext | None = None,
) -> Iterator[Receiver]:
    """Serve on 127.0.0.1 (a free port) in a background thread until the block ends."""
    receiver = Receiver(behaviours, default)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
        receiver.scheme = "https"
    receiver.port = server.server_address[1]
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="receiver", daemon=True
    )
    thread.start()
    try:
        yield receiver
    finally:
        receiver.stopping.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
