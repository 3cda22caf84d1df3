"""server.security against real sockets on 127.0.0.1: SSRF refusals, pinning, caps, data URIs.

Host names are given addresses by replacing socket.getaddrinfo (the resolver the module uses), so
"a public name that points at 127.0.0.1" is tested without any DNS or any other address."""

import base64
import http.server
import ipaddress
import socket
import ssl
import subprocess
import threading
import time

import pytest

from server import security
from server.security import (
    FetchError,
    UnsafeURLError,
    check_url,
    decode_data_uri,
    fetch_image,
    pinned_request,
    resolve_target,
    sniff_image_format,
)

PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00\x90wS"
    b"\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef\x00\x00\x00"
    b"\x00IEND\xaeB`\x82"
)
LOCAL = ("127.0.0.1",)


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    seen = []  # (path, Host header) of every request, shared with the tests
    trickled = {}  # path -> how far a trickling answer got before the client hung up

    def log_message(self, *args):
        pass

    def _send(self, status, body=b"", ctype="image/png", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        self.seen.append((self.path, self.headers.get("Host")))
        port = self.server.server_address[1]
        routes = {
            "/img.png": lambda: self._send(200, PNG),
            "/octet": lambda: self._send(200, PNG, "application/octet-stream"),
            "/octet-junk": lambda: self._send(200, b"GIF89a not allowed", "application/octet-stream"),
            "/page": lambda: self._send(200, b"<html></html>", "text/html; charset=utf-8"),
            "/missing": lambda: self._send(404, b"no", "text/plain"),
            "/big-announced": lambda: self._send(200, PNG + b"\0" * 5000),
            "/to-img": lambda: self._send(302, extra=[("Location", "/img.png")]),
            "/to-private": lambda: self._send(302, extra=[("Location", "http://10.0.0.1/img.png")]),
            "/to-localhost-name": lambda: self._send(301, extra=[("Location", f"http://localhost:{port}/img.png")]),
            "/to-internal-name": lambda: self._send(302, extra=[("Location", "http://internal.example/img.png")]),
            "/loop": lambda: self._send(307, extra=[("Location", "/loop")]),
        }
        if self.path in routes:
            return routes[self.path]()
        if self.path in ("/img-%C3%BC.png", "/img-%C3%BC.png?q=%C3%A9"):  # non-ASCII, percent-encoded
            return self._send(200, PNG)
        if self.path == "/trickle-everything":  # a whole valid answer, status line included, byte by byte
            head = (
                f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n"
                f"X-Padding: {'p' * 200}\r\n\r\n"
            ).encode()
            answer = head + b"%x\r\n" % len(PNG) + PNG + b"\r\n0\r\n\r\n"
            self.close_connection = True
            trickled = self.trickled[self.path] = {"sent": 0, "total": len(answer), "done": threading.Event()}
            try:
                for byte in answer:
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()
                    trickled["sent"] += 1
                    time.sleep(0.02)
            except OSError:
                pass
            finally:
                trickled["done"].set()
            return
        if self.path == "/big-unannounced":  # no Content-Length: the cap must hold on actual bytes
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(PNG)
            for _ in range(100):
                self.wfile.write(b"\0" * 1000)
            self.close_connection = True
            return
        if self.path == "/trickle":  # headers fast, then a byte every 0.2 s for ever (bounded here)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", "100")
            self.end_headers()
            for _ in range(25):
                try:
                    self.wfile.write(b"\0")
                    self.wfile.flush()
                except OSError:
                    return
                time.sleep(0.2)
            return
        self._send(404, b"unknown route", "text/plain")


@pytest.fixture(scope="module")
def image_server():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture
def names(monkeypatch):
    """Give host names addresses: ``names["x.example"] = ["127.0.0.1"]``. Unknown names fail."""
    table, calls = {}, []

    def fake_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
        calls.append(host)
        if host not in table:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        out = []
        for addr in table[host]:
            ip = ipaddress.ip_address(addr)
            fam = socket.AF_INET if ip.version == 4 else socket.AF_INET6
            sockaddr = (addr, port) if ip.version == 4 else (addr, port, 0, 0)
            out.append((fam, socket.SOCK_STREAM, 6, "", sockaddr))
        return out

    monkeypatch.setattr(security.socket, "getaddrinfo", fake_getaddrinfo)
    return _Names(table, calls)


class _Names:
    """The fixture's handle: item assignment names a host, ``calls`` lists every lookup."""

    def __init__(self, table, calls):
        self._table, self.calls = table, calls

    def __setitem__(self, host, addresses):
        self._table[host] = addresses


# ---------------------------------------------------------------- check_url


@pytest.mark.parametrize(
    "address, reason",
    [
        ("127.0.0.1", "loopback"),
        ("127.8.9.10", "loopback"),
        ("[::1]", "loopback"),
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("192.168.1.1", "private"),
        ("[fc00::1]", "private"),
        ("169.254.1.1", "link-local"),
        ("[fe80::1]", "link-local"),
        ("169.254.169.254", "metadata"),
        ("[fd00:ec2::254]", "metadata"),
        ("224.0.0.1", "multicast"),
        ("[ff02::1]", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "reserved"),
        ("0.0.0.0", "unspecified"),
        ("[::]", "unspecified"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.254", "carrier-grade NAT"),
        ("[::ffff:127.0.0.1]", "IPv4-mapped"),
        ("[::ffff:8.8.8.8]", "IPv4-mapped"),
        ("[64:ff9b::a00:1]", "translates to IPv4"),
        ("[2002:a00:1::]", "translates to IPv4"),
    ],
)
def test_every_non_public_address_class_is_refused(address, reason):
    with pytest.raises(UnsafeURLError, match=reason):
        check_url(f"http://{address}/image.png")


@pytest.mark.parametrize("url", ["http://2130706433/", "http://0x7f.1/", "http://0177.0.0.1/", "http://localhost/"])
def test_other_spellings_of_loopback_are_refused_after_resolution(url):
    with pytest.raises(UnsafeURLError, match="loopback"):
        check_url(url)


def test_public_literal_addresses_pass():
    check_url("https://8.8.8.8/x.png")
    check_url("http://[2606:4700:4700::1111]:8080/x.png")


@pytest.mark.parametrize(
    "url, words",
    [
        ("ftp://example.com/x.png", "not ftp:"),
        ("file:///etc/passwd", "not file:"),
        ("gopher://example.com/", "not gopher:"),
        ("//example.com/x.png", "without a scheme"),
        ("http://user:pw@example.com/x.png", "credentials"),
        ("http://user@example.com/x.png", "credentials"),
        ("http:///x.png", "no host"),
        ("http://exa mple.com/", "spaces"),
        ("http://example.com:99999/", "malformed"),
        ("http://example.com/" + "a" * 2100, "limit is 2048"),
    ],
)
def test_malformed_or_unsafe_urls_get_precise_errors(url, words):
    with pytest.raises(UnsafeURLError, match=words):
        check_url(url)


def test_names_are_judged_by_what_they_resolve_to(names):
    names["public.example"] = ["93.184.216.34"]
    names["evil.example"] = ["127.0.0.1"]
    names["mixed.example"] = ["93.184.216.34", "10.1.2.3"]
    names["meta.example"] = ["169.254.169.254"]
    check_url("https://public.example/a.png")
    with pytest.raises(UnsafeURLError, match=r"evil.example \(127.0.0.1\) is a loopback"):
        check_url("http://evil.example/a.png")
    with pytest.raises(UnsafeURLError, match=r"10.1.2.3\) is a private"):
        check_url("http://mixed.example/a.png")  # one bad address is enough
    with pytest.raises(UnsafeURLError, match="metadata"):
        check_url("http://meta.example/latest/meta-data/")
    with pytest.raises(FetchError, match="could not be resolved") as info:
        check_url("http://nowhere.example/")
    assert info.value.code == "dns_failed" and not isinstance(info.value, UnsafeURLError)


def test_allowlist_takes_cidrs_ips_and_names(names):
    names["depth.studio.lan"] = ["192.168.10.5"]
    check_url("http://127.0.0.1:8000/x", allowlist=LOCAL)
    check_url("http://10.20.30.40/x", allowlist=["10.0.0.0/8"])
    check_url("http://[::1]:8000/x", allowlist=["::1"])
    check_url("http://depth.studio.lan/x", allowlist=["DEPTH.studio.lan"])
    with pytest.raises(UnsafeURLError):
        check_url("http://127.0.0.2/x", allowlist=LOCAL)
    with pytest.raises(UnsafeURLError):
        check_url("http://depth.studio.lan/x", allowlist=["other.lan", "10.0.0.0/8"])
    with pytest.raises(UnsafeURLError, match="IPv4-mapped"):  # a v4 CIDR does not open the v6 spelling
        check_url("http://[::ffff:127.0.0.1]/x", allowlist=LOCAL)


# ---------------------------------------------------------------- fetch_image


def test_fetch_allowlisted_local_image(image_server):
    assert fetch_image(f"{image_server}/img.png", max_bytes=10_000, allowlist=LOCAL) == PNG


def test_fetch_refuses_loopback_without_allowlist(image_server):
    _Handler.seen.clear()
    with pytest.raises(UnsafeURLError, match="loopback"):
        fetch_image(f"{image_server}/img.png", max_bytes=10_000)
    assert _Handler.seen == []  # refused before connecting


def test_name_resolving_to_loopback_is_refused_and_never_contacted(image_server, names):
    port = image_server.rsplit(":", 1)[1]
    names["innocent.example"] = ["127.0.0.1"]
    _Handler.seen.clear()
    with pytest.raises(UnsafeURLError, match="innocent.example"):
        fetch_image(f"http://innocent.example:{port}/img.png", max_bytes=10_000)
    assert _Handler.seen == []


def test_connection_is_pinned_to_the_checked_address(image_server, names):
    """Resolved once, connected to that address, Host header still the name (no DNS rebinding)."""
    port = image_server.rsplit(":", 1)[1]
    names["images.example"] = ["127.0.0.1"]
    _Handler.seen.clear()
    names.calls.clear()
    assert fetch_image(f"http://images.example:{port}/img.png", max_bytes=10_000, allowlist=LOCAL) == PNG
    assert names.calls == ["images.example"]
    assert _Handler.seen == [("/img.png", f"images.example:{port}")]


def test_redirects_are_rechecked(image_server, names):
    names["internal.example"] = ["192.168.0.10"]
    names["localhost"] = ["127.0.0.1"]
    _Handler.seen.clear()
    assert fetch_image(f"{image_server}/to-img", max_bytes=10_000, allowlist=LOCAL) == PNG
    # localhost resolves to the allowlisted 127.0.0.1, so this redirect may be followed
    assert fetch_image(f"{image_server}/to-localhost-name", max_bytes=10_000, allowlist=LOCAL) == PNG
    assert [p for p, _ in _Handler.seen] == ["/to-img", "/img.png", "/to-localhost-name", "/img.png"]
    _Handler.seen.clear()
    with pytest.raises(UnsafeURLError, match=r"10.0.0.1 is a private"):
        fetch_image(f"{image_server}/to-private", max_bytes=10_000, allowlist=LOCAL)
    with pytest.raises(UnsafeURLError, match=r"internal.example \(192.168.0.10\) is a private"):
        fetch_image(f"{image_server}/to-internal-name", max_bytes=10_000, allowlist=LOCAL)
    assert [p for p, _ in _Handler.seen] == ["/to-private", "/to-internal-name"]
    with pytest.raises(FetchError, match="more than 3") as info:
        fetch_image(f"{image_server}/loop", max_bytes=10_000, allowlist=LOCAL)
    assert info.value.code == "too_many_redirects"


def test_pinned_request_does_not_follow_redirects(image_server):
    _Handler.seen.clear()
    result = pinned_request("GET", f"{image_server}/to-img", allowlist=LOCAL)
    assert result.status == 302 and result.headers["location"] == "/img.png"
    assert [p for p, _ in _Handler.seen] == ["/to-img"]


@pytest.mark.parametrize(
    "path, code, words",
    [
        ("/big-announced", "too_large", "limit is 1000"),
        ("/big-unannounced", "too_large", "larger than the limit of 1000"),
        ("/page", "bad_content_type", "text/html"),
        ("/octet-junk", "bad_format", "not a PNG"),
        ("/missing", "http_status", "HTTP 404"),
    ],
)
def test_fetch_refusals(image_server, path, code, words):
    with pytest.raises(FetchError, match=words) as info:
        fetch_image(f"{image_server}{path}", max_bytes=1000, allowlist=LOCAL)
    assert info.value.code == code


def test_octet_stream_is_judged_by_its_bytes(image_server):
    assert fetch_image(f"{image_server}/octet", max_bytes=1000, allowlist=LOCAL) == PNG


def test_whole_download_has_a_deadline(image_server):
    start = time.monotonic()
    with pytest.raises(FetchError) as info:
        fetch_image(f"{image_server}/trickle", max_bytes=1000, allowlist=LOCAL, timeout=1.0)
    assert info.value.code == "timeout"
    assert time.monotonic() - start < 3.0


def test_deadline_covers_status_line_headers_and_chunk_sizes(image_server):
    """A host trickling its whole answer (status line, headers, chunk sizes) a byte at a time is
    hung up on at the deadline, not read to its end (a per-read timeout never fires for it)."""
    with pytest.raises(FetchError) as info:
        fetch_image(f"{image_server}/trickle-everything", max_bytes=1000, allowlist=LOCAL, timeout=0.5)
    assert info.value.code == "timeout"
    trickled = _Handler.trickled["/trickle-everything"]
    assert trickled["done"].wait(30)
    assert trickled["sent"] < trickled["total"] // 2, trickled


@pytest.mark.parametrize("path", ["/img-ü.png", "/img-ü.png?q=é"])
def test_non_ascii_paths_are_percent_encoded(image_server, path):
    _Handler.seen.clear()
    assert fetch_image(f"{image_server}{path}", max_bytes=10_000, allowlist=LOCAL) == PNG
    assert _Handler.seen[0][0].startswith("/img-%C3%BC.png")


def test_internationalised_host_names_go_out_in_ascii(names):
    names["xn--bcher-kva.example"] = ["127.0.0.1"]
    target = resolve_target("http://bücher.example:8080/a", allowlist=LOCAL)
    assert target.host == "xn--bcher-kva.example" and target.host_header == "xn--bcher-kva.example:8080"


def test_nothing_listening_is_a_connection_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound but not listening: the connection is refused
        with pytest.raises(FetchError) as info:
            fetch_image(f"http://127.0.0.1:{port}/x.png", max_bytes=1000, allowlist=LOCAL, timeout=2)
    assert info.value.code == "connection"


def test_https_keeps_sni_and_certificate_name_while_pinned(tmp_path, names):
    """TLS to the pinned 127.0.0.1 still sends SNI and verifies the certificate for the name."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
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
            "/CN=images.example",
            "-addext",
            "subjectAltName=DNS:images.example",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(cert, key)
    sni_seen = []
    server_ctx.sni_callback = lambda sock, name, ctx: sni_seen.append(name)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.socket = server_ctx.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        names["images.example"] = ["127.0.0.1"]
        names["other.example"] = ["127.0.0.1"]
        client_ctx = ssl.create_default_context(cafile=str(cert))
        got = fetch_image(
            f"https://images.example:{port}/img.png", max_bytes=10_000, allowlist=LOCAL, ssl_context=client_ctx
        )
        assert got == PNG and sni_seen == ["images.example"]
        with pytest.raises(FetchError, match="TLS") as info:  # certificate is not for this name
            fetch_image(
                f"https://other.example:{port}/img.png", max_bytes=10_000, allowlist=LOCAL, ssl_context=client_ctx
            )
        assert info.value.code == "tls"
    finally:
        server.shutdown()
        server.server_close()


# ---------------------------------------------------------------- data URIs


def test_data_uri_round_trip_and_sniffing():
    uri = "data:image/png;base64," + base64.b64encode(PNG).decode()
    assert decode_data_uri(uri, max_bytes=1000) == PNG
    encoded = base64.b64encode(PNG).decode()
    wrapped = "data:image/png;base64," + "\n".join(encoded[i : i + 20] for i in range(0, len(encoded), 20))
    assert decode_data_uri(wrapped, max_bytes=1000) == PNG
    assert sniff_image_format(PNG) == "png"
    assert sniff_image_format(b"\xff\xd8\xff\xe0rest") == "jpeg"
    assert sniff_image_format(b"RIFF\0\0\0\0WEBPVP8 ") == "webp"
    assert sniff_image_format(b"SIMPLE  =                    T") is None  # FITS is not accepted


@pytest.mark.parametrize(
    "uri, code",
    [
        ("data:image/png;base64,!!!notbase64!!!", "bad_data_uri"),
        ("data:image/png;base64", "bad_data_uri"),
        ("image/png;base64,AAAA", "bad_data_uri"),
        ("data:text/html;base64," + base64.b64encode(b"<html>").decode(), "bad_content_type"),
        ("data:image/png;base64," + base64.b64encode(b"GIF89a....").decode(), "bad_format"),
        ("data:image/png;base64,", "bad_image"),
        ("data:image/png;base64," + base64.b64encode(PNG + b"\0" * 2000).decode(), "too_large"),
    ],
)
def test_bad_data_uris(uri, code):
    with pytest.raises(FetchError) as info:
        decode_data_uri(uri, max_bytes=1000)
    assert info.value.code == code, str(info.value)


def test_resolve_target_reports_host_header_and_path():
    target = resolve_target("https://8.8.8.8:8443/a/b.png?x=1")
    assert (target.ip, target.port, target.path, target.host_header) == (
        "8.8.8.8",
        8443,
        "/a/b.png?x=1",
        "8.8.8.8:8443",
    )
    assert resolve_target("http://[2606:4700::1]/").host_header == "[2606:4700::1]"
