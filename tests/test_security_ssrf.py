"""Webhook SSRF: the address forms, DNS answers and redirects that test_webhooks.py leaves out.

Every check happens on the resolved address (the connection is then pinned to it), so
numeric spellings the resolver understands (decimal, octal, hex, short forms), IDNA digits
and IPv6 wrappings of IPv4 addresses all land on the same rules.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from moderation.core import webhook_requests
from moderation.core.webhook_requests import UnsafeDestinationError, check_destination, deliver
from tests.support.receiver import redirect, running_receiver

# (URL, the kind of address it reaches): refused by default, admitted with allow_private.
PRIVATE_FORMS = [
    ("http://0177.0.0.1/", "loopback"),  # octal
    ("http://0x7f.0.0.1/", "loopback"),  # hex
    ("http://0x7f000001/", "loopback"),
    ("http://017700000001/", "loopback"),
    ("http://127.1/", "loopback"),  # short forms
    ("http://127.0.1/", "loopback"),
    ("http://127.000.000.001/", "loopback"),  # zero-padded
    ("http://10.1/", "private"),
    ("http://3232235777/", "private"),  # 192.168.1.1
    ("http://①②⑦.0.0.1/", "loopback"),  # IDNA maps these digits to 127
    ("http://127。0。0。1/", "loopback"),  # ideographic full stops
    ("HTTP://127.0.0.1/", "loopback"),
    ("http://[0:0:0:0:0:0:0:1]/", "loopback"),
    ("http://[::ffff:7f00:1]/", "loopback"),  # IPv4-mapped, hex
    ("http://[0:0:0:0:0:ffff:127.0.0.1]/", "loopback"),
    ("http://[64:ff9b::7f00:1]/", "loopback"),  # NAT64
    ("http://[fdff::1]/", "private"),  # top of fc00::/7
    ("http://[fec0::1]/", "site-local"),  # fec0::/10: deprecated, still routed privately
]
# Refused even with allow_private: metadata, link-local, unspecified, reserved, multicast.
ALWAYS_REFUSED_FORMS = [
    ("http://0/", "unspecified"),
    ("http://0x0/", "unspecified"),
    ("http://0xa9fea9fe/", "cloud metadata"),  # 169.254.169.254
    ("http://0251.0376.0251.0376/", "cloud metadata"),
    ("http://2852039166/", "cloud metadata"),
    ("http://[::ffff:169.254.169.254]/", "cloud metadata"),
    ("http://[::ffff:a9fe:a9fe]/", "cloud metadata"),
    ("http://[64:ff9b::a9fe:a9fe]/", "cloud metadata"),
    ("http://[2002:a9fe:a9fe::]/", "cloud metadata"),  # 6to4
    ("http://[::ffff:0.0.0.0]/", "unspecified"),
    ("http://[fe80::1%25eth0]/", "link-local"),  # with a zone id
    ("http://[febf::1]/", "link-local"),  # top of fe80::/10
    ("http://[::127.0.0.1]/", "reserved"),  # IPv4-compatible (deprecated)
    ("http://[ff02::1]/", "multicast"),
]


@pytest.mark.parametrize(("url", "kind"), PRIVATE_FORMS + ALWAYS_REFUSED_FORMS)
def test_every_spelling_is_refused_by_default(url: str, kind: str) -> None:
    with pytest.raises(UnsafeDestinationError, match=f"is a {kind} address|a {kind} address "):
        check_destination(url, allow_private=False)


@pytest.mark.parametrize(("url", "kind"), PRIVATE_FORMS)
def test_private_spellings_are_admitted_on_request(url: str, kind: str) -> None:
    check_destination(url, allow_private=True)


@pytest.mark.parametrize(("url", "kind"), ALWAYS_REFUSED_FORMS)
def test_metadata_and_link_local_spellings_stay_refused(url: str, kind: str) -> None:
    with pytest.raises(UnsafeDestinationError, match=kind):
        check_destination(url, allow_private=True)


# --- DNS -------------------------------------------------------------------------------------


class Resolver:
    """Made-up names with fixed answers, lookups counted; other names go to the real one."""

    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.lookups: list[str] = []
        self.real = socket.getaddrinfo

    def __call__(self, host: str | bytes, port: object, *args: object, **kwargs: object):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in self.answers:
            return self.real(host, port, *args, **kwargs)
        self.lookups.append(name)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, 0, 0, 0))
            if ":" in a
            else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, 0))
            for a in self.answers[name]
        ]


@pytest.fixture
def dns(monkeypatch: pytest.MonkeyPatch) -> Resolver:
    resolver = Resolver(
        {
            "internal.test": ["10.0.0.7"],
            "office.test": ["192.168.1.1"],
            "ula.test": ["fd12:3456::1"],
            "sitelocal.test": ["fec0::1"],
            "mapped.test": ["::ffff:127.0.0.1"],
            "linklocal.test": ["fe80::1"],
            "metadata.test": ["169.254.169.254"],
            "zero.test": ["0.0.0.0"],
            "public.test": ["93.184.215.14"],
            "half.test": ["93.184.215.14", "fd00::1"],  # one bad answer is enough
        }
    )
    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    return resolver


@pytest.mark.parametrize(
    ("host", "kind", "always"),
    [
        ("internal.test", "private", False),
        ("office.test", "private", False),
        ("ula.test", "private", False),
        ("sitelocal.test", "site-local", False),
        ("mapped.test", "loopback", False),
        ("half.test", "private", False),
        ("linklocal.test", "link-local", True),
        ("metadata.test", "cloud metadata", True),
        ("zero.test", "unspecified", True),
    ],
)
def test_names_are_checked_by_what_they_resolve_to(
    dns: Resolver, host: str, kind: str, always: bool
) -> None:
    message = re.escape(f"{host} resolves to a {kind} address")
    with pytest.raises(UnsafeDestinationError, match=message):
        check_destination(f"https://{host}/hook", allow_private=False)
    if always:
        with pytest.raises(UnsafeDestinationError, match=message):
            check_destination(f"https://{host}/hook", allow_private=True)
    else:
        check_destination(f"https://{host}/hook", allow_private=True)
    check_destination("https://public.test/hook", allow_private=False)


def test_a_name_resolving_to_a_private_address_gets_nothing(dns: Resolver) -> None:
    with running_receiver() as rx:
        dns.answers["sneaky.test"] = ["127.0.0.1"]
        result = deliver(f"http://sneaky.test:{rx.port}/hook", b"{}", "whsec_x", timeout=5)
        assert rx.requests == []
    assert (result.ok, result.retryable) == (False, False)
    assert (
        result.error == "unsafe destination: sneaky.test resolves to a loopback address 127.0.0.1"
    )
    assert dns.lookups == ["sneaky.test"]  # resolved once; nothing connected afterwards


# --- redirects -------------------------------------------------------------------------------

STAND_IN = ipaddress.ip_address("127.0.0.1")


@pytest.fixture
def receiver_counts_as_public(monkeypatch: pytest.MonkeyPatch, dns: Resolver) -> None:
    """`hooks.test` is the loopback receiver, and 127.0.0.1 alone counts as a public address,
    so a delivery with private callbacks *refused* can reach it and be redirected."""
    dns.answers["hooks.test"] = ["127.0.0.1"]
    real: Callable = webhook_requests._classify
    monkeypatch.setattr(webhook_requests, "_classify", lambda a: None if a == STAND_IN else real(a))


@pytest.mark.parametrize(
    "location",
    [
        "http://127.0.0.2/",
        "http://2130706434/",  # 127.0.0.2
        "http://0x7f000002/",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.2]/",
        "http://[fd00::1]/",
        "http://[fec0::1]/",
        "http://internal.test/",
        "http://office.test:8080/admin",
        "https://ula.test/",
    ],
)
def test_redirects_to_private_addresses_are_refused(
    receiver_counts_as_public: None, location: str
) -> None:
    with running_receiver([redirect(location)]) as rx:
        result = deliver(f"http://hooks.test:{rx.port}/hook", b"{}", "whsec_x", timeout=5)
        assert len(rx.requests) == 1
    assert (result.ok, result.retryable, result.status) == (False, False, None)
    assert result.error and result.error.startswith("unsafe destination: ")


# --- the API refuses the same spellings for a site's callback URL ----------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f.1/",
        "http://[::ffff:127.0.0.1]/",
        "http://[fec0::1]/hook",
        "http://0251.0376.0251.0376/latest/meta-data/",
    ],
)
def test_site_callback_urls_are_checked_the_same_way(
    client: FlaskClient, auth: dict[str, str], url: str
) -> None:
    response = client.put("/v1/site", json={"callback_url": url}, headers=auth)
    assert response.status_code == 422, response.get_json()
    assert "callback_url" in response.get_json()["error"]["fields"]
    assert client.get("/v1/site", headers=auth).get_json()["callback_url"] is None
