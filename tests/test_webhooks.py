"""Webhook signatures, destination checks and delivery against a real loopback receiver."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import shutil
import socket
import ssl
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from moderation.core import webhook_requests
from moderation.core.webhook_requests import (
    EVENT_HEADER,
    SIGNATURE_HEADER,
    DestinationLookupError,
    UnsafeDestinationError,
    check_destination,
    deliver,
    sign,
    verify,
)
from tests.support.receiver import Hang, Reply, redirect, running_receiver

SECRET = "whsec_test-secret"
BODY = b'{"event":"comment.decided","site":"news","comment":{"id":"c-1","status":"approved"}}'
T0 = 1_764_075_600


# --- signatures ------------------------------------------------------------------------------


def test_signature_format_matches_the_contract():
    expected = hmac.new(SECRET.encode(), f"{T0}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, BODY, T0) == f"t={T0},v1={expected}"


def test_sign_uses_the_current_time_by_default():
    header = sign(SECRET, BODY)
    assert re.fullmatch(r"t=\d+,v1=[0-9a-f]{64}", header)
    assert verify(SECRET, header, BODY)


def test_round_trip():
    assert verify(SECRET, sign(SECRET, BODY, T0), BODY, now=T0 + 1)


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b + b" "), id="body"),
        pytest.param(lambda h, b: (h.replace(f"t={T0}", f"t={T0 + 1}"), b), id="timestamp"),
        pytest.param(lambda h, b: (sign("whsec_other", b, T0), b), id="secret"),
        pytest.param(lambda h, b: (h[:-1] + ("0" if h[-1] != "0" else "1"), b), id="digest"),
    ],
)
def test_tampering_fails(tamper: Callable[[str, bytes], tuple[str, bytes]]):
    header, body = tamper(sign(SECRET, BODY, T0), BODY)
    assert not verify(SECRET, header, body, now=T0)


def test_tolerance_window_both_ways():
    header = sign(SECRET, BODY, T0)
    assert verify(SECRET, header, BODY, now=T0 + 300)
    assert verify(SECRET, header, BODY, now=T0 - 300)
    assert not verify(SECRET, header, BODY, now=T0 + 301)
    assert not verify(SECRET, header, BODY, now=T0 - 301)  # from the future
    assert verify(SECRET, header, BODY, tolerance=3600, now=T0 + 3000)
    assert not verify(SECRET, header, BODY, tolerance=10, now=T0 + 11)


def test_several_v1_entries_for_key_rotation():
    old = sign("whsec_old", BODY, T0).split(",")[1]
    new = sign("whsec_new", BODY, T0).split(",")[1]
    header = f"t={T0},{old},{new}"
    assert verify("whsec_old", header, BODY, now=T0)
    assert verify("whsec_new", header, BODY, now=T0)
    assert not verify("whsec_third", header, BODY, now=T0)
    # spaces and unknown schemes are tolerated
    assert verify("whsec_new", f"t={T0}, v0=abc, {new}", BODY, now=T0)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "garbage",
        "v1=" + "a" * 64,
        f"t={T0}",
        f"t=abc,v1={'a' * 64}",
        f"t=-5,v1={'a' * 64}",
        f"t={T0},t={T0},v1={'a' * 64}",
        f"t={T0},v1=not-hex",
        f"t={T0},v1=ééé",
        f"t=١٢٣,v1={'a' * 64}",  # non-ASCII digits
    ],
)
def test_malformed_headers_are_false_not_errors(header: str):
    assert verify(SECRET, header, BODY, now=T0) is False


def test_non_string_inputs_and_empty_secret():
    good = sign(SECRET, BODY, T0)
    assert verify(SECRET, None, BODY, now=T0) is False  # type: ignore[arg-type]
    assert verify(SECRET, good, "text", now=T0) is False  # type: ignore[arg-type]
    assert verify("", good, BODY, now=T0) is False
    with pytest.raises(ValueError):
        sign("", BODY)


# --- destinations ----------------------------------------------------------------------------


@dataclass
class FakeDNS:
    """Answers for made-up names; every other name goes to the real resolver."""

    answers: dict[str, list[list[str] | Exception]]
    lookups: list[str]
    real: Callable[..., list]

    def __call__(self, host, port, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        queue = self.answers[name]
        answer = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(answer, Exception):
            raise answer
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port or 0, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port or 0))
            for a in answer
        ]


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> FakeDNS:
    dns = FakeDNS({}, [], socket.getaddrinfo)
    monkeypatch.setattr(socket, "getaddrinfo", dns)
    return dns


PRIVATE_URLS = [
    ("http://127.0.0.1/hook", "127.0.0.1 is a loopback address"),
    ("http://localhost:8080/hook", "localhost resolves to a loopback address"),
    ("http://[::1]/", "::1 is a loopback address"),
    ("http://10.0.0.5/", "10.0.0.5 is a private address"),
    ("http://172.16.3.4/", "private address"),
    ("http://192.168.1.1/", "private address"),
    ("http://100.64.0.1/", "shared address"),
    ("http://[::ffff:127.0.0.1]/", "loopback address"),
    ("http://[::ffff:10.0.0.1]/", "private address"),
    ("http://[fc00::1]/", "private address"),
    ("http://2130706433/", "resolves to a loopback address 127.0.0.1"),  # decimal 127.0.0.1
    ("http://[2002:7f00:1::]/", "loopback address"),  # 6to4 around 127.0.0.1
]
ALWAYS_REFUSED_URLS = [
    ("http://169.254.169.254/latest/meta-data/", "cloud metadata address"),
    ("http://169.254.10.1/", "link-local address"),
    ("http://[fe80::1]/", "link-local address"),
    ("http://[fd00:ec2::254]/", "cloud metadata address"),
    ("http://100.100.100.200/", "cloud metadata address"),
    ("http://0.0.0.0/", "unspecified address"),
    ("http://0.1.2.3/", "unspecified address"),
    ("http://[::]/", "unspecified address"),
    ("http://224.0.0.1/", "multicast address"),
    ("http://240.0.0.1/", "reserved address"),
    ("http://255.255.255.255/", "reserved address"),
]
MALFORMED_URLS = [
    ("ftp://example.com/hook", "scheme must be http or https"),
    ("javascript:alert(1)", "scheme must be http or https"),
    ("file:///etc/passwd", "scheme must be http or https"),
    ("http://user:pass@example.com/", "credentials"),
    ("https://token@example.com/", "credentials"),
    ("http:///hook", "no host"),
    ("http://example.com:99999/", "invalid URL"),
]


@pytest.mark.parametrize(("url", "reason"), PRIVATE_URLS + ALWAYS_REFUSED_URLS + MALFORMED_URLS)
def test_refused_by_default(url: str, reason: str):
    with pytest.raises(UnsafeDestinationError, match=re.escape(reason)):
        check_destination(url, allow_private=False)


@pytest.mark.parametrize(("url", "reason"), PRIVATE_URLS)
def test_private_addresses_allowed_on_request(url: str, reason: str):
    check_destination(url, allow_private=True)


@pytest.mark.parametrize(("url", "reason"), ALWAYS_REFUSED_URLS + MALFORMED_URLS)
def test_link_local_metadata_and_malformed_refused_even_with_allow_private(url: str, reason: str):
    with pytest.raises(UnsafeDestinationError, match=re.escape(reason)):
        check_destination(url, allow_private=True)


@pytest.mark.parametrize(
    "url", ["https://93.184.215.14/hook", "http://[2606:4700:4700::1111]:8443/x?y=1"]
)
def test_public_literals_allowed(url: str):
    check_destination(url, allow_private=False)


def test_every_resolved_address_is_checked(fake_dns: FakeDNS):
    fake_dns.answers["public.test"] = [["93.184.215.14"]]
    fake_dns.answers["mixed.test"] = [["93.184.215.14", "10.1.2.3"]]
    check_destination("https://public.test/hook", allow_private=False)
    with pytest.raises(UnsafeDestinationError, match=r"mixed\.test resolves to a private address"):
        check_destination("https://mixed.test/hook", allow_private=False)


def test_unresolvable_host_is_a_lookup_error(fake_dns: FakeDNS):
    fake_dns.answers["nowhere.test"] = [socket.gaierror(socket.EAI_NONAME, "not known")]
    with pytest.raises(DestinationLookupError, match=r"cannot resolve host 'nowhere\.test'"):
        check_destination("https://nowhere.test/", allow_private=True)


# --- delivery --------------------------------------------------------------------------------


def deliver_local(url: str, **kwargs) -> webhook_requests.DeliveryResult:
    kwargs.setdefault("allow_private", True)
    kwargs.setdefault("timeout", 5.0)
    return deliver(url, BODY, SECRET, **kwargs)


def test_delivery_is_signed_and_verifiable():
    with running_receiver() as rx:
        result = deliver_local(rx.url + "/hooks/moderation?site=news")
        [received] = rx.wait_for_requests(1)

    assert result.ok and result.status == 200 and result.error is None
    assert not result.retryable and result.duration_ms > 0
    assert received.method == "POST"
    assert received.path == "/hooks/moderation?site=news"
    assert received.body == BODY
    assert received.header("Content-Type") == "application/json"
    assert received.header("User-Agent") == "moderation-webhooks/1"
    assert received.header(EVENT_HEADER) == "comment.decided"
    assert received.header("Host") == f"127.0.0.1:{rx.port}"
    assert verify(SECRET, received.header(SIGNATURE_HEADER), received.body)
    assert not verify("whsec_other", received.header(SIGNATURE_HEADER), received.body)


def test_event_header_follows_the_event():
    with running_receiver() as rx:
        assert deliver_local(rx.url, event="comment.deleted").ok
        assert rx.wait_for_requests(1)[0].header(EVENT_HEADER) == "comment.deleted"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [
        *[(status, True) for status in (500, 502, 503, 429, 408)],
        *[(status, False) for status in (400, 401, 404, 410, 304)],
    ],
)
def test_failed_statuses(status: int, retryable: bool):
    with running_receiver([status]) as rx:
        result = deliver_local(rx.url)
    assert (result.ok, result.status, result.error) == (False, status, f"HTTP {status}")
    assert result.retryable is retryable


def test_any_2xx_is_delivered_and_the_receiver_answers_in_order():
    with running_receiver([500, 500, 204], default=404) as rx:
        results = [deliver_local(rx.url) for _ in range(4)]
    assert [r.status for r in results] == [500, 500, 204, 404]
    assert [r.ok for r in results] == [False, False, True, False]


def test_hanging_receiver_times_out_within_the_bound():
    with running_receiver([Hang(30)]) as rx:
        result = deliver_local(rx.url, timeout=0.5)
        rx.wait_for_requests(1)
    assert (result.ok, result.status, result.error, result.retryable) == (
        False,
        None,
        "timeout",
        True,
    )
    assert 400 <= result.duration_ms < 3000


def test_large_response_bodies_are_not_read():
    with running_receiver([Reply(200, body=b"x" * 5_000_000)]) as rx:
        result = deliver_local(rx.url)
    assert result.ok


def test_connection_refused_is_retryable():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = deliver_local(f"http://127.0.0.1:{port}/hook")
    assert (result.ok, result.status, result.error, result.retryable) == (
        False,
        None,
        "connection refused",
        True,
    )


def test_loopback_refused_without_allow_private_and_nothing_is_sent():
    with running_receiver() as rx:
        result = deliver_local(rx.url, allow_private=False)
        assert rx.requests == []
    assert not result.ok and not result.retryable and result.status is None
    assert result.error == "unsafe destination: 127.0.0.1 is a loopback address"


def test_unresolvable_host_is_retryable(fake_dns: FakeDNS):
    fake_dns.answers["gone.test"] = [socket.gaierror(socket.EAI_AGAIN, "try again")]
    result = deliver_local("http://gone.test/hook")
    assert (result.error, result.retryable) == ("cannot resolve host", True)


def test_environment_proxies_are_ignored(monkeypatch: pytest.MonkeyPatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
        monkeypatch.setenv(name, "http://127.0.0.1:9")
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with running_receiver() as rx:
        assert deliver_local(rx.url).ok
        assert rx.wait_for_requests(1)


def test_plain_and_reused_sessions_work():
    with running_receiver() as rx:
        plain = requests.Session()
        assert deliver_local(rx.url, session=plain).ok
        assert isinstance(plain.get_adapter(rx.url), webhook_requests.PinnedAdapter)
        with webhook_requests.webhook_session() as session:
            assert deliver_local(rx.url, session=session).ok
            assert deliver_local(rx.url, session=session).ok
        assert len(rx.wait_for_requests(3)) == 3


def test_secret_signature_and_body_are_not_logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    with running_receiver([redirect("/next"), 500]) as rx:
        deliver_local(rx.url)
        signatures = [r.header(SIGNATURE_HEADER) for r in rx.wait_for_requests(2)]
    for secret_thing in [SECRET, BODY.decode(), "comment.decided", *signatures]:
        assert secret_thing not in caplog.text


# --- redirects -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [307, 308])
def test_307_and_308_keep_the_signed_post(status: int):
    with (
        running_receiver() as target,
        running_receiver([redirect(target.url + "/b", status)]) as rx,
    ):
        result = deliver_local(rx.url + "/a")
        [moved] = target.wait_for_requests(1)
    assert result.ok and result.status == 200
    assert (moved.method, moved.path, moved.body) == ("POST", "/b", BODY)
    assert verify(SECRET, moved.header(SIGNATURE_HEADER), moved.body)
    assert len(rx.requests) == 1


def test_relative_location_is_resolved_against_the_hop():
    with running_receiver([redirect("next?x=1")]) as rx:
        assert deliver_local(rx.url + "/hooks/first").ok
        assert [r.path for r in rx.wait_for_requests(2)] == ["/hooks/first", "/hooks/next?x=1"]


@pytest.mark.parametrize("status", [301, 302, 303])
def test_method_changing_redirects_are_not_followed(status: int):
    with running_receiver([redirect("/elsewhere", status)]) as rx:
        result = deliver_local(rx.url)
        assert len(rx.requests) == 1
    assert (result.ok, result.status, result.retryable) == (False, status, False)
    assert result.error == f"redirect {status} not followed (only 307 and 308 keep the POST)"


@pytest.mark.parametrize(
    ("location", "reason"),
    [
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a cloud metadata"),
        ("http://[fe80::1]/", "link-local"),
        ("http://0.0.0.0/", "unspecified"),
        ("ftp://127.0.0.1/", "scheme must be http or https"),
        ("http://user:pw@127.0.0.1/", "credentials"),
    ],
)
def test_every_redirect_hop_is_checked(location: str, reason: str):
    """Even with private callbacks allowed, a hop to metadata addresses is refused."""
    with running_receiver([redirect(location)]) as rx:
        result = deliver_local(rx.url)
        assert len(rx.requests) == 1
    assert not result.ok and not result.retryable
    assert result.error.startswith("unsafe destination: ") and reason in result.error


def test_redirect_limits():
    with running_receiver(default=redirect("/again")) as rx:
        result = deliver_local(rx.url, max_redirects=2)
        assert len(rx.requests) == 3
    assert (result.ok, result.status, result.error, result.retryable) == (
        False,
        307,
        "too many redirects",
        False,
    )
    with running_receiver([redirect("/again")]) as rx:
        assert deliver_local(rx.url, max_redirects=0).error == "too many redirects"
    with running_receiver([Reply(307)]) as rx:
        assert deliver_local(rx.url).error == "redirect 307 without Location"


# --- DNS rebinding and TLS -------------------------------------------------------------------


def test_connects_to_the_checked_address_not_a_second_lookup(fake_dns: FakeDNS):
    """The first answer is checked; a second lookup would fail, so the request must go to the
    first answer's address, with the original Host header."""
    fake_dns.answers["rebind.test"] = [["127.0.0.1"], socket.gaierror(socket.EAI_NONAME, "no")]
    with running_receiver() as rx:
        result = deliver_local(f"http://rebind.test:{rx.port}/hook")
        [received] = rx.wait_for_requests(1)
    assert result.ok
    assert received.header("Host") == f"rebind.test:{rx.port}"
    assert fake_dns.lookups == ["rebind.test"]


@dataclass(frozen=True)
class Certificates:
    ca: Path
    chain: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.chain, self.key)
        return context


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Certificates]:
    """A throwaway CA and a certificate for hooks.test, made with the openssl command."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("the openssl command is not installed")
    d = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def run(*args: str) -> None:
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True, timeout=60)

    run("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=CA")
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=hooks.test")
    (d / "ext.cnf").write_text("subjectAltName=DNS:hooks.test\n")
    run(
        "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", "ext.cnf",
    )  # fmt: skip
    yield Certificates(d / "ca.pem", d / "leaf.pem", d / "leaf.key")


@pytest.fixture
def trusting_session(certificates: Certificates) -> Iterator[requests.Session]:
    with webhook_requests.webhook_session() as session:
        session.verify = str(certificates.ca)
        yield session


def test_https_is_pinned_with_the_right_server_name(
    fake_dns: FakeDNS, certificates: Certificates, trusting_session: requests.Session
):
    fake_dns.answers["hooks.test"] = [["127.0.0.1"], socket.gaierror(socket.EAI_NONAME, "no")]
    with running_receiver(tls=certificates.server_context()) as rx:
        result = deliver_local(f"https://hooks.test:{rx.port}/hook", session=trusting_session)
        [received] = rx.wait_for_requests(1)
    assert result.ok, result.error
    assert received.header("Host") == f"hooks.test:{rx.port}"
    assert verify(SECRET, received.header(SIGNATURE_HEADER), received.body)
    assert fake_dns.lookups == ["hooks.test"]


def test_https_certificate_must_match_the_url_host(
    fake_dns: FakeDNS, certificates: Certificates, trusting_session: requests.Session
):
    fake_dns.answers["other.test"] = [["127.0.0.1"]]
    with running_receiver(tls=certificates.server_context()) as rx:
        result = deliver_local(f"https://other.test:{rx.port}/hook", session=trusting_session)
        assert rx.requests == []
        # and an untrusted certificate fails with the default trust store
        untrusted = deliver_local(f"https://other.test:{rx.port}/hook")
    assert (result.ok, result.error, result.retryable) == (False, "TLS error", True)
    assert untrusted.error == "TLS error"


def test_https_to_http_downgrade_is_refused(
    fake_dns: FakeDNS, certificates: Certificates, trusting_session: requests.Session
):
    fake_dns.answers["hooks.test"] = [["127.0.0.1"]]
    with (
        running_receiver() as plain,
        running_receiver([redirect(plain.url + "/x")], tls=certificates.server_context()) as rx,
    ):
        result = deliver_local(f"https://hooks.test:{rx.port}/hook", session=trusting_session)
        assert plain.requests == []
    assert (result.ok, result.status, result.retryable) == (False, 307, False)
    assert result.error == "redirect from https to http refused"
