"""The save-time SSRF guard: which addresses and URLs channels may deliver to."""

from __future__ import annotations

import socket

import pytest
from django.core.exceptions import ValidationError
from pytest_django.fixtures import Settings

from alerts.channels import guard
from alerts.channels.destinations import (
    address_is_refused,
    destination_check,
    host_refusal,
    numeric_address,
)
from tests.alerts.channels.conftest import Listener


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("192.168.0.10", "private"),
        ("172.16.5.4", "private"),
        ("169.254.10.20", "link-local"),
        ("fe80::1", "link-local"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("224.0.0.1", "multicast"),
        ("240.0.0.1", "address"),
        ("100.64.0.1", "not a public address"),
        ("169.254.169.254", "metadata"),
        ("fd00:ec2::254", "metadata"),
        ("::ffff:10.0.0.1", "private"),
        ("::ffff:169.254.169.254", "metadata"),
        ("64:ff9b::7f00:1", "loopback"),
    ],
)
def test_it_refuses_addresses_that_are_not_public(address: str, reason: str) -> None:
    refusal = address_is_refused(address)

    assert refusal is not None
    assert reason in refusal


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize("address", ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"])
def test_it_lets_public_addresses_through(address: str) -> None:
    assert address_is_refused(address) is None


def test_it_lets_an_allowed_network_through(settings: Settings) -> None:
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["10.0.0.0/8"]

    assert address_is_refused("10.20.30.40") is None
    assert address_is_refused("::ffff:10.20.30.40") is None
    assert address_is_refused("192.168.1.1") is not None


def test_it_never_lets_the_metadata_service_through(settings: Settings) -> None:
    settings.TRADEWATCH_DELIVERY_ALLOWED_NETWORKS = ["169.254.0.0/16"]

    assert address_is_refused("169.254.10.20") is None
    assert address_is_refused("169.254.169.254") == "the cloud metadata service"


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/",
        "http://127.0.0.1:8000/hook",
        "http://10.1.2.3/",
        "http://0.0.0.0/",
        "http://2130706433/",
        "http://0x7f000001/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/",
        "https://[::ffff:127.0.0.1]/",
    ],
)
def test_it_refuses_urls_reaching_inside_at_save_time(url: str) -> None:
    with pytest.raises(ValidationError) as caught:
        destination_check(url)

    assert "channels may not deliver there" in caught.value.messages[0]


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.com/", "Only http:// and https://"),
        ("file:///etc/passwd", "Only http:// and https://"),
        ("http:///nohost", "no host"),
        ("http://example.com:99999/", "Not a valid URL"),
        ("http://no-such-host.invalid/", "does not resolve"),
    ],
)
def test_it_refuses_malformed_urls(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        destination_check(url)


def test_it_accepts_loopback_when_its_network_is_allowed() -> None:
    # tests/settings.py allows 127.0.0.0/8 and ::1 for the local receivers.
    destination_check("http://127.0.0.1:9/hook")
    destination_check("http://localhost:9/hook")


@pytest.mark.usefixtures("nothing_allowed")
@pytest.mark.parametrize(
    "host",
    [
        "0x7f000001",
        "2130706433",
        "0177.0.0.1",
        "127.1",
        "0x7f.1",
        "[::ffff:127.0.0.1]",
        "::ffff:7f00:1",
        "[0:0:0:0:0:0:0:1]",
        "localhost",
    ],
)
def test_it_reads_every_spelling_of_loopback_as_loopback(host: str) -> None:
    refusal = host_refusal(host, 25)

    assert refusal is not None
    assert "a loopback address" in refusal


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0x7f000001", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("[::1]", "::1"),
        ("1.1", "1.0.0.1"),
    ],
)
def test_it_reads_numeric_spellings_without_dns(host: str, address: str) -> None:
    assert str(numeric_address(host)) == address
    assert numeric_address("localhost") is None


@pytest.mark.usefixtures("nothing_allowed")
def test_the_connect_guard_refuses_what_a_socket_would_reach_inside() -> None:
    ipv4 = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ipv6 = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        assert guard.refusal(ipv4, ("93.184.215.14", 443)) is None
        assert "loopback" in (guard.refusal(ipv4, ("127.0.0.1", 80)) or "")
        assert "loopback" in (guard.refusal(ipv4, ("0x7f000001", 80)) or "")
        assert "metadata" in (guard.refusal(ipv4, ("169.254.169.254", 80)) or "")
        assert "loopback" in (guard.refusal(ipv6, ("::ffff:127.0.0.1", 80, 0, 0)) or "")
        # A name would be resolved inside the call, out of the guard's sight.
        assert "resolve by itself" in (guard.refusal(ipv4, ("localhost", 80)) or "")
        assert "family" in (guard.refusal(unix, "/run/postgresql/.s.PGSQL.5432") or "")
    finally:
        for opened in (ipv4, ipv6, unix):
            opened.close()


@pytest.mark.usefixtures("nothing_allowed")
def test_the_connect_guard_only_acts_inside_its_scope(listener: Listener) -> None:
    # Outside a delivery the rest of the process (PostgreSQL, Redis on loopback) is free.
    with socket.create_connection(("127.0.0.1", listener.port)):
        pass
    with guard.vetted_connections() as vetted, pytest.raises(guard.ConnectionVetoed):
        socket.create_connection(("127.0.0.1", listener.port))

    assert listener.connections() == 1
    assert vetted.refusals == [
        "127.0.0.1 is a loopback address; channels may not deliver there (an operator can "
        "allow a network with TRADEWATCH_DELIVERY_ALLOWED_NETWORKS)."
    ]
