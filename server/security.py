"""Untrusted input: URLs a caller gives us (imageUrl, webhook) and images sent inline.

The server fetches user-supplied URLs, so every request is an SSRF risk. The rules here:

* Only ``http`` and ``https``; no credentials in the URL; at most ``MAX_URL_LENGTH`` characters.
* The host is resolved and EVERY address it resolves to is checked (not the host name: a public
  name can point at 127.0.0.1). Refused: loopback, private, link-local, multicast, reserved,
  unspecified, CGNAT 100.64.0.0/10, IPv4-mapped/translated IPv6 (they smuggle IPv4 targets past
  IPv6 checks), and the cloud metadata addresses 169.254.169.254 / fd00:ec2::254.
* An allowlist (CIDRs, single IPs or exact host names) lets tests and LAN studios through.
* The connection goes to the address that was checked (``PinnedTarget.ip``), never to a second
  resolution of the name, so a DNS answer that changes between check and connect (DNS
  rebinding) cannot reach an internal address. The Host header and the TLS SNI/certificate
  check still use the host name.
* ``fetch_image`` follows at most ``MAX_REDIRECTS`` (3) redirects, and each target is checked
  and pinned again as if the caller had given it; image CDNs redirect too often to refuse them
  all. ``pinned_request`` (used for webhooks) follows none.
* Bodies are streamed with a byte cap (both the announced Content-Length and the bytes
  actually read) and a whole-request deadline, so a slow or endless answer cannot hold a worker.
* Images must announce an allowed Content-Type (or a generic binary one) and their first bytes
  must be one of ``ALLOWED_FORMATS``; Pillow never sees anything else (FITS, PSD, EPS, ...).

Public API (the server core codes against these):
    check_url(url, allowlist=()) -> None              raises UnsafeURLError
    resolve_target(url, allowlist=()) -> PinnedTarget raises UnsafeURLError
    pinned_request(method, url, *, allowlist, body, headers, timeout, max_response_bytes)
        -> HTTPResult                                 one request, no redirects, raises FetchError
    fetch_image(url, *, max_bytes, allowlist=(), timeout=10) -> bytes   raises FetchError
    decode_data_uri(uri, *, max_bytes) -> bytes       raises FetchError
    sniff_image_format(data) -> str | None
Every error is a ``FetchError`` (a ``ValueError``) with a message for the API caller and a short
machine-readable ``code``; ``UnsafeURLError`` is the ``FetchError`` for refused destinations.
"""

from __future__ import annotations

import base64
import binascii
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Iterable, Mapping
from urllib.parse import quote, unquote_to_bytes, urljoin, urlsplit

MAX_URL_LENGTH = 2048
MAX_REDIRECTS = 3
USER_AGENT = "fathom-depth-server/1"

# Content types accepted for an image; generic binary types are accepted too, then the bytes decide.
IMAGE_CONTENT_TYPES = frozenset(
    {
        "image/png",
        "image/jpeg",
        "image/jpg",
        "image/pjpeg",
        "image/webp",
        "image/tiff",
        "image/bmp",
        "image/x-ms-bmp",
    }
)
GENERIC_CONTENT_TYPES = frozenset({"application/octet-stream", "binary/octet-stream", ""})
ALLOWED_FORMATS = ("png", "jpeg", "webp", "tiff", "bmp")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

_METADATA = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_BROADCAST = ipaddress.ip_address("255.255.255.255")
# IANA special-purpose blocks that older Pythons still call global.
_SPECIAL_V4 = tuple(ipaddress.ip_network(n) for n in ("192.0.0.0/24", "198.18.0.0/15"))
# IPv6 prefixes that embed or translate to an IPv4 address: 6to4, Teredo, NAT64 (well-known, local).
_TRANSLATED_V6 = tuple(ipaddress.ip_network(n) for n in ("2002::/16", "2001::/32", "64:ff9b::/96", "64:ff9b:1::/48"))


class FetchError(ValueError):
    """A user-supplied URL or inline image could not be used. ``str()`` is the message for the
    API caller; ``code`` is a short stable identifier (``unsafe_url``, ``too_large``, ...)."""

    def __init__(self, message: str, code: str = "fetch_failed"):
        super().__init__(message)
        self.code = code


class UnsafeURLError(FetchError):
    """The URL is not allowed: wrong scheme, credentials, or a destination that is not public."""

    def __init__(self, message: str):
        super().__init__(message, "unsafe_url")


@dataclass(frozen=True)
class PinnedTarget:
    """A checked URL: connect to ``ip`` but speak to ``host`` (Host header, SNI, certificate)."""

    url: str
    scheme: str
    host: str  # as in the URL, lower case, IPv6 without brackets
    port: int
    ip: str  # the checked address the connection must use
    path: str  # path + query, never empty

    @property
    def host_header(self) -> str:
        name = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return name if self.port == default else f"{name}:{self.port}"


@dataclass
class HTTPResult:
    status: int
    headers: Mapping[str, str]  # lower-case names
    body: bytes
    target: PinnedTarget = field(repr=False)


# ---------------------------------------------------------------- address policy


def _blocked_reason(ip: Address) -> str | None:
    """Why ``ip`` is not a public destination, or None if it is."""
    if ip in _METADATA:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return f"an IPv4-mapped IPv6 address (of {ip.ipv4_mapped})"
        if any(ip in net for net in _TRANSLATED_V6):
            return "an IPv6 address that translates to IPv4 (6to4/Teredo/NAT64)"
    checks = (
        ("is_unspecified", "the unspecified address"),
        ("is_loopback", "a loopback address"),
        ("is_link_local", "a link-local address"),
        ("is_multicast", "a multicast address"),
        ("is_site_local", "a site-local address"),
    )
    for attr, reason in checks:
        if getattr(ip, attr, False):  # is_site_local is IPv6 only
            return reason
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a carrier-grade NAT address (100.64.0.0/10)"
    if ip.is_reserved or (isinstance(ip, ipaddress.IPv4Address) and ip == _BROADCAST):
        return "a reserved address"
    if ip.is_private or any(ip in net for net in _SPECIAL_V4 if ip.version == 4):
        return "a private address"
    if not ip.is_global:
        return "not a public address"
    return None


def _parse_allowlist(allowlist: Iterable[str]) -> tuple[frozenset[str], tuple[Network, ...]]:
    names, nets = set(), []
    for entry in allowlist or ():
        entry = str(entry).strip()
        if not entry:
            continue
        try:
            nets.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            names.add(entry.lower().rstrip("."))
    return frozenset(names), tuple(nets)


def _resolve(host: str, port: int) -> list[Address]:
    """Every address ``host`` resolves to (literal IPs included, in any notation the system
    resolver accepts, e.g. 2130706433 or 0x7f.1 for 127.0.0.1)."""
    try:
        return [ipaddress.ip_address(host)]  # a literal in standard notation needs no lookup
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError, OSError) as exc:
        raise FetchError(f"The host {host!r} could not be resolved ({exc}). Check the URL.", "dns_failed") from None
    addrs = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        addr = ipaddress.ip_address(sockaddr[0].split("%", 1)[0])  # drop an IPv6 zone id
        if addr not in addrs:
            addrs.append(addr)
    if not addrs:
        raise FetchError(f"The host {host!r} has no IPv4 or IPv6 address.", "dns_failed")
    return addrs


def resolve_target(url: str, allowlist: Iterable[str] = ()) -> PinnedTarget:
    """Check ``url`` and resolve it once; the result names the address to connect to.

    Raises ``UnsafeURLError`` when the URL or any address its host resolves to is not allowed,
    ``FetchError`` (code ``dns_failed``) when the host does not resolve."""
    if not isinstance(url, str) or not url:
        raise UnsafeURLError("The URL is empty.")
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeURLError(f"The URL is {len(url)} characters long; the limit is {MAX_URL_LENGTH}.")
    if any(ord(c) < 33 or ord(c) == 127 for c in url):
        raise UnsafeURLError("The URL contains spaces or control characters; percent-encode them.")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(f"The URL is malformed ({exc}).") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        shown = f"{scheme}:" if scheme else "a URL without a scheme"
        raise UnsafeURLError(f"Only http:// and https:// URLs are accepted, not {shown}.")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise UnsafeURLError(
            "URLs with credentials (user:password@) are not accepted; "
            "use a URL that needs no login, or upload the image."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURLError("The URL has no host name.")
    try:  # an internationalised name goes on the wire (DNS, Host, SNI) in its ASCII form
        host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise UnsafeURLError(f"The URL's host name {host!r} is not a valid internationalised name.") from None
    port = port or (443 if scheme == "https" else 80)
    path = _ascii_path(parts.path or "/")
    if parts.query:
        path += "?" + _ascii_path(parts.query)

    names, nets = _parse_allowlist(allowlist)
    addrs = _resolve(host, port)
    if host not in names:
        for addr in addrs:
            if any(addr.version == net.version and addr in net for net in nets):
                continue
            reason = _blocked_reason(addr)
            if reason:
                shown = host if str(addr) == host else f"{host} ({addr})"
                raise UnsafeURLError(
                    f"The URL's host {shown} is {reason}; the server only fetches from and "
                    f"delivers to public internet addresses. Use a public URL, upload the image "
                    f"instead, or ask the operator to allowlist this host."
                )
    return PinnedTarget(url=url, scheme=scheme, host=host, port=port, ip=str(addrs[0]), path=path)


def _ascii_path(text: str) -> str:
    """``text`` with every non-ASCII character percent-encoded as UTF-8 (what browsers send);
    http.client refuses anything else in a request line."""
    return re.sub(r"[^\x00-\x7f]+", lambda m: quote(m.group(0), safe=""), text)


def check_url(url: str, allowlist: Iterable[str] = ()) -> None:
    """Raise ``UnsafeURLError`` unless ``url`` is http(s), has no credentials and every address its
    host resolves to is public or allowlisted (``allowlist``: CIDRs, IPs or exact host names).
    Use it to validate a webhook or imageUrl when a job is submitted; the actual request must
    still go through ``pinned_request``/``fetch_image``, which check again and pin the address."""
    resolve_target(url, allowlist)


# ---------------------------------------------------------------- pinned HTTP


class _PinnedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, target: PinnedTarget, timeout: float):
        super().__init__(target.host, target.port, timeout=timeout)
        self._ip = target.ip
        self.on_socket = None  # told the raw socket as soon as it exists (the whole-request deadline)

    def connect(self):
        # Connect to the checked address only; http.client would resolve the name again.
        family = socket.AF_INET6 if ":" in self._ip else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        if self.on_socket is not None:
            self.on_socket(sock)
        try:
            sock.settimeout(self.timeout)
            sock.connect((self._ip, self.port))  # a literal address: no second lookup
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(_PinnedHTTPConnection):
    def __init__(self, target: PinnedTarget, timeout: float, context: ssl.SSLContext):
        super().__init__(target, timeout)
        self._context = context

    def connect(self):
        super().connect()
        # SNI and certificate verification against the URL's host name, not the pinned IP.
        self.sock = self._context.wrap_socket(self.sock, server_hostname=self.host)


def _read_capped(resp: http.client.HTTPResponse, sock: socket.socket, limit: int, deadline: float, what: str) -> bytes:
    """The body, refused as soon as it is announced or turns out to be larger than ``limit``;
    every read waits at most until ``deadline`` so a trickling server cannot hold us."""
    length = resp.getheader("content-length")
    if length is not None:
        try:
            announced = int(length)
        except ValueError:
            raise FetchError(f"{what} came with an invalid Content-Length {length!r}.", "bad_response") from None
        if announced > limit:
            raise FetchError(f"{what} is {announced} bytes; the limit is {limit} bytes.", "too_large")
    chunks, total = [], 0
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout()
        sock.settimeout(remaining)
        chunk = resp.read1(65536)
        if not chunk:
            return b"".join(chunks)
        total += len(chunk)
        if total > limit:
            raise FetchError(f"{what} is larger than the limit of {limit} bytes.", "too_large")
        chunks.append(chunk)


class _Deadline:
    """Shuts the connection's socket down when the whole request's time is up, however slowly the
    other side trickles its status line, headers, chunk sizes or body: socket timeouts alone only
    bound the wait for each single byte."""

    def __init__(self, seconds: float):
        self.expired = False
        self._sock = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(max(seconds, 0.0), self._expire)
        self._timer.daemon = True

    def watch(self, sock):
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shutdown()

    def _expire(self):
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self):
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def __enter__(self):
        self._timer.start()
        return self

    def __exit__(self, *exc):
        self._timer.cancel()


def pinned_request(
    method: str,
    url: str,
    *,
    allowlist: Iterable[str] = (),
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 10.0,
    max_response_bytes: int = 65536,
    ssl_context: ssl.SSLContext | None = None,
    what: str = "The answer",
) -> HTTPResult:
    """One HTTP request to a checked, pinned address. Redirects are NOT followed (a 3xx comes
    back as the result). ``timeout`` bounds the whole request, connect to last byte.
    Raises ``UnsafeURLError``/``FetchError`` (codes ``timeout``, ``connection``, ``too_large``)."""
    target = resolve_target(url, allowlist)
    deadline = time.monotonic() + timeout
    if target.scheme == "https":
        conn = _PinnedHTTPSConnection(target, timeout, ssl_context or ssl.create_default_context())
    else:
        conn = _PinnedHTTPConnection(target, timeout)
    sent = {"Host": target.host_header, "User-Agent": USER_AGENT, "Accept-Encoding": "identity", "Connection": "close"}
    if body is not None or method in ("POST", "PUT", "PATCH"):
        sent["Content-Length"] = str(len(body or b""))  # putrequest() does not add it, request() would
    sent.update(headers or {})
    watchdog = _Deadline(timeout)
    conn.on_socket = watchdog.watch
    try:
        with watchdog:
            conn.putrequest(method, target.path, skip_host=True, skip_accept_encoding=True)
            for name, value in sent.items():
                conn.putheader(name, value)
            conn.endheaders(body)
            sock = conn.sock  # getresponse() may drop conn.sock while the response still reads from it
            sock.settimeout(max(deadline - time.monotonic(), 0.001))
            resp = conn.getresponse()
            data = _read_capped(resp, sock, max_response_bytes, deadline, what)
            if watchdog.expired:  # the shutdown can look like a clean end of the body
                raise socket.timeout()
            return HTTPResult(resp.status, {k.lower(): v for k, v in resp.getheaders()}, data, target)
    except FetchError:
        if watchdog.expired:
            raise FetchError(f"{target.host_header} did not answer within {timeout:g} s.", "timeout") from None
        raise
    except (socket.timeout, TimeoutError):
        raise FetchError(f"{target.host_header} did not answer within {timeout:g} s.", "timeout") from None
    except ssl.SSLError as exc:
        raise FetchError(f"TLS with {target.host_header} failed: {exc.reason or exc}.", "tls") from None
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.expired:
            raise FetchError(f"{target.host_header} did not answer within {timeout:g} s.", "timeout") from None
        raise FetchError(
            f"Could not talk to {target.host_header}: {exc or type(exc).__name__}.", "connection"
        ) from None
    finally:
        conn.close()


# ---------------------------------------------------------------- images


def sniff_image_format(data: bytes) -> str | None:
    """The allowed image format ``data`` starts with, or None."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:2] == b"BM" and len(data) >= 26:
        return "bmp"
    return None


def _require_image(data: bytes, where: str) -> bytes:
    if not data:
        raise FetchError(f"{where} is empty.", "bad_image")
    if sniff_image_format(data) is None:
        raise FetchError(f"{where} is not a PNG, JPEG, WebP, TIFF or BMP image.", "bad_format")
    return data


def _media_type(value: str | None) -> str:
    return (value or "").split(";", 1)[0].strip().lower()


def fetch_image(
    url: str,
    *,
    max_bytes: int,
    allowlist: Iterable[str] = (),
    timeout: float = 10.0,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """Download an image from a caller's URL, safely. Follows up to ``MAX_REDIRECTS`` redirects,
    each one checked and pinned again; ``timeout`` bounds the whole download. Returns the bytes of
    a PNG/JPEG/WebP/TIFF/BMP file of at most ``max_bytes``. Raises ``FetchError``."""
    deadline = time.monotonic() + timeout
    current = url
    for hop in range(MAX_REDIRECTS + 1):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise FetchError(f"The image at {url} took longer than {timeout:g} s.", "timeout")
        result = pinned_request(
            "GET",
            current,
            allowlist=allowlist,
            timeout=remaining,
            max_response_bytes=max_bytes,
            ssl_context=ssl_context,
            headers={"Accept": "image/png, image/jpeg, image/webp, image/tiff, image/bmp;q=0.9, */*;q=0.1"},
            what="The image",
        )
        if result.status in (301, 302, 303, 307, 308):
            location = result.headers.get("location")
            if not location:
                raise FetchError(f"{current} redirected without a Location.", "bad_response")
            if hop == MAX_REDIRECTS:
                raise FetchError(f"{url} redirected more than {MAX_REDIRECTS} times.", "too_many_redirects")
            current = urljoin(current, location)
            continue
        if result.status != 200:
            raise FetchError(
                f"The image URL answered HTTP {result.status}; it must answer 200 with the image.", "http_status"
            )
        ctype = _media_type(result.headers.get("content-type"))
        if ctype not in IMAGE_CONTENT_TYPES and ctype not in GENERIC_CONTENT_TYPES:
            raise FetchError(
                f"The image URL returned {ctype!r}, not an image (accepted: PNG, JPEG, WebP, TIFF, BMP).",
                "bad_content_type",
            )
        if result.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            raise FetchError(
                "The image URL sent a compressed (Content-Encoding) answer; serve the image file as it is.",
                "bad_response",
            )
        return _require_image(result.body, "The downloaded file")
    raise AssertionError("unreachable")


def decode_data_uri(uri: str, *, max_bytes: int) -> bytes:
    """The image inside ``data:image/<type>;base64,<data>`` (at most ``max_bytes`` once decoded).
    Raises ``FetchError`` with code ``bad_data_uri``, ``too_large``, ``bad_format``."""
    if not isinstance(uri, str) or not uri[:5].lower() == "data:":
        raise FetchError("Not a data URI: it must start with 'data:'.", "bad_data_uri")
    header, sep, payload = uri[5:].partition(",")
    if not sep:
        raise FetchError("The data URI has no ',' between its header and its data.", "bad_data_uri")
    params = [p.strip().lower() for p in header.split(";")]
    media, is_b64 = params[0], "base64" in params[1:]
    if media and media not in IMAGE_CONTENT_TYPES and media not in GENERIC_CONTENT_TYPES:
        raise FetchError(
            f"The data URI holds {media!r}; send image/png, image/jpeg, image/webp, image/tiff or image/bmp.",
            "bad_content_type",
        )
    if is_b64:
        compact = "".join(payload.split())
        # Refuse on the encoded size before decoding anything: base64 grows data by 4/3.
        if len(compact) > 4 * -(-max_bytes // 3):
            raise FetchError(f"The data URI's image is larger than the limit of {max_bytes} bytes.", "too_large")
        try:
            data = binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            try:  # also accept the URL-safe alphabet some encoders use
                data = base64.b64decode(compact.encode("ascii"), altchars=b"-_", validate=True)
            except (binascii.Error, UnicodeEncodeError, ValueError):
                raise FetchError("The data URI's base64 data is malformed.", "bad_data_uri") from None
    else:
        data = unquote_to_bytes(payload)
    if len(data) > max_bytes:
        raise FetchError(f"The data URI's image is {len(data)} bytes; the limit is {max_bytes}.", "too_large")
    return _require_image(data, "The data URI's image")
