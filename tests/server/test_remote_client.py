"""engine.remote.RemoteClient against the real depth server on 127.0.0.1 (tests/server/conftest.py),
plus raw sockets on 127.0.0.1 for what a healthy server never does (drop the connection, 503)."""

import socket
import ssl
import subprocess
import threading
import time
import uuid

import pytest

from engine import remote
from engine.errors import CancelledError, FathomError, InvalidSettingsError
from engine.exr import read_exr
from engine.imageio import read_image
from engine.settings import DepthSettings
from tests.server.conftest import free_port
from tests.server.test_api import png_bytes

TOP_UP = "https://tokens.example/buy"
LOW = DepthSettings(resolution=256)  # 1 token with the default price list


def client_for(server, user, **kwargs):
    kwargs.setdefault("backoff", 0.01)
    return remote.RemoteClient(server.url, user.key, **kwargs)


@pytest.fixture(scope="module")
def idle_server(tiny_catalog, tmp_path_factory):
    """No workers (jobs stay 'starting', so they can be canceled), a top-up URL, rate limits off."""
    from tests.server.conftest import Server

    tmp = tmp_path_factory.mktemp("server-idle")
    srv = Server(
        tmp, f"sqlite:///{tmp / 'fathom.db'}", tiny_catalog, workers="0", top_up_url=TOP_UP, rate_per_second="0"
    )
    yield srv
    srv.close()


# ------------------------------------------------------------------ pure helpers


def test_resolution_maps_to_nearest_multiple_of_64():
    assert [remote.api_resolution(r) for r in (256, 518, 544, 575, 1000, 2047, 2048)] == [
        256,
        512,
        576,
        576,
        1024,
        2048,
        2048,
    ]
    params = remote.api_parameters(
        DepthSettings(resolution=518, invert=True, post_resize=False, normalization="V2_Style"), "small"
    )
    assert params == {
        "model": "small",
        "resolutionLowerLimit": 512,
        "invertDepth": True,
        "usePostResize": False,
        "normalizationMode": "V2-Style",
    }


def test_result_cache_key():
    pic, s = png_bytes(seed=1), DepthSettings()
    key = remote.result_cache_key(pic, s, "http://h")
    assert len(key) == 64 and key == remote.result_cache_key(pic, DepthSettings(), "http://h/")
    # What does not change the server's result shares the key: format, threads, 518 vs 512.
    assert key == remote.result_cache_key(
        pic, DepthSettings(output_format="png8", threads=3, resolution=512), "http://h"
    )
    for other in (
        remote.result_cache_key(png_bytes(seed=2), s, "http://h"),
        remote.result_cache_key(pic, DepthSettings(invert=True), "http://h"),
        remote.result_cache_key(pic, DepthSettings(resolution=1024), "http://h"),
        remote.result_cache_key(pic, s, "http://other"),
    ):
        assert other != key


@pytest.mark.parametrize("url", ["depth.example.com", "ftp://h", "http://", "http://h:port", "http://h/?x=1", ""])
def test_unusable_server_url(url):
    with pytest.raises(remote.ServerURLError, match="server URL") as err:
        remote.RemoteClient(url, "k")
    assert isinstance(err.value, InvalidSettingsError)


def test_server_url_is_normalised():
    assert remote.RemoteClient(" https://depth.example.com/v2/ ", "k").base_url == "https://depth.example.com"
    assert remote.RemoteClient("http://127.0.0.1:8000/", "k").base_url == "http://127.0.0.1:8000"


# ------------------------------------------------------------------ the real server


def test_pricing_and_cost_match_the_charge(server):
    user = server.user(tokens=10)
    client = client_for(server, user)
    prices = client.pricing()
    assert [(m["model"], m["catalogueId"]) for m in prices["models"]] == [("small", "da2-small")]
    assert [client.cost(DepthSettings(resolution=r)) for r in (256, 518, 600, 1024, 1500, 2048)] == [1, 1, 2, 2, 3, 4]
    assert client.cost(DepthSettings(model="small")) == 1  # the server's own name works too
    with pytest.raises(InvalidSettingsError, match=r"no model 'da2-large'; it has: small \(da2-small\)"):
        client.cost(DepthSettings(model="da2-large"))
    job = client.submit(png_bytes(), DepthSettings(resolution=1000))  # 1024 on the server
    assert job["parameters"]["resolutionLowerLimit"] == 1024
    assert server.balance(user) == 10 - client.cost(DepthSettings(resolution=1000)) == 8
    assert client.cost(DepthSettings(resolution=2048)) == 4 and client.me()["balance"] == 8
    client.wait(job["id"], timeout=60)


def test_submit_wait_download(server):
    user = server.user(tokens=10)
    client = client_for(server, user)
    seen = []
    job = client.submit(png_bytes(96, 64), LOW, filename='my "shot".png')
    uuid.UUID(job["idempotencyKey"])  # generated when none is given
    assert job["status"] in ("starting", "processing", "succeeded") and job["parameters"]["model"] == "small"
    done = client.wait(job["id"], progress=lambda status, art: seen.append((status, art["id"])), timeout=60)
    assert done["status"] == "succeeded" and seen[-1] == ("succeeded", job["id"])

    exr = read_exr(client.download(job["id"], "exr"))
    (depth,) = exr.channels.values()
    assert depth.shape == (64, 96) and depth.dtype.name == "float32"
    assert 0.0 <= depth.min() < depth.max() <= 1.0
    png = read_image(client.download(job["id"], "png16"))
    assert png.rgb.shape[:2] == (64, 96) and png.bit_depth == 16
    with pytest.raises(InvalidSettingsError, match="exr or png16"):
        client.download(job["id"], "tiff")

    assert server.balance(user) == 9 and client.me()["balance"] == 9
    assert [(e["kind"], e["delta"], e["artworkId"]) for e in client.me()["ledger"]][0] == ("charge", -1, job["id"])
    listing = client.list(0, 10)
    assert listing["total"] == 1 and listing["artworks"][0]["id"] == job["id"]
    with pytest.raises(remote.JobError, match="No artwork") as err:
        client.get(str(uuid.uuid4()))
    assert err.value.status == 404


def test_wait_by_polling_when_long_polls_are_off(server):
    user = server.user(tokens=5)
    client = client_for(server, user, long_poll=0)
    seen = []
    job = client.submit(png_bytes(seed=3), LOW)
    assert client.wait(job["id"], progress=lambda s, _: seen.append(s), poll=0.05, timeout=60)["status"] == "succeeded"
    assert seen[-1] == "succeeded"


def test_idempotent_retry_charges_once(server):
    user = server.user(tokens=5)
    client = client_for(server, user)
    picture, key = png_bytes(seed=4), str(uuid.uuid4())
    first = client.submit(picture, LOW, idempotency_key=key)
    again = client.submit(picture, LOW, idempotency_key=key)
    assert again["id"] == first["id"] and again["idempotencyKey"] == key
    assert server.balance(user) == 4 and client.list()["total"] == 1
    with pytest.raises(remote.InvalidParameterError, match="Idempotency-Key was used for a different request"):
        client.submit(png_bytes(seed=5), LOW, idempotency_key=key)
    assert server.balance(user) == 4
    client.wait(first["id"], timeout=60)


def test_wrong_or_missing_api_key(server):
    with pytest.raises(remote.AuthenticationError, match="check the API key in Edit > Preferences") as err:
        remote.RemoteClient(server.url, "fk_not_a_key").me()
    assert err.value.status == 401 and "not valid" in err.value.server_message
    with pytest.raises(remote.AuthenticationError, match="No API key is set") as err:
        remote.RemoteClient(server.url, "  ").submit(png_bytes(), LOW)
    assert err.value.status is None  # refused before anything was sent
    assert remote.RemoteClient(server.url, "").pricing()["models"]  # the price list needs no key


def test_a_url_that_is_not_the_servers_root(server):
    user = server.user(tokens=1)
    with pytest.raises(remote.ServerURLError, match=r"/depth has no GET /v2/me \(HTTP 404\): check that the server"):
        remote.RemoteClient(server.url + "/depth", user.key).me()


def test_invalid_parameters_are_named(server):
    user = server.user(tokens=5)
    client = client_for(server, user)
    with pytest.raises(remote.InvalidParameterError) as err:  # what an older client could send
        client._json(
            "POST",
            "/v2/artworks/depth-map",
            data={"resolutionLowerLimit": "500"},
            files={"image": ("p.png", png_bytes())},
        )
    assert err.value.parameter == "resolutionLowerLimit"
    assert "refused the resolution setting (parameter 'resolutionLowerLimit')" in str(err.value)
    assert "multiple of 64, for example 448 or 512" in str(err.value)
    with pytest.raises(remote.InvalidParameterError, match="is not a PNG, JPEG") as err:
        client.submit(b"this is not a picture", LOW)
    assert err.value.parameter is None
    assert server.balance(user) == 5 and client.list()["total"] == 0


def test_failed_job_shows_its_refund(server):
    user = server.user(tokens=5)
    client = client_for(server, user)
    broken = png_bytes(64, 64, seed=6)[:120]  # a valid header, then the pixels are cut off
    job = client.submit(broken, LOW)  # charged, then failed and refunded (maybe already)
    with pytest.raises(remote.JobFailedError, match="refunded") as err:
        client.wait(job["id"], timeout=60)
    assert err.value.refunded == 1 and err.value.job["status"] == "failed"
    assert sorted(e["kind"] for e in server.ledger(user) if e["artwork_id"] == job["id"]) == ["charge", "refund"]
    assert server.balance(user) == 5


# ------------------------------------------------------------------ a server without workers


def test_insufficient_tokens_charges_nothing(idle_server):
    user = idle_server.user(tokens=1)
    client = client_for(idle_server, user)
    assert client.pricing()["topUpUrl"] == TOP_UP
    assert client.cost(DepthSettings(resolution=2048)) == 4 and client.me()["balance"] == 1
    with pytest.raises(remote.InsufficientTokensError) as err:
        client.submit(png_bytes(), DepthSettings(resolution=2048))
    e = err.value
    assert (e.needed, e.balance, e.shortfall, e.top_up_url, e.status) == (4, 1, 3, TOP_UP, 402)
    assert str(e).startswith("Short by 3 tokens: this depth map costs 4 and your balance is 1.")
    assert TOP_UP in str(e) and "Nothing was charged" in str(e)
    assert idle_server.balance(user) == 1 and client.list()["total"] == 0


def test_cancel_refunds_a_job_that_had_not_started(idle_server):
    user = idle_server.user(tokens=5)
    client = client_for(idle_server, user)
    job = client.submit(png_bytes(seed=7), LOW)
    assert job["status"] == "starting" and idle_server.balance(user) == 4
    canceled = client.cancel(job["id"])
    assert canceled["status"] == "canceled" and idle_server.balance(user) == 5
    assert client.cancel(job["id"])["status"] == "canceled"  # canceling again: the job as it is

    job = client.submit(png_bytes(seed=8), LOW)
    asked = []
    with pytest.raises(CancelledError, match="You canceled depth map .* 1 token was refunded") as err:
        client.wait(job["id"], cancel=lambda: asked.append(1) or len(asked) > 2, timeout=60)
    assert isinstance(err.value, remote.JobCancelledError) and err.value.refunded == 1
    assert client.get(job["id"])["status"] == "canceled" and idle_server.balance(user) == 5


def test_wait_gives_up_but_the_job_goes_on(idle_server):
    user = idle_server.user(tokens=5)
    client = client_for(idle_server, user, long_poll=0.3)
    job = client.submit(png_bytes(seed=9), LOW)
    with pytest.raises(remote.WaitTimeoutError, match="still starting on the server after 1 s") as err:
        client.wait(job["id"], timeout=1)
    assert err.value.job_id == job["id"] and client.get(job["id"])["status"] == "starting"
    client.cancel(job["id"])


def test_rate_limit_is_waited_out_or_reported(tiny_catalog, start_server):
    srv = start_server("sqlite", tiny_catalog, workers="0", rate_per_second="1", rate_burst="1")
    user = srv.user(tokens=5)
    patient = client_for(srv, user)
    impatient = client_for(srv, user, retries=0)
    patient.submit(png_bytes(seed=10), LOW)
    with pytest.raises(remote.RateLimitedError, match=r"retry in \d+ s") as err:
        impatient.submit(png_bytes(seed=11), LOW)
    assert 0 < err.value.retry_after <= 2
    patient.submit(png_bytes(seed=12), LOW)  # waits for Retry-After, then goes through
    assert srv.balance(user) == 3


# ------------------------------------------------------------------ network failures


class LoopbackServer:
    """A socket server on 127.0.0.1 that hands each connection to ``handle``, one at a time."""

    scheme = "http"

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"{self.scheme}://127.0.0.1:{self.sock.getsockname()[1]}"
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.handle(conn)

    def handle(self, conn):
        raise NotImplementedError

    def close(self):
        self.sock.close()


class RawServer(LoopbackServer):
    """Reads each request's head, then sends ``reply`` and closes (b"": closes without a word;
    None: holds the connection open, never answering). Counts connections."""

    def __init__(self, reply=b""):
        self.reply, self.count, self.held = reply, 0, []
        super().__init__()

    def handle(self, conn):
        self.count += 1
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                break
            data += chunk
        if self.reply is None:
            self.held.append(conn)
            return
        if self.reply:
            conn.sendall(self.reply)
        conn.close()

    def close(self):
        super().close()
        for conn in self.held:
            conn.close()


@pytest.fixture
def raw_server(request):
    srv = RawServer(getattr(request, "param", b""))
    yield srv
    srv.close()


def test_dropped_connection_is_retried_then_reported(raw_server):
    client = remote.RemoteClient(raw_server.url, "k", retries=2, backoff=0.01)
    with pytest.raises(remote.UnreachableError, match="closed the connection before answering \\(3 attempts\\)") as err:
        client.me()
    assert err.value.reason == "dropped" and raw_server.count == 3
    assert isinstance(err.value, FathomError)


def http_reply(head: str, body: bytes = b"") -> bytes:
    return f"{head}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


@pytest.mark.parametrize(
    "raw_server",
    [
        http_reply(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 0\r\nContent-Type: application/json",
            b'{"message": "down for upgrade"}',
        )
    ],
    indirect=True,
)
def test_server_errors_are_retried_then_reported(raw_server):
    client = remote.RemoteClient(raw_server.url, "k", retries=2, backoff=5)  # Retry-After: 0 beats backoff
    started = time.monotonic()
    with pytest.raises(remote.ServerError, match=r"failed \(HTTP 503\) after 3 attempt\(s\): down for upgrade"):
        client.me()
    assert raw_server.count == 3 and time.monotonic() - started < 4


@pytest.mark.parametrize(
    "raw_server",
    [
        http_reply(
            "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 120\r\nContent-Type: application/json",
            b'{"message": "later"}',
        )
    ],
    indirect=True,
)
def test_a_retry_after_beyond_the_limit_is_reported_at_once(raw_server):
    client = remote.RemoteClient(raw_server.url, "k", retries=3, max_retry_after=60)
    started = time.monotonic()
    with pytest.raises(remote.ServerError, match=r"failed \(HTTP 503\) after 1 attempt\(s\): later"):
        client.me()
    assert raw_server.count == 1 and time.monotonic() - started < 30


class KeepAliveServer(LoopbackServer):
    """Answers every request on a connection with the same JSON, keeping the connection open."""

    def __init__(self):
        self.connections, self.requests = 0, 0
        super().__init__()

    def handle(self, conn):
        self.connections += 1
        threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        with conn:
            data = b""
            while True:
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                _, data = data.split(b"\r\n\r\n", 1)
                self.requests += 1
                conn.sendall(
                    http_reply("HTTP/1.1 200 OK\r\nContent-Type: application/json", b'{"user": "a", "balance": 3}')
                )


def test_calls_reuse_one_connection():
    srv = KeepAliveServer()
    try:
        client = remote.RemoteClient(srv.url, "k")
        assert [client.me()["balance"] for _ in range(3)] == [3, 3, 3]
    finally:
        srv.close()
    assert (srv.requests, srv.connections) == (3, 1)  # urllib opened one connection per request


@pytest.mark.parametrize(
    "raw_server", [http_reply("HTTP/1.1 200 OK\r\nContent-Type: text/html", b"<html>")], indirect=True
)
def test_a_server_that_is_not_the_depth_api(raw_server):
    with pytest.raises(remote.ServerError, match=r"not the depth API \(text/html\): check the server URL"):
        remote.RemoteClient(raw_server.url, "k").me()


@pytest.mark.parametrize(
    "raw_server", [http_reply("HTTP/1.1 301 Moved\r\nLocation: https://elsewhere.example/")], indirect=True
)
def test_redirects_are_reported_not_followed(raw_server):
    with pytest.raises(remote.ServerURLError, match="redirects to https://elsewhere.example/"):
        remote.RemoteClient(raw_server.url, "k").me()
    assert raw_server.count == 1


class LosingProxy(LoopbackServer):
    """A proxy on 127.0.0.1 in front of the real server that delivers every request but loses the
    server's answer to the first ``lose`` POSTs: the network failure after a charge."""

    def __init__(self, upstream_port: int, lose: int = 1, tls: ssl.SSLContext = None):
        self.upstream_port, self.lose, self.posts, self.tls = upstream_port, lose, 0, tls
        self.scheme = "https" if tls else "http"
        super().__init__()

    def handle(self, conn):
        if self.tls is not None:
            try:
                conn = self.tls.wrap_socket(conn, server_side=True)
            except (ssl.SSLError, OSError):  # the client refused the certificate
                conn.close()
                return
        with conn:
            request = self._read_request(conn)
            self.posts += request.startswith(b"POST ")
            with socket.create_connection(("127.0.0.1", self.upstream_port)) as up:
                # One request per connection: upstream closes after answering, which ends the answer.
                up.sendall(request.replace(b"Connection: keep-alive\r\n", b"Connection: close\r\n", 1))
                answer = b"".join(iter(lambda: up.recv(65536), b""))
            if not request.startswith(b"POST ") or self.posts > self.lose:
                conn.sendall(answer)

    @staticmethod
    def _read_request(conn) -> bytes:
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head = data.split(b"\r\n\r\n", 1)[0].decode("latin-1").lower()
        length = next(
            (int(line.split(":", 1)[1]) for line in head.split("\r\n") if line.startswith("content-length:")), 0
        )
        while len(data) - len(head) - 4 < length:
            data += conn.recv(65536)
        return data


def test_a_lost_answer_is_retried_with_the_same_key_and_charged_once(server):
    user = server.user(tokens=5)
    proxy = LosingProxy(server.port, lose=1)
    try:
        client = remote.RemoteClient(proxy.url, user.key, retries=2, backoff=0.01)
        job = client.submit(png_bytes(seed=13), LOW)
    finally:
        proxy.close()
    assert proxy.posts == 2  # the first answer was lost, the retry replayed it
    direct = client_for(server, user)
    assert direct.list()["total"] == 1 and direct.list()["artworks"][0]["id"] == job["id"]
    assert server.balance(user) == 4
    assert direct.wait(job["id"], timeout=60)["status"] == "succeeded"


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory):
    """A certificate for 127.0.0.1 that no system trusts, made with the openssl command."""
    tmp = tmp_path_factory.mktemp("tls")
    cert, key = tmp / "cert.pem", tmp / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


def test_tls_certificate_not_trusted_then_trusted(server, self_signed):
    cert, key = self_signed
    front = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    front.load_cert_chain(cert, key)
    proxy = LosingProxy(server.port, lose=0, tls=front)  # TLS in front of the real server, as in production
    try:
        with pytest.raises(remote.UnreachableError, match="TLS certificate of 127.0.0.1 cannot be trusted") as err:
            remote.RemoteClient(proxy.url, "k", retries=2, backoff=0.01).pricing()
        assert err.value.reason == "tls"
        trusting = remote.RemoteClient(proxy.url, "k", ssl_context=ssl.create_default_context(cafile=str(cert)))
        assert trusting.pricing()["models"][0]["model"] == "small"
    finally:
        proxy.close()


def test_dns_failure_message():
    # No lookup here (tests reach 127.0.0.1 only): the error getaddrinfo raises, classified.
    client = remote.RemoteClient("https://depth.example.invalid", "k")
    error = client._transport_error(socket.gaierror(socket.EAI_NONAME, "Name or service not known"), 1)
    assert error.reason == "dns" and str(error) == (
        "Cannot find the depth server's host 'depth.example.invalid' (DNS lookup failed: Name or service not "
        "known): check the server URL and your network."
    )


def test_connection_refused():
    url = f"http://127.0.0.1:{free_port()}"  # bound then closed: nothing listens
    client = remote.RemoteClient(url, "k", retries=1, backoff=0.01)
    with pytest.raises(remote.UnreachableError) as err:
        client.me()
    assert str(err.value) == (
        f"Cannot reach the depth server at {url}: connection refused (2 attempts) — "
        "is it running, and is the port right?"
    )
    assert err.value.reason == "refused"


def test_https_to_a_plain_http_server(server):
    client = remote.RemoteClient(server.url.replace("http://", "https://"), "k", retries=3)
    with pytest.raises(remote.UnreachableError, match="TLS handshake .* failed .* needs an http:// URL") as err:
        client.me()
    assert err.value.reason == "tls"  # not retried: it cannot get better


@pytest.mark.parametrize("raw_server", [None], indirect=True)
def test_timeout_is_retried_then_reported(raw_server):
    client = remote.RemoteClient(raw_server.url, "k", timeout=0.3, retries=1, backoff=0.01)
    with pytest.raises(remote.UnreachableError, match=r"did not answer within 0.3 s \(2 attempts\)") as err:
        client.me()
    assert err.value.reason == "timeout" and raw_server.count == 2
