"""A real HTTP file server on 127.0.0.1 for tests, with knobs to make it misbehave.

    with FileServer() as server:
        url = server.add("model.onnx", payload)            # bytes or a Path
        server.set("model.onnx", truncate_after=1_000_000)  # change a knob later
        ...
        server.requests                                       # what clients asked for

Knobs per file: ``truncate_after`` (send N body bytes of the answer, then close the connection
while Content-Length promised more), ``ignore_range`` (answer 200 with the whole file),
``corrupt_at`` (flip the byte at this file offset), ``status`` (answer this HTTP error instead),
``delay`` (seconds to sleep before each chunk of ``chunk_size`` bytes: slow transfers, timeouts),
``redirect`` (answer 302 with this Location, as model hubs do).
Unknown paths get 404. Only ever binds 127.0.0.1.
"""

import re
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional, Union

import pytest


@dataclass
class ServedFile:
    data: Union[bytes, Path]
    truncate_after: Optional[int] = None
    ignore_range: bool = False
    corrupt_at: Optional[int] = None
    status: Optional[int] = None
    delay: float = 0.0
    redirect: Optional[str] = None  # answer 302 to this URL instead (model hubs redirect to a CDN)
    chunk_size: int = 64 * 1024

    def size(self) -> int:
        return len(self.data) if isinstance(self.data, bytes) else self.data.stat().st_size

    def read(self, start: int, end: int) -> bytes:
        """Bytes [start, end) as served, with the corruption knob applied."""
        if isinstance(self.data, bytes):
            body = self.data[start:end]
        else:
            with open(self.data, "rb") as f:
                f.seek(start)
                body = f.read(end - start)
        if self.corrupt_at is not None and start <= self.corrupt_at < end:
            i = self.corrupt_at - start
            body = body[:i] + bytes([body[i] ^ 0xFF]) + body[i + 1 :]
        return body


@dataclass
class Served:
    """One request as the server saw it."""

    method: str
    path: str
    range: Optional[str]
    status: int
    body_bytes: int = 0  # body bytes actually written to the socket
    headers: dict = field(default_factory=dict)
    finished: threading.Event = field(default_factory=threading.Event, repr=False)


_RANGE = re.compile(r"^bytes=(\d+)-(\d*)$")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "FathomTestServer/1"

    def log_message(self, format, *args):  # keep test output clean
        pass

    def do_HEAD(self):
        self._serve(send_body=False)

    def do_GET(self):
        self._serve(send_body=True)

    def _serve(self, send_body):
        self._record = None
        try:
            self._answer(send_body)
        finally:
            if self._record is not None:
                self._record.finished.set()

    def _answer(self, send_body):
        owner = self.server.owner
        name = self.path.split("?", 1)[0].lstrip("/")
        record = Served(self.command, "/" + name, self.headers.get("Range"), 0, headers=dict(self.headers))
        owner._record(record)
        self._record = record
        with owner._lock:
            served = owner.files.get(name)
        if served is None or served.status:
            record.status = served.status if served else 404
            self._plain(record.status, b"not found\n" if record.status == 404 else b"error\n", send_body)
            return
        if served.redirect:
            record.status = 302
            self.send_response(302)
            self.send_header("Location", served.redirect)
            self.send_header("Content-Length", "0")
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            return
        size = served.size()
        start, end, status = 0, size, 200
        wanted = record.range and not served.ignore_range and _RANGE.match(record.range)
        if wanted:
            start = int(wanted.group(1))
            end = min(int(wanted.group(2)) + 1, size) if wanted.group(2) else size
            if start >= size or start >= end:
                record.status = 416
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.send_header("Connection", "close")
                self.end_headers()
                return
            status = 206
        record.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{size}")
        self.send_header("Connection", "close")
        self.end_headers()
        if not send_body:
            return
        limit = end if served.truncate_after is None else min(end, start + served.truncate_after)
        pos = start
        try:
            while pos < limit:
                if served.delay:
                    if owner._stopping.wait(served.delay):
                        break
                chunk = served.read(pos, min(pos + served.chunk_size, limit))
                self.wfile.write(chunk)
                self.wfile.flush()
                pos += len(chunk)
                record.body_bytes = pos - start
        except (ConnectionError, OSError):
            pass  # the client went away (a cancel or a timeout): nothing to do
        self.close_connection = True

    def _plain(self, status, body, send_body):
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if send_body:
            self.wfile.write(body)
        self.close_connection = True


class FileServer:
    """A threaded HTTP server on 127.0.0.1 on a free port; use it as a context manager."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._httpd = None
        self._thread = None

    def __enter__(self):
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        self._thread = threading.Thread(  # a short poll interval keeps shutdown quick
            target=self._httpd.serve_forever, args=(0.05,), name="http-fixture", daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self._httpd is not None:
            self._stopping.set()  # wakes slow transfers so their threads end
            self._httpd.shutdown()
            self._httpd.server_close()
            self._thread.join(timeout=5)
            self._httpd = None

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, name: str) -> str:
        return f"{self.base_url}/{name.lstrip('/')}"

    def add(self, name: str, data, **knobs) -> str:
        """Serve ``data`` (bytes or a Path) at /name; returns its URL."""
        with self._lock:
            self.files[name.lstrip("/")] = ServedFile(data if isinstance(data, bytes) else Path(data), **knobs)
        return self.url(name)

    def set(self, name: str, **knobs):
        """Change knobs of a served file, e.g. set(name, truncate_after=None) to heal it."""
        with self._lock:
            served = self.files[name.lstrip("/")]
            for key, value in knobs.items():
                if not hasattr(served, key):
                    raise AttributeError(f"unknown knob {key!r}")
                setattr(served, key, value)

    def requests_for(self, name: str, timeout: float = 5.0) -> list:
        """The requests for /name, once the server has finished answering them."""
        with self._lock:
            found = [r for r in self.requests if r.path == "/" + name.lstrip("/")]
        for r in found:
            r.finished.wait(timeout)
        return found

    def _record(self, record):
        with self._lock:
            self.requests.append(record)


@pytest.fixture
def file_server():
    """A running FileServer, closed after the test. Import this name into a test module to use it."""
    with FileServer() as server:
        yield server
