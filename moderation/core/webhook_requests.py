"""Webhook signatures and safe delivery to a site's callback URL.

Signatures follow the contract: `X-Moderation-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256
of "<t>.<raw body>">`. A receiver may see several `v1=` entries (key rotation); one match is
enough.

Delivery defends against server-side request forgery, because the callback URL is chosen by a
site, not by the operator:

* Every destination is resolved once and *all* its addresses are checked. The request then
  goes to the checked address itself (the URL's host is replaced by the IP, the `Host` header
  and, for https, the TLS server name (SNI) and certificate check keep the real name), so a
  DNS answer that changes between check and connect (DNS rebinding) cannot redirect it.
* Redirects are never followed by `requests`; `deliver` follows at most `max_redirects` 307 or
  308 hops itself (they keep the POST and its body) and checks each hop like the first. Other
  redirect codes (301, 302, 303 would turn the POST into a GET) and https->http downgrades are
  refused as non-retryable failures.
* Proxies from the environment are ignored: the address checks only mean something when the
  service connects directly.
* `allow_private=True` (MODERATION_ALLOW_PRIVATE_CALLBACKS) admits loopback, RFC 1918,
  shared (100.64.0.0/10), unique-local (fc00::/7), site-local (fec0::/10, deprecated but
  still routed) and other non-global unicast addresses.
  Link-local (169.254.0.0/16, fe80::/10, which hold cloud metadata services), known metadata
  addresses, unspecified (0.0.0.0/8, ::), multicast and reserved addresses stay refused.

Remaining gaps: only the first resolved address is tried; a server that trickles its response
one byte per `timeout` can keep a delivery open longer than `timeout` (the worker's job
timeout bounds it).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import ipaddress
import logging
import re
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Moderation-Signature"
EVENT_HEADER = "X-Moderation-Event"
USER_AGENT = "moderation-webhooks/1"

#: Bytes of a response body read at most (and never logged).
RESPONSE_READ_LIMIT = 4096
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
BODY_KEEPING_REDIRECTS = frozenset({307, 308})
RETRYABLE_4XX = frozenset({408, 429})

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_TIMESTAMP = re.compile(r"[0-9]{1,15}")
_HEX_DIGEST = re.compile(r"[0-9a-fA-F]{64}")

_METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(address)
    for address in ("169.254.169.254", "fd00:ec2::254", "100.100.100.200")
)
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_SHARED = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


# --- signatures ------------------------------------------------------------------------------


def _mac(secret: str, timestamp: int, body: bytes) -> str:
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The signature header value for `body`, stamped with `timestamp` (default: now)."""
    if not secret:
        raise ValueError("a webhook secret is required")
    stamp = int(time.time()) if timestamp is None else int(timestamp)
    return f"t={stamp},v1={_mac(secret, stamp, body)}"


def verify(
    secret: str, header: str, body: bytes, tolerance: int = 300, now: float | None = None
) -> bool:
    """True when `header` holds a `v1=` signature of `body` by `secret`, stamped within
    `tolerance` seconds of `now`. Malformed headers are simply False."""
    if not secret or not isinstance(header, str) or not isinstance(body, bytes | bytearray):
        return False
    timestamps: list[str] = []
    candidates: list[str] = []
    for item in header.split(","):
        key, sep, value = item.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value.strip())
        elif key == "v1" and _HEX_DIGEST.fullmatch(value.strip()):
            candidates.append(value.strip().lower())
    if len(timestamps) != 1 or not _TIMESTAMP.fullmatch(timestamps[0]) or not candidates:
        return False
    stamp = int(timestamps[0])
    current = time.time() if now is None else now
    if abs(current - stamp) > tolerance:
        return False
    expected = _mac(secret, stamp, bytes(body))
    matches = [hmac.compare_digest(expected, candidate) for candidate in candidates]
    return any(matches)


# --- destinations ----------------------------------------------------------------------------


class UnsafeDestinationError(Exception):
    """The URL must not be called: bad scheme, credentials, or a forbidden address."""


class DestinationLookupError(UnsafeDestinationError):
    """The host name does not resolve (may be temporary, so deliveries retry it)."""


@dataclass(frozen=True)
class _Target:
    """One checked hop: the URL with the host replaced by a checked IP, and the Host header."""

    url: str
    host_header: str
    host: str


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.sixtofour is not None:
        return address.sixtofour
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _classify(address: IPAddress) -> tuple[str, bool] | None:
    """None for a public address, else (kind, whether allow_private admits it)."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return _classify(address.ipv4_mapped)
        embedded = _embedded_ipv4(address)
        found = _classify(embedded) if embedded is not None else None
        if found is not None:
            return found
    if address in _METADATA_ADDRESSES:
        return "cloud metadata", False
    if address.is_unspecified or (address.version == 4 and address in _THIS_NETWORK):
        return "unspecified", False
    if address.is_link_local:
        return "link-local", False
    if address.is_multicast:
        return "multicast", False
    if address.is_loopback:
        return "loopback", True
    if isinstance(address, ipaddress.IPv6Address) and address.is_site_local:  # fec0::/10
        return "site-local", True
    if address.is_reserved:
        return "reserved", False
    if address.version == 4 and address in _SHARED:
        return "shared", True
    if address.is_private:
        return "private", True
    if not address.is_global:
        return "non-public", True
    return None


def _ascii_host(host: str) -> str:
    if host.isascii():
        return host
    try:
        return host.encode("idna").decode("ascii")
    except UnicodeError:
        raise UnsafeDestinationError(f"invalid host name {host!r}") from None


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _resolve(host: str, port: int) -> list[IPAddress]:
    """All addresses of `host` (an IP literal is its own single address)."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as error:
        raise DestinationLookupError(f"cannot resolve host {host!r}: {error}") from None
    addresses: list[IPAddress] = []
    for family, _, _, _, sockaddr in infos:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = ipaddress.ip_address(sockaddr[0])
            if address not in addresses:
                addresses.append(address)
    if not addresses:
        raise DestinationLookupError(f"cannot resolve host {host!r}: no IP addresses")
    return addresses


def _checked_target(url: str, allow_private: bool) -> _Target:
    """Validate `url`, resolve it once, check every address; the hop to send to."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UnsafeDestinationError(f"invalid URL: {error}") from None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise UnsafeDestinationError(f"scheme must be http or https, not {parts.scheme!r}")
    if parts.username is not None or parts.password is not None:
        raise UnsafeDestinationError("credentials in the URL are not allowed")
    if not parts.hostname:
        raise UnsafeDestinationError("the URL has no host")
    host = _ascii_host(parts.hostname)
    port = port or (443 if scheme == "https" else 80)
    addresses = _resolve(host, port)
    literal = _is_ip_literal(host)
    for address in addresses:
        found = _classify(address)
        if found is not None and not (allow_private and found[1]):
            kind = found[0]
            if literal:
                raise UnsafeDestinationError(f"{host} is a {kind} address")
            raise UnsafeDestinationError(f"{host} resolves to a {kind} address {address}")
    pinned = addresses[0]
    ip_text = f"[{pinned}]" if pinned.version == 6 else str(pinned)
    rest = urlunsplit(("", "", parts.path or "/", parts.query, ""))
    netloc_host = f"[{host}]" if ":" in host else host
    host_header = netloc_host if parts.port is None else f"{netloc_host}:{parts.port}"
    return _Target(url=f"{scheme}://{ip_text}:{port}{rest}", host_header=host_header, host=host)


def check_destination(url: str, allow_private: bool) -> None:
    """Raise UnsafeDestinationError unless `url` may receive webhooks (see the module doc)."""
    _checked_target(url, allow_private)


# --- delivery --------------------------------------------------------------------------------


class PinnedAdapter(HTTPAdapter):
    """For https requests sent to an IP, use the `Host` header's name for SNI and for the
    certificate check (the standard library verifies it against `server_hostname`)."""

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: Any, cert: Any = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(
            request, verify, cert
        )
        host_header = request.headers.get("Host")
        if host_params.get("scheme") == "https" and isinstance(host_header, str) and host_header:
            name = urlsplit("//" + host_header).hostname
            if name:
                pool_kwargs["server_hostname"] = name
        return host_params, pool_kwargs


def webhook_session() -> requests.Session:
    """A Session for `deliver` (reuse it across deliveries to keep connections open)."""
    session = requests.Session()
    session.trust_env = False
    adapter = PinnedAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@dataclass(frozen=True)
class DeliveryResult:
    """What happened to one delivery (with its redirects)."""

    ok: bool  # a 2xx answer
    status: int | None  # the status that decided the outcome; None when no answer did
    error: str | None  # short reason, e.g. "timeout", "HTTP 500", "unsafe destination: ..."
    retryable: bool  # timeouts, connection errors, lookups, 5xx, 408 and 429
    duration_ms: float


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    retryable: bool = False


def _caused_by_refusal(error: BaseException) -> bool:
    """Whether a ConnectionRefusedError is somewhere in the exception's chain."""
    seen: set[int] = set()
    pending: list[Any] = [error]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return True
        pending.extend([current.__cause__, current.__context__, getattr(current, "reason", None)])
        pending.extend(current.args)
    return False


def _drain(response: requests.Response) -> None:
    """Read a few KB of the body (undecoded) so small answers can free the connection."""
    remaining = RESPONSE_READ_LIMIT
    # The status is already known; a body that fails to arrive does not change the outcome.
    with contextlib.suppress(OSError, urllib3.exceptions.HTTPError):
        while remaining > 0:
            chunk = response.raw.read(min(1024, remaining), decode_content=False)
            if not chunk:
                break
            remaining -= len(chunk)


def _ensure_pinned(session: requests.Session, url: str) -> None:
    if not isinstance(session.get_adapter(url), PinnedAdapter):
        session.mount(urlsplit(url).scheme + "://", PinnedAdapter())


def _send(
    session: requests.Session,
    target: _Target,
    body: bytes,
    secret: str,
    event: str,
    timeout: float,
) -> requests.Response:
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "Accept-Encoding": "identity",
        EVENT_HEADER: event,
        SIGNATURE_HEADER: sign(secret, body),
    }
    prepared = requests.Request("POST", target.url, data=body, headers=headers).prepare()
    _ensure_pinned(session, target.url)
    return session.send(
        prepared,
        allow_redirects=False,
        stream=True,
        timeout=(timeout, timeout),
        verify=session.verify,
        cert=session.cert,
        proxies={},
    )


def _deliver(
    session: requests.Session,
    url: str,
    body: bytes,
    secret: str,
    event: str,
    timeout: float,
    allow_private: bool,
    max_redirects: int,
) -> _Outcome:
    deadline = time.monotonic() + timeout
    max_redirects = max(0, max_redirects)
    current = url
    for hop in range(max_redirects + 1):
        try:
            target = _checked_target(current, allow_private)
        except DestinationLookupError:
            return _Outcome(False, error="cannot resolve host", retryable=True)
        except UnsafeDestinationError as error:
            return _Outcome(False, error=f"unsafe destination: {error}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return _Outcome(False, error="timeout", retryable=True)
        log.debug("webhook hop %d to host %s", hop, target.host)
        try:
            response = _send(session, target, body, secret, event, remaining)
        except requests.Timeout:
            return _Outcome(False, error="timeout", retryable=True)
        except requests.exceptions.SSLError:
            return _Outcome(False, error="TLS error", retryable=True)
        except requests.ConnectionError as error:
            reason = "connection refused" if _caused_by_refusal(error) else "connection error"
            return _Outcome(False, error=reason, retryable=True)
        except requests.RequestException as error:
            return _Outcome(False, error=f"request failed: {type(error).__name__}")
        with response:
            _drain(response)
            status = response.status_code
            location = response.headers.get("Location")
        if 200 <= status < 300:
            return _Outcome(True, status=status)
        if status not in REDIRECT_STATUSES:
            retryable = status >= 500 or status in RETRYABLE_4XX
            return _Outcome(False, status=status, error=f"HTTP {status}", retryable=retryable)
        if status not in BODY_KEEPING_REDIRECTS:
            reason = f"redirect {status} not followed (only 307 and 308 keep the POST)"
            return _Outcome(False, status=status, error=reason)
        if not location:
            return _Outcome(False, status=status, error=f"redirect {status} without Location")
        if hop == max_redirects:
            return _Outcome(False, status=status, error="too many redirects")
        following = urljoin(current, location)
        if urlsplit(current).scheme == "https" and urlsplit(following).scheme == "http":
            return _Outcome(False, status=status, error="redirect from https to http refused")
        current = following
    raise AssertionError("unreachable")  # pragma: no cover


def deliver(
    url: str,
    body: bytes,
    secret: str,
    *,
    event: str = "comment.decided",
    timeout: float = 10.0,
    allow_private: bool = False,
    max_redirects: int = 3,
    session: requests.Session | None = None,
) -> DeliveryResult:
    """POST the serialised JSON `body` to `url`, signed with `secret`; never raises for
    network or HTTP failures. `timeout` bounds connecting and each read, and the whole
    delivery with its redirects. A plain `session` gets a PinnedAdapter mounted on first use;
    `webhook_session()` makes a suitable one."""
    started = time.monotonic()
    http = session if session is not None else webhook_session()
    try:
        outcome = _deliver(http, url, body, secret, event, timeout, allow_private, max_redirects)
    finally:
        if session is None:
            http.close()
    return DeliveryResult(
        ok=outcome.ok,
        status=outcome.status,
        error=outcome.error,
        retryable=outcome.retryable,
        duration_ms=(time.monotonic() - started) * 1000,
    )
